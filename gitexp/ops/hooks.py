"""Installing gitexp's git hooks (the scripts in the top-level hooks/ folder): install, uninstall, status.

Install never clobbers: a hook that is already there is renamed <hook>.gitexp-chained and
gitexp's script runs it first, with the same arguments; uninstall renames it back, so it
returns byte for byte with its mode. The hooks folder is the one git uses (core.hooksPath
respected). The pre-commit framework's scripts are kept like any other hook, and when
pre-commit installs over gitexp's (moving it to <hook>.legacy), pre-commit runs it from there.

What runs on every commit, `git exp hook post-commit`, is gitexp/ops/hookentry.py.
"""

from __future__ import annotations

import os
from pathlib import Path

from gitexp.errors import GitexpError

HOOKS = ("post-commit",)
CHAINED = ".gitexp-chained"
LEGACY = ".legacy"  # where the pre-commit framework moves a hook it installs over
MARKER = b"gitexp-managed-hook"
MANIFEST = Path("gitexp") / "hooks.json"
NOTES_REF = "refs/notes/experiments"
AUTORUN_KEY = "exp.autorun"
AUTORUN_MAX_KEY = "exp.autorunMax"  # how many auto-runs at once (default 1); the rest wait
AUTORUN_REWRITES_KEY = "exp.autorunRewrites"  # true: rebases, amends... start auto-runs too


def hook_script(name: str) -> bytes:
    """The shipped script: gitexp/_hooks/ in an installed package, hooks/ in a source checkout."""
    package = Path(__file__).resolve().parent.parent  # gitexp/, above gitexp/ops/
    for path in (package / "_hooks" / name, package.parent / "hooks" / name):
        if path.is_file():
            return path.read_bytes()
    raise GitexpError(f"the {name} hook script is missing from this gitexp installation (looked in "
                      f"{package / '_hooks'} and {package.parent / 'hooks'}); reinstall gitexp")


def run_git(cwd: Path, *args: str, check: bool = True) -> str:
    import subprocess  # imported here: the hook's path on every commit does without it

    try:
        proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False, timeout=60)
    except OSError as exc:
        raise GitexpError(f"cannot run git: {exc}; is git installed and on PATH?") from exc
    if check and proc.returncode != 0:
        raise GitexpError(f"`git {' '.join(args)}` failed in {cwd}: {proc.stderr.strip()}")
    return proc.stdout


def _where(cwd: Path) -> tuple[Path, Path]:
    """(hooks folder git uses, common git directory): core.hooksPath and worktrees respected."""
    out = run_git(cwd, "rev-parse", "--git-path", "hooks", "--git-common-dir").splitlines()
    if len(out) < 2:
        raise GitexpError(f"not inside a git repository: {cwd}")
    return (cwd / out[0]).resolve(), (cwd / out[1]).resolve()


def _is_ours(path: Path) -> bool:
    if path.is_symlink() or not path.is_file():
        return False
    with open(path, "rb") as handle:
        return MARKER in handle.read(1024)


def _exists(path: Path) -> bool:
    return path.exists() or path.is_symlink()


def _write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.gitexp-tmp")
    tmp.write_bytes(data)
    tmp.chmod(0o755)
    os.replace(tmp, path)


def _manifest(common: Path) -> dict:
    import json

    try:
        return json.loads((common / MANIFEST).read_text())
    except (OSError, ValueError):
        return {}


def _display_refs(cwd: Path) -> list[str]:
    return run_git(cwd, "config", "--get-all", "notes.displayRef", check=False).split()


