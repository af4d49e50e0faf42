"""Signed run commits (git config exp.sign): signing as git signs, verifying with git itself.

Git's own settings pick the key and the program: `gpg.format` (openpgp, ssh, x509),
`user.signingKey`, `gpg.program` / `gpg.<format>.program`, `gpg.ssh.defaultKeyCommand`. The
signature goes into the commit's `gpgsig` header exactly where `git commit -S` puts it, so
`git verify-commit` and `git log --show-signature` check run commits like any other.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

from gitexp.errors import StorageError

Config = Callable[[str], "str | None"]
HEADER = b"gpgsig"


class SigningError(StorageError):
    """The signing program failed or is not configured; the run's data stays in its journal."""


def _fail(what: str, detail: str) -> SigningError:
    return SigningError(f"cannot sign the run commit: {what}{': ' + detail.strip() if detail.strip() else ''}; "
                        "check user.signingKey and gpg.format (`git commit -S` must work), or turn signing "
                        "off with `git config exp.sign false`")


def signature_for(payload: bytes, config: Config, committer: str) -> str:
    """An armored detached signature of *payload*, made by the user's git signing setup."""
    form = (config("gpg.format") or "openpgp").strip().lower()
    key = config("user.signingkey")
    if form == "ssh":
        return _ssh_sign(payload, config, key)
    if form not in ("openpgp", "x509"):
        raise _fail(f"gpg.format is {form!r}", "gitexp knows openpgp, ssh and x509")
    default = "gpg" if form == "openpgp" else "gpgsm"
    program = config(f"gpg.{form}.program") or (config("gpg.program") if form == "openpgp" else None) or default
    # The identity without its timestamp, as git passes it when user.signingKey is unset.
    ident = committer.rsplit(">", 1)[0] + ">"
    args = [program, "--status-fd=2", "-bsau", key or ident]
    proc = _run(args, payload)
    if proc.returncode != 0 or b"\n[GNUPG:] SIG_CREATED " not in b"\n" + proc.stderr:
        raise _fail(f"{shlex.join(args)} exited with {proc.returncode}", proc.stderr.decode(errors="replace"))
    return proc.stdout.decode()


def _ssh_sign(payload: bytes, config: Config, key: str | None) -> str:
    program = config("gpg.ssh.program") or "ssh-keygen"
    if not key:
        command = config("gpg.ssh.defaultKeyCommand")
        if not command:
            raise _fail("gpg.format is ssh but user.signingKey is not set",
                        "set it to your key, e.g. git config user.signingKey ~/.ssh/id_ed25519.pub")
        proc = subprocess.run(command, shell=True, capture_output=True, text=True, check=False)
        key = proc.stdout.splitlines()[0] if proc.returncode == 0 and proc.stdout.strip() else None
        if not key:
            raise _fail(f"gpg.ssh.defaultKeyCommand {command!r} gave no key", proc.stderr)
    with tempfile.TemporaryDirectory(prefix="gitexp-sign-") as tmp:
        literal = key.startswith(("key::", "ssh-"))  # as git tells a literal key from a path
        if literal:  # a public key given inline: the private half is in ssh-agent (git's -U)
            key_file = Path(tmp, "key.pub")
            key_file.write_text(key.removeprefix("key::") + "\n")
        else:
            key_file = Path(os.path.expanduser(key))
        # git signs a file (older ssh-keygen cannot sign stdin); the signature lands beside it.
        data = Path(tmp, "commit")
        data.write_bytes(payload)
        args = [program, "-Y", "sign", "-n", "git", "-f", str(key_file), *(["-U"] if literal else []), str(data)]
        signed = _run(args, b"")
        sig = Path(f"{data}.sig")
        if signed.returncode != 0 or not sig.exists():
            raise _fail(f"{shlex.join(args[:-1])} exited with {signed.returncode}",
                        signed.stderr.decode(errors="replace"))
        return sig.read_text()


def _run(args: list[str], payload: bytes) -> subprocess.CompletedProcess[bytes]:
    try:
        return subprocess.run(args, input=payload, capture_output=True, check=False, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise _fail(f"cannot run {args[0]!r}", str(exc)) from exc


def embed(commit: bytes, signature: str) -> bytes:
    """*commit*'s content with the signature as a `gpgsig` header, laid out as git writes it."""
    head, sep, message = commit.partition(b"\n\n")
    lines = signature.encode().splitlines(keepends=True)
    if lines and not lines[-1].endswith(b"\n"):
        lines[-1] += b"\n"
    header = HEADER + b"".join(b" " + line for line in lines)
    return head + b"\n" + header.rstrip(b"\n") + sep + message


def sign_commit(commit: bytes, config: Config, committer: str) -> bytes:
    return embed(commit, signature_for(commit, config, committer))


def verify(cwd: Path, commit: str) -> tuple[bool, str]:
    """(valid, what git said) for the signature on *commit*, checked by `git verify-commit`."""
    try:
        proc = subprocess.run(["git", "verify-commit", commit], cwd=cwd, capture_output=True,
                              text=True, check=False, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, f"cannot run git verify-commit: {exc}"
    said = "; ".join(line.strip() for line in proc.stderr.splitlines()[:3] if line.strip())
    return proc.returncode == 0, said
