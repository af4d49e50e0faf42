"""The files gitexp itself writes where the user says (`git exp report -o`, `git exp plot -o`,
gitexp.plot(output=...)), remembered so that a run's code snapshot leaves them out.

A report written into the work tree would otherwise be swept into the next run's `code/` and
`code.patch` as if it were code. The record is `<common git dir>/gitexp/outputs.json`: the
absolute path of each file written inside a work tree, with the SHA-256 of what gitexp wrote.
A snapshot leaves out such a file while it is untracked and still holds those bytes; once the
user edits it or `git add`s it, it is theirs and is snapshotted like any other file.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from gitexp.errors import GitexpError
from gitexp.git.repo import Repo

RECORD = Path("gitexp") / "outputs.json"
LIMIT = 256  # paths remembered; the oldest are forgotten first


def record_path(commondir: Path) -> Path:
    return commondir / RECORD


def digest(path: str | os.PathLike[str]) -> str | None:
    """SHA-256 of the file at *path*, None when it cannot be read."""
    sha = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                sha.update(block)
    except OSError:
        return None
    return sha.hexdigest()


def recorded(commondir: Path) -> dict[str, dict[str, Any]]:
    """absolute path -> {"sha256", "size"} of each output gitexp wrote; {} when none (or when the
    record cannot be read: a snapshot then keeps those files, as it would without the record)."""
    try:
        data = json.loads(record_path(commondir).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: v for k, v in data.items() if isinstance(k, str) and isinstance(v, dict)
            and isinstance(v.get("sha256"), str)}


def remember(path: str | os.PathLike[str]) -> None:
    """Note that gitexp has just written the file at *path*, when it lies in a git work tree (and not
    in the git directory, which no snapshot reads). Never fails: the file is written either way,
    and without the note a snapshot only keeps it."""
    target = Path(os.path.realpath(path))
    try:
        repo = Repo.discover(target.parent)
    except GitexpError:
        return
    if repo.workdir is None:
        return
    workdir = Path(os.path.realpath(repo.workdir))
    if not target.is_relative_to(workdir) or target.is_relative_to(os.path.realpath(repo.gitdir)):
        return
    try:
        info = os.stat(target)
    except OSError:
        return
    sha = digest(target)
    if sha is None:
        return
    entries = recorded(repo.commondir)
    entries.pop(str(target), None)  # re-added last: the newest
    entries[str(target)] = {"sha256": sha, "size": info.st_size}
    kept = dict([item for item in entries.items() if os.path.lexists(item[0])][-LIMIT:])
    record = record_path(repo.commondir)
    temporary = record.with_name(f"{record.name}.{os.getpid()}.tmp")
    try:
        record.parent.mkdir(parents=True, exist_ok=True)
        temporary.write_text(json.dumps(kept, indent=1), encoding="utf-8")
        os.replace(temporary, record)  # readers see the old record or the new one, never half of one
    except OSError:
        with contextlib.suppress(OSError):
            temporary.unlink()


def written_under(commondir: Path, workdir: Path) -> dict[str, dict[str, Any]]:
    """The recorded outputs under *workdir*, by their '/'-separated path relative to it."""
    entries = recorded(commondir)
    if not entries:
        return {}
    top = Path(os.path.realpath(workdir))
    return {Path(p).relative_to(top).as_posix(): e for p, e in entries.items() if Path(p).is_relative_to(top)}


def as_written(workdir: Path, relative: str, entry: dict[str, Any]) -> bool:
    """Whether the file at *relative* under *workdir* still holds the bytes gitexp wrote there. Its
    content is hashed each time (a file's times can miss an edit made within their granularity);
    only the few recorded files that a snapshot holds are asked about."""
    where = Path(workdir) / relative
    try:
        if os.stat(where).st_size != entry.get("size"):
            return False
    except OSError:
        return False
    return digest(where) == entry["sha256"]
