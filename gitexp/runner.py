"""`git exp run`: run a command as a tracked run, streaming its output into output.log."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from typing import IO, Any

from gitexp import redact, tracking
from gitexp.errors import GitexpError


def _pump(source: IO[bytes], sink: IO[bytes], log: IO[bytes], lock: threading.Lock,
          masker: redact.Masker) -> None:
    """Copy the child's output to the terminal as it comes, and masked, line by line, to the log."""
    partial = b""
    while chunk := source.read1(65536) if hasattr(source, "read1") else source.read(65536):
        try:
            sink.write(chunk)
            sink.flush()
        except (OSError, ValueError):
            pass  # a closed terminal must not lose the log
        lines = (partial + chunk).split(b"\n")
        partial = lines.pop()
        if lines:
            text = b"".join(masker.text(line.decode(errors="replace")).encode() + b"\n" for line in lines)
            with lock:
                log.write(text)
                log.flush()
    if partial:
        with lock:
            log.write(masker.text(partial.decode(errors="replace")).encode())
            log.flush()


def run_command(command: list[str], name: str | None = None, experiment: str | None = None,
                params: dict[str, Any] | None = None, tags: dict[str, str] | None = None,
                description: str | None = None, meta: dict[str, Any] | None = None) -> int:
    """Run *command* as a tracked run and return its exit code (128+N when killed by signal N).

    *meta*: extra meta fields of the new run (`git exp rerun` records rerun_of).
    """
    if not command:
        raise GitexpError("no command to run; usage: git exp run [OPTIONS] -- COMMAND [ARGS...]")
    run = tracking.start_run(name=name, experiment=experiment, params=params, tags=tags,
                             description=description, command=command, meta=meta)
    child_env = dict(os.environ)
    child_env.update({
        tracking.ENV_RUN_ID: run.id, tracking.ENV_REPO: str(run.repo.gitdir),
        tracking.ENV_EXPERIMENT: run.experiment, tracking.ENV_PARAMS: json.dumps(run.params),
        "PYTHONUNBUFFERED": "1",
    })
    interrupted: list[int] = []
    try:
        child = subprocess.Popen(command, env=child_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    except OSError as exc:
        run._meta({"exit_code": 127, "error": {"type": type(exc).__name__, "message": redact.mask_text(str(exc))}})
        run.end("FAILED")
        raise GitexpError(f"cannot run {command[0]!r}: {exc.strerror or exc}; check the command name and "
                          f"PATH (the run {run.id} is recorded as FAILED)") from exc

    def forward(signum: int, frame: Any) -> None:
        interrupted.append(signum)
        # Ctrl-C at a terminal reaches the whole process group, the child included: sending it
        # again would interrupt the child's own cleanup. Signals sent to us alone are forwarded.
        if not (signum == signal.SIGINT and sys.stdin is not None and sys.stdin.isatty()):
            try:
                child.send_signal(signum)
            except ProcessLookupError:
                pass

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    masker = redact.Masker()
    lock = threading.Lock()
    try:
        with open(run._journal.output, "ab") as log:
            pumps = [threading.Thread(target=_pump, args=(stream, sink, log, lock, masker), daemon=True)
                     for stream, sink in ((child.stdout, sys.stdout.buffer), (child.stderr, sys.stderr.buffer))]
            for pump in pumps:
                pump.start()
            code = child.wait()
            for pump in pumps:
                pump.join()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if code == 0 and not interrupted:
        status = "FINISHED"
    elif interrupted or code < 0:
        status = "KILLED"
    else:
        status = "FAILED"
    run._flush(checkpoint=False)  # take in what the child recorded, its error included
    changes: dict[str, Any] = {"exit_code": code}
    if status != "FINISHED" and "error" not in run.state.meta:
        reason = f"killed by signal {-code}" if code < 0 else f"exited with code {code}"
        changes["error"] = {"type": "ExitStatus", "message": f"command {reason}"}
    run._meta(changes)
    run.end(status)
    return 128 - code if code < 0 else code
