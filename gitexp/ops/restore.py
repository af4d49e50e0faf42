"""Restoring artifacts into a folder (`git exp get`, download_artifacts).

Everything read from a run is untrusted: names are checked again, every file is written to a
temporary name, hashed on the way, and renamed into place only if its sha256 matches; folders
are entered one component at a time without following symlinks, so nothing lands outside the
target folder.
"""

from __future__ import annotations

import hashlib
import os
import stat
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gitexp.errors import ArtifactError, CorruptArtifactError, RemoteError
from gitexp.git import lfs, transport
from gitexp.git.lazyrepo import real
from gitexp.git.repo import EXEC_MODE, Repo
from gitexp.store.artifacts import Artifact, check_name, human_size, list_artifacts


def select(artifacts: list[Artifact], paths: Sequence[str], run_id: str) -> list[Artifact]:
    """The artifacts named by *paths* (a file, or a folder and everything under it); all when empty."""
    if not paths:
        return artifacts
    chosen: dict[str, Artifact] = {}
    for text in paths:
        wanted = text.strip("/")
        hits = [a for a in artifacts if not wanted or a.path == wanted or a.path.startswith(wanted + "/")]
        if not hits:
            listed = ", ".join(a.path for a in artifacts[:10]) or "none"
            raise ArtifactError(f"run {run_id} has no artifact {text!r}; its artifacts are: {listed}"
                                f"{' ...' if len(artifacts) > 10 else ''} (`git exp artifacts {run_id}` lists them)")
        chosen.update((a.path, a) for a in hits)
    return list(chosen.values())


def ensure_present(repo: Repo, artifacts: list[Artifact], remote: str | None) -> int:
    """Fetch the LFS content of *artifacts* that is not in the local store; returns how many were fetched."""
    store = lfs.Store(repo)
    missing = {a.sha256: a for a in artifacts
               if a.lfs and not a.problem and not store.has(lfs.Pointer(a.sha256, a.size))}
    if not missing:
        return 0
    try:
        name = transport.resolve_remote(repo, remote)
    except RemoteError as exc:
        raise RemoteError(f"{len(missing)} artifact(s) are not in the local LFS store and cannot be fetched: "
                          f"{exc}") from None
    transport.lfs_fetch(repo, name, {oid: a.blob for oid, a in missing.items()})
    still = [a for a in missing.values() if not store.has(lfs.Pointer(a.sha256, a.size))]
    if still:
        raise RemoteError(f"{len(still)} artifact(s) are still missing after fetching from {name}: "
                          f"{', '.join(a.path for a in still[:5])}; the remote's LFS storage does not have them "
                          "(were they pushed with `git exp push` from the machine that logged them?)")
    return len(missing)


def restore(repo: Repo, artifacts: list[Artifact], dst: Path, force: bool = False,
            within: Path | None = None, advice: str = "remove it or choose another folder with -o") -> list[Path]:
    """Write *artifacts* under *dst*; returns the files written (identical ones already there are kept).

    *dst* itself is the caller's choice and may be reached through symlinks, unless *within* is
    given: then *dst* must lie inside the folder *within*, and every component from there down
    is entered without following symlinks, as the folders under *dst* always are. A checkout
    passes its own top folder, since the files below it came from the run. *advice* ends the
    error that refuses a symlink or a file on the way.
    """
    bad = [a for a in artifacts if a.problem]
    if bad:
        raise CorruptArtifactError("; ".join(a.problem or "" for a in bad[:3]))
    for artifact in artifacts:
        check_name(artifact.path, "artifact path in the run")
    if within is None:
        dst.mkdir(parents=True, exist_ok=True)
        root = os.open(dst, os.O_RDONLY | os.O_DIRECTORY)
    else:
        root = _open_within(within, dst, advice)
    written = []
    try:
        for artifact in artifacts:
            if _restore_one(repo, artifact, root, dst, force, advice):
                written.append(dst / artifact.path)
    finally:
        os.close(root)
    return written


def _open_within(top: Path, dst: Path, advice: str) -> int:
    """A descriptor of *dst*, created as needed, reached from *top* without following a symlink."""
    try:
        parts = list(dst.relative_to(top).parts)
    except ValueError:
        raise ArtifactError(f"cannot restore artifacts into {dst}: it is not inside {top}") from None
    if any(part in ("..", ".") for part in parts):
        raise ArtifactError(f"cannot restore artifacts into {dst}: the path goes up out of {top}")
    base = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
    try:
        return _enter(base, parts, top, str(dst), advice)
    finally:
        os.close(base)


def _refusal(path: str, where: Path, advice: str) -> ArtifactError:
    """Why a component on the way to an artifact cannot be written through, naming it."""
    try:
        info = os.lstat(where)
    except OSError:
        what = "could not be opened as a folder"
    else:
        if stat.S_ISLNK(info.st_mode):
            what = f"is a symlink (to {os.readlink(where)!r}), not a folder"
        else:
            what = "is a file, not a folder"
    return ArtifactError(f"cannot restore {path}: {where} {what}; writing through it could put files outside "
                         f"the folder restored into, so it was refused and nothing was written there ({advice})")