def install(cwd: Path, auto_run: str | None = None, show_in_log: bool = False, auto_run_max: int | None = None,
            auto_run_rewrites: bool = False) -> list[str]:
    """Install (or update) the hooks; idempotent. Returns what it did, one line each."""
    if auto_run is not None and not auto_run.strip():
        raise GitexpError("--auto-run needs a command, e.g. --auto-run 'python train.py --quick'")
    if auto_run_max is not None and auto_run_max < 1:
        raise GitexpError(f"--auto-run-max {auto_run_max}: at least 1 auto-run must be able to run; "
                          "e.g. --auto-run-max 2 runs two at once, the others waiting their turn")
    directory, common = _where(cwd)
    manifest = _manifest(common)
    done = []
    if not directory.exists():
        directory.mkdir(parents=True)
        manifest.setdefault("created_dir", True)
        done.append(f"created the hooks folder {directory}")
    manifest.setdefault("created_dir", False)
    manifest["dir"] = str(directory)
    for name in HOOKS:
        done.append(_install_one(directory, name))
    if auto_run is not None:
        run_git(cwd, "config", AUTORUN_KEY, auto_run)
        done.append(f"each commit will start a tracked run of: {auto_run} (git config {AUTORUN_KEY}), in a "
                    "temporary checkout of that commit")
    if auto_run_max is not None:
        run_git(cwd, "config", AUTORUN_MAX_KEY, str(auto_run_max))
        done.append(f"at most {auto_run_max} auto-run(s) at once, the others waiting their turn "
                    f"(git config {AUTORUN_MAX_KEY})")
    if auto_run_rewrites:
        run_git(cwd, "config", AUTORUN_REWRITES_KEY, "true")
        done.append("rebases, amends, cherry-picks and merges will start an auto-run per commit too "
                    f"(git config {AUTORUN_REWRITES_KEY})")
    if show_in_log and NOTES_REF not in _display_refs(cwd):
        run_git(cwd, "config", "--add", "notes.displayRef", NOTES_REF)
        manifest["display_ref_added"] = True
        done.append(f"git log now shows the runs of each commit (notes.displayRef {NOTES_REF})")
    import json

    (common / MANIFEST).parent.mkdir(parents=True, exist_ok=True)
    (common / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return done


def _install_one(directory: Path, name: str) -> str:
    target, chained, legacy = (directory / name, directory / f"{name}{CHAINED}", directory / f"{name}{LEGACY}")
    script = hook_script(name)
    for slot in (target, legacy):
        if _is_ours(slot):
            if slot.read_bytes() == script:
                return f"{name}: already installed in {slot}"
            _write(slot, script)
            return f"{name}: updated {slot}"
    kept = ""
    if _exists(target):
        if _exists(chained):
            raise GitexpError(f"cannot install the {name} hook: {target} exists and so does {chained}, which "
                              "gitexp would keep it as; move one of them away and run `git exp hooks install` again")
        os.rename(target, chained)  # a rename keeps the bytes, the mode and even the inode
        kept = f"; your hook is kept as {chained.name} and still runs first"
    _write(target, script)
    return f"{name}: installed {target}{kept}"


def uninstall(cwd: Path) -> list[str]:
    """Remove gitexp's hooks and settings and put back exactly what was there before."""
    directory, common = _where(cwd)
    manifest = _manifest(common)
    done = []
    for name in HOOKS:
        target, chained, legacy = (directory / name, directory / f"{name}{CHAINED}", directory / f"{name}{LEGACY}")
        slot = target if _is_ours(target) else legacy if _is_ours(legacy) else None
        if slot is not None and _exists(chained):
            os.replace(chained, slot)
            done.append(f"{name}: removed gitexp's hook and restored the previous one as {slot.name}")
        elif slot is not None:
            slot.unlink()
            done.append(f"{name}: removed gitexp's hook {slot}")
        elif _exists(chained) and not _exists(target):
            os.rename(chained, target)
            done.append(f"{name}: restored {target} from {chained.name}")
        elif _exists(chained):
            done.append(f"{name}: left {chained} alone: {target} is not gitexp's any more; merge them by hand")
    for key in (AUTORUN_KEY, AUTORUN_MAX_KEY, AUTORUN_REWRITES_KEY):
        if run_git(cwd, "config", "--get", key, check=False).strip():
            run_git(cwd, "config", "--unset-all", key)
            done.append(f"removed git config {key}")
    if manifest.get("display_ref_added") and NOTES_REF in _display_refs(cwd):
        run_git(cwd, "config", "--unset", "notes.displayRef", f"^{NOTES_REF}$")
        done.append("git log no longer shows runs (removed notes.displayRef)")
    if manifest.get("created_dir") and directory.is_dir() and not any(directory.iterdir()):
        directory.rmdir()
        done.append(f"removed the hooks folder {directory}, which gitexp had created")
    (common / MANIFEST).unlink(missing_ok=True)
    return done or ["gitexp's hooks were not installed; nothing to do"]


def status(cwd: Path) -> list[str]:
    directory, common = _where(cwd)
    hooks_path = run_git(cwd, "config", "--get", "core.hooksPath", check=False).strip()
    lines = [f"hooks folder: {directory}" + (f" (core.hooksPath = {hooks_path})" if hooks_path else "")]
    for name in HOOKS:
        target, chained, legacy = (directory / name, directory / f"{name}{CHAINED}", directory / f"{name}{LEGACY}")
        if _is_ours(target):
            state = "installed" + ("" if target.read_bytes() == hook_script(name) else " (outdated: run install)")
        elif _is_ours(legacy):
            state = f"installed as {legacy.name}, run by the pre-commit framework's {name} hook"
        else:
            state = "not installed" + (f" ({target.name} is another tool's hook)" if _exists(target) else "")
        if _exists(chained):
            state += f"; chains the previous hook, kept as {chained.name}"
        lines.append(f"{name}: {state}")
    autorun = run_git(cwd, "config", "--get", AUTORUN_KEY, check=False).strip()
    if autorun:
        from gitexp.tracking import runner  # only here: the hook's path on every commit does without it

        limit = run_git(cwd, "config", "--get", AUTORUN_MAX_KEY, check=False).strip() or "1"
        rewrites = run_git(cwd, "config", "--type=bool", "--get", AUTORUN_REWRITES_KEY, check=False).strip()
        running, waiting = runner.autorun_state(common)
        lines.append(f"auto-run: {autorun} (at most {limit} at once; {running} running, {waiting} waiting; "
                     f"rebases, amends, cherry-picks, merges: {'run too' if rewrites == 'true' else 'skipped'})")
    else:
        lines.append("auto-run: off")
    shown = NOTES_REF in _display_refs(cwd)
    lines.append(f"runs in git log: {'shown' if shown else 'not shown'} (notes.displayRef)")
    if not any(os.access(os.path.join(d, "git-exp"), os.X_OK) for d in os.environ.get("PATH", "").split(os.pathsep)):
        lines.append("warning: git-exp is not on PATH, so the hooks cannot run it")
    log = common / "gitexp" / "hooks.log"
    if log.exists():
        recent = log.read_text(errors="replace").splitlines()[-3:]
        lines += ["recent problems and messages of the background hook work (" + str(log) + "):",
                  *(f"  {x}" for x in recent)]
    return lines

