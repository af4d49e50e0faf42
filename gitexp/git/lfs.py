"""Git LFS pointers (spec v1) and the repository's LFS object store, laid out as git-lfs does.

Objects live in `<lfs storage>/objects/<oid[0:2]>/<oid[2:4]>/<oid>`, where the storage is
`git config lfs.storage` (relative to the common git directory) or `<common git dir>/lfs`,
so `git lfs push`, `git lfs fetch` and `git lfs ls-files` work on what gitexp stores.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import re
import stat
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from gitexp.errors import CorruptArtifactError
from gitexp.git.reader import RepoReader

SPEC_LINE = b"version https://git-lfs.github.com/spec/v1\n"
# Any blob this small that starts like a pointer is taken for one; gitexp never stores a
# plain artifact that starts this way (such a file goes to LFS), so the rule is unambiguous.
CANDIDATE_PREFIX = b"version https://git-lfs.github.com/spec/"
MAX_POINTER_BYTES = 1024  # git-lfs's own limit for what it parses as a pointer
MAX_SIZE = 2**44  # 16 TiB: a size above this in a pointer is an attack or a bug, not an artifact
_POINTER = re.compile(rb"version https://git-lfs\.github\.com/spec/v1\noid sha256:([0-9a-f]{64})\n"
                      rb"size (0|[1-9][0-9]{0,14})\n\Z")
_LENIENT_OID = re.compile(rb"^oid sha256:([0-9a-f]{64})$", re.MULTILINE)
_OID = re.compile(r"[0-9a-f]{64}\Z")
CHUNK = 8 << 20
FICLONE = 0x40049409  # linux/fs.h _IOW(0x94, 9, int): a copy-on-write clone where the file system can


@dataclass(frozen=True)
class Pointer:
    oid: str
    size: int

    def encode(self) -> bytes:
        return SPEC_LINE + f"oid sha256:{self.oid}\nsize {self.size}\n".encode()


def is_candidate(data: bytes) -> bool:
    return len(data) < MAX_POINTER_BYTES and data.startswith(CANDIDATE_PREFIX)


def parse_pointer(data: bytes, what: str) -> Pointer:
    """The pointer in *data*, parsed strictly (spec v1, 64 lowercase hex digits, a sane size)."""
    match = _POINTER.match(data) if len(data) < MAX_POINTER_BYTES else None
    if match is None or int(match.group(2)) > MAX_SIZE:
        shown = data[:200].decode("utf-8", "replace")
        raise CorruptArtifactError(
            f"{what} is a malformed Git LFS pointer: {shown!r}; a pointer must be exactly the lines "
            f"'version https://git-lfs.github.com/spec/v1', 'oid sha256:<64 lowercase hex digits>' and "
            f"'size <bytes, at most {MAX_SIZE}>'. It was refused; the run may come from a broken or "
            "hostile remote")
    return Pointer(match.group(1).decode(), int(match.group(2)))


def lenient_oid(data: bytes) -> str | None:
    """The oid a pointer-like blob names, read generously: used only to decide what to keep."""
    if len(data) >= MAX_POINTER_BYTES or not data.startswith(b"version "):
        return None
    match = _LENIENT_OID.search(data)
    return match.group(1).decode() if match else None


def check_oid(oid: str) -> str:
    if not isinstance(oid, str) or not _OID.match(oid):
        raise CorruptArtifactError(f"{oid!r} is not a sha256 object id (64 lowercase hex digits)")
    return oid


def hash_stream(src: int, dst: int | None = None) -> tuple[str, int]:
    """sha256 and length of what reads from descriptor *src*, copied to *dst* on the way."""
    digest = hashlib.sha256()
    buffer = bytearray(CHUNK)
    view = memoryview(buffer)
    total = 0
    while True:
        n = os.readv(src, [buffer])
        if not n:
            return digest.hexdigest(), total
        chunk = view[:n]
        digest.update(chunk)  # releases the GIL: other threads keep logging meanwhile
        total += n
        while dst is not None and chunk:
            chunk = chunk[os.write(dst, chunk):]


class Store:
    """The repository's LFS object store."""

    def __init__(self, repo: RepoReader) -> None:
        configured = repo.config("lfs.storage")
        self.root = repo.commondir / configured if configured else repo.commondir / "lfs"
        self.objects = self.root / "objects"

    def path(self, oid: str) -> Path:
        check_oid(oid)
        return self.objects / oid[0:2] / oid[2:4] / oid

    def has(self, pointer: Pointer) -> bool:
        try:
            return self.path(pointer.oid).stat().st_size == pointer.size
        except OSError:
            return False

    def _tmp(self) -> Path:
        tmp = self.root / "tmp"
        tmp.mkdir(parents=True, exist_ok=True)
        return tmp / f"gitexp-{os.getpid()}-{os.urandom(6).hex()}"

    def add_file(self, src: Path) -> tuple[Pointer, bool]:
        """Store the content of *src*; returns its pointer and whether new bytes were stored.

        The stored copy is what gets hashed, so a file changing while it is logged can never
        leave an object whose content differs from its name. A hard link is used only for a
        read-only file (a writable one may be rewritten in place later, which would change the
        stored object too); a copy-on-write clone where the file system supports it; else a copy.
        """
        tmp = self._tmp()
        with open(src, "rb", buffering=0) as handle:
            info = os.fstat(handle.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise IsADirectoryError(errno.EISDIR, "not a regular file", str(src))
            if not info.st_mode & 0o222 and _try_link(src, tmp):
                return self._finish(tmp, None, linked=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)
            try:
                if _try_clone(handle.fileno(), fd):
                    os.close(fd)
                    fd = -1
                    return self._finish(tmp, None)
                digest = hash_stream(handle.fileno(), fd)
            except BaseException:
                if fd >= 0:
                    os.close(fd)
                tmp.unlink(missing_ok=True)
                raise
        os.close(fd)
        return self._finish(tmp, digest)

    def add_tmp(self, tmp: Path, digest: tuple[str, int]) -> tuple[Pointer, bool]:
        """Move a temporary file that gitexp wrote itself (under new_tmp()) into the store."""
        os.chmod(tmp, 0o444)
        return self._finish(tmp, digest)

    def new_tmp(self) -> tuple[int, Path]:
        path = self._tmp()
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444), path

    def _finish(self, tmp: Path, digest: tuple[str, int] | None, linked: bool = False) -> tuple[Pointer, bool]:
        try:
            if digest is None:
                fd = os.open(tmp, os.O_RDONLY)
                try:
                    digest = hash_stream(fd)
                finally:
                    os.close(fd)
            pointer = Pointer(*digest)
            if pointer.size > MAX_SIZE:
                raise OSError(errno.EFBIG, f"over the {MAX_SIZE} byte limit of a pointer", str(tmp))
            final = self.path(pointer.oid)
            if self.has(pointer):
                return pointer, False  # identical content is stored once
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, final)
            return pointer, True
        finally:
            tmp.unlink(missing_ok=True)

    def iter_objects(self) -> Iterator[tuple[str, Path]]:
        """(oid, path) of every object file in the store."""
        if not self.objects.is_dir():
            return
        for first in sorted(self.objects.iterdir()):
            for second in sorted(first.iterdir()) if first.is_dir() else ():
                for path in sorted(second.iterdir()) if second.is_dir() else ():
                    if _OID.match(path.name):
                        yield path.name, path


def _try_link(src: Path, tmp: Path) -> bool:
    try:
        os.link(src, tmp)
        return True
    except OSError:  # another file system, no hard links there, too many links
        return False


def _try_clone(src: int, dst: int) -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        fcntl.ioctl(dst, FICLONE, src)
        return True
    except OSError:  # ext4, tmpfs, another file system: no reflinks
        return False