def _enter(parent: int, parts: list[str], dst: Path, path: str,
           advice: str = "remove it or choose another folder with -o") -> int:
    fd = os.dup(parent)
    for i, part in enumerate(parts):
        try:
            os.mkdir(part, 0o777, dir_fd=fd)
        except FileExistsError:
            pass
        except OSError:
            pass  # a component that is a dangling symlink, or no permission: the open below says which
        try:
            child = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
        except OSError:
            os.close(fd)
            raise _refusal(path, dst.joinpath(*parts[: i + 1]), advice) from None
        os.close(fd)
        fd = child
    return fd


def _hash_at(folder: int, name: str) -> str:
    fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=folder)
    try:
        return lfs.hash_stream(fd)[0]
    finally:
        os.close(fd)


def _restore_one(repo: Repo, artifact: Artifact, root: int, dst: Path, force: bool, advice: str) -> bool:
    *parents, leaf = artifact.path.split("/")
    folder = _enter(root, parents, dst, artifact.path, advice)
    try:
        try:
            info: os.stat_result | None = os.stat(leaf, dir_fd=folder, follow_symlinks=False)
        except FileNotFoundError:
            info = None
        if info is not None:
            if stat.S_ISDIR(info.st_mode):
                raise ArtifactError(f"cannot restore {artifact.path}: {dst / artifact.path} is a folder")
            same_size = stat.S_ISREG(info.st_mode) and info.st_size == artifact.size
            if same_size and _hash_at(folder, leaf) == artifact.sha256:
                return False
            if not force:
                raise ArtifactError(f"{dst / artifact.path} exists and differs from the run's artifact; remove it, "
                                    "restore into another folder (-o DIR), or overwrite it with --force")
        tmp = f".gitexp-{os.urandom(8).hex()}.tmp"
        mode = 0o777 if artifact.mode == EXEC_MODE else 0o666
        out = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode, dir_fd=folder)
        try:
            try:
                digest = _copy(repo, artifact, out)
            finally:
                os.close(out)
            if digest != (artifact.sha256, artifact.size):
                source = lfs.Store(repo).path(artifact.sha256) if artifact.lfs else f"blob {artifact.blob}"
                raise CorruptArtifactError(
                    f"artifacts/{artifact.path}: the stored content has sha256 {digest[0]} ({digest[1]} bytes) but "
                    f"the run records {artifact.sha256} ({artifact.size} bytes): {source} was changed or damaged "
                    "after it was logged, so nothing was written for this file. Delete it and run `git exp get` "
                    "again to fetch a good copy from the remote")
            os.replace(tmp, leaf, src_dir_fd=folder, dst_dir_fd=folder)
        except BaseException:
            try:
                os.unlink(tmp, dir_fd=folder)
            except FileNotFoundError:
                pass
            raise
        return True
    finally:
        os.close(folder)


def _copy(repo: Repo, artifact: Artifact, out: int) -> tuple[str, int]:
    if not artifact.lfs:
        data = repo.read_blob(artifact.blob)
        view = memoryview(data)
        while view:
            view = view[os.write(out, view):]
        return hashlib.sha256(data).hexdigest(), len(data)
    src = os.open(lfs.Store(repo).path(artifact.sha256), os.O_RDONLY)
    try:
        return lfs.hash_stream(src, out)
    finally:
        os.close(src)


def download_artifacts(run: Any, path: str | None = None, dst: str | os.PathLike[str] | None = None,
                       remote: str | None = None, force: bool = False, *,
                       within: str | os.PathLike[str] | None = None, advice: str | None = None) -> Path:
    """Restore a run's artifacts (all, or the file or folder *path*) under *dst*; returns the local path.

    *run* is a RunRecord, a live Run, or a run id, id prefix or name. *dst* defaults to a new
    temporary folder. Content not present locally is fetched through Git LFS from *remote*.
    *within*: a folder *dst* must lie in, entered from there without following symlinks (see
    restore); *advice* ends the error refusing a symlink on the way.
    """
    from gitexp.store import runs

    commit: str | None
    if isinstance(run, str):
        record = runs.get_run(run)
        repo, commit, run_id = real(record.repo), record.commit, record.id  # fetching LFS content writes
    elif isinstance(run, runs.RunRecord):
        repo, commit, run_id = real(run.repo), run.commit, run.id
    else:  # a Run: what its ref holds now (its last checkpoint, or its final commit)
        repo, run_id = Repo.discover(run.repo.gitdir), run.id  # run.repo belongs to the run's threads
        commit = repo.ref(run.ref)
        if commit is None and not run.ended:
            run.checkpoint()  # its first commit was not written yet
            commit = repo.ref(run.ref)
        if commit is None:
            raise ArtifactError(f"run {run_id} has no commit yet")
    chosen = select(list_artifacts(repo, commit), [path] if path else [], run_id)
    ensure_present(repo, chosen, remote)
    target = Path(dst) if dst is not None else Path(tempfile.mkdtemp(prefix=f"gitexp-{run_id}-"))
    restore(repo, chosen, target, force=force, within=Path(within) if within is not None else None,
            **({"advice": advice} if advice else {}))
    return target / path.strip("/") if path and path.strip("/") else target


def describe(artifacts: list[Artifact]) -> str:
    total = sum(a.size for a in artifacts)
    return f"{len(artifacts)} file(s), {human_size(total)}"
