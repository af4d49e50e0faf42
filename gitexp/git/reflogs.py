"""Reflogs of run refs kept compact: settled logs move from their own files into one archive.

Every run ref has a reflog (refs.py creates its file), a few hundred bytes that take a disk block
each (at 100,000 runs 396 MB of a 621 MB .git) and that `git gc` rewrites one file at a time in
`git reflog expire` (most of its time). A run's log grows only while gitexp moves its ref, so
archive() appends the lines of logs nobody has written to for a while (or that end with a run's
final commit, which nothing writes to again), each prefixed with its ref name and a tab, to
`<common git dir>/gitexp/reflogs` and deletes their files. read() joins the archive and the file
again: what `git exp verify` checks is unchanged. The archive is a series of gzip members (`zcat`
reads it), one per append: its lines are mostly hex ids and names said twice, 230 bytes a run as
text and 40 compressed. Plain lines in it (an archive of before, or an older gitexp's append)
read as they are, and the next pass compresses them.

Only a log whose every entry names the ref's tip or an ancestor of it is archived, so git, which
keeps what reflogs name, loses nothing it kept: those commits are reachable from the ref anyway. A
log whose ref was rewritten stays a file, for git to keep, and verify to report.

Writers of run refs hold writing() (a shared flock) while they create a log file and move the
ref; archive() holds it exclusively, so no entry is written into a file it is deleting. Readers
take no lock: they read the file before the archive, and archive() appends before it deletes, so
a reader sees every line at least once (read() drops lines the archive holds already). A line
`<ref>\\t` alone (forget()) ends what the archive says of a ref that was renamed or deleted.

This module reads and writes files only (no pygit2): gitfiles.reflog_commits reads the archive too.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import io
import os
import subprocess
import sys
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

ARCHIVE = "gitexp/reflogs"
LOCK = "gitexp/reflogs.lock"
ZERO = "0" * 40
PENDING = "gitexp/refs-pending"  # one byte per ref made since the last archiving pass (refmaint.py)
PACK_EVERY = 100  # new refs between two `git pack-refs`, at least: 100 loose refs add 1.5 ms to git log --decorate
ARCHIVE_EVERY = 1000  # new refs between two archiving passes
# ... at most ARCHIVE_EVERY: one new ref for each PACKED_PER_NEW bytes of packed-refs (90 bytes a ref), since
# rewriting packed-refs and every libgit2 writer's reading it again cost time in proportion to its size.
PACKED_PER_NEW = 9000
MIN_AGE = 600.0  # seconds a log rests before it is archived: a live run writes its log every checkpoint
# A log whose last entry is a run's final commit is archived at any age: nothing writes to it again
# but a later move by gitexp (a link commit, rm, resume), which starts a file again.
ENDED = tuple(f"gitexp: {status} " for status in ("finished", "failed", "killed", "crashed"))
# New refs counted since the last archiving pass from which a process that made some starts one as it exits.
EXIT_FROM = 100
# Loose run refs from which a process that made run refs packs them as it exits: any, since each costs
# every git log --decorate and git fetch 15 µs until the next upkeep pass packs it (at 100,000 runs, 11
# loose: 1.22x and 1.10x the repository without runs, packed 1.12x and 1.06x), and `git pack-refs` of a
# small file a few milliseconds, once per process ...
PACK_AT_EXIT = 1
PACK_AT_EXIT_MOST = 1 << 18  # ... while packed-refs is at most this size (rewriting it takes milliseconds)

# A gzip member starts with \x1f, which a reflog line never holds: the text of a plain part ends
# there, and a member cut short is passed over up to the next one.
MEMBER = b"\x1f"

_cache: dict[str, tuple[tuple[int, int, int], dict[str, list[str]]]] = {}


@contextlib.contextmanager
def _flock(commondir: Path | str, mode: int) -> Iterator[bool]:
    """Hold the archive's lock in *mode*; yields False when a non-blocking mode found it taken."""
    path = os.path.join(commondir, LOCK)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
    except FileNotFoundError:  # no gitexp folder yet
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
    try:
        try:
            fcntl.flock(fd, mode)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)  # closing releases the lock


def writing(commondir: Path | str) -> contextlib.AbstractContextManager[bool]:
    """Held (shared) while a log file is made sure of and the ref moved: archive() waits for it."""
    return _flock(commondir, fcntl.LOCK_SH)


def text_of(data: bytes) -> bytes:
    """The archive's lines, from its bytes *data*: its gzip members inflated, plain lines as they are.

    A member cut short (a pass killed while appending, which deleted no log file yet) or damaged
    is passed over, up to the next member: what follows it still reads.
    """
    return _inflate(data)[0]


def _inflate(data: bytes) -> tuple[bytes, bool]:
    """(text_of(data), whether *data* is whole gzip members only)."""
    out: list[bytes] = []
    clean = True
    view, at = memoryview(data), 0
    while at < len(data):
        if not data.startswith(MEMBER, at):
            clean = False
            end = data.find(MEMBER, at)
            end = len(data) if end < 0 else end
            out.append(bytes(view[at:end]))
            if not out[-1].endswith(b"\n"):
                out.append(b"\n")  # a torn plain line does not run into what follows
            at = end
            continue
        inflate = zlib.decompressobj(wbits=31)  # one gzip member
        parts, read = [], at
        try:
            while not inflate.eof and read < len(data):
                parts.append(inflate.decompress(view[read:read + 65536]))
                read += 65536
        except zlib.error:
            pass
        if inflate.eof:
            out += parts
            at = min(read, len(data)) - len(inflate.unused_data)
        else:
            clean = False
            following = data.find(MEMBER, at + 1)
            at = len(data) if following < 0 else following
    return b"".join(out), clean


def _read_archive(path: str) -> tuple[tuple[int, int, int], bytes] | None:
    """(the archive's stat, its lines), or None when there is none."""
    try:
        with open(path, "rb") as handle:
            info = os.fstat(handle.fileno())
            data = handle.read()
    except FileNotFoundError:
        return None
    return (info.st_ino, info.st_size, info.st_mtime_ns), text_of(data)


def archived(commondir: Path | str) -> dict[str, list[str]]:
    """ref name -> its archived reflog lines, oldest first (read once per change of the file)."""
    path = os.path.join(commondir, ARCHIVE)
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return {}
    key = (info.st_ino, info.st_size, info.st_mtime_ns)
    cached = _cache.get(path)
    if cached is not None and cached[0] == key:
        return cached[1]
    found = _read_archive(path)
    if found is None:
        return {}
    key, text = found
    out = _parse(io.TextIOWrapper(io.BytesIO(text), encoding="utf-8", errors="replace"))
    _cache[path] = (key, out)
    return out


def _parse(lines: Iterable[str]) -> dict[str, list[str]]:
    """The archive's lines (as a text file reads them) as ref name -> its lines, oldest first."""
    out: dict[str, list[str]] = {}
    for line in lines:
        ref, tab, entry = line.rstrip("\n").partition("\t")
        if not tab:
            continue  # a torn last line
        if entry:
            out.setdefault(ref, []).append(entry)
        else:
            out.pop(ref, None)
    return out


def loose(commondir: Path | str, ref: str) -> list[str]:
    try:
        with open(os.path.join(commondir, "logs", ref), encoding="utf-8", errors="replace") as handle:
            return [line.rstrip("\n") for line in handle if line.strip()]
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return []


def archived_of(commondir: Path | str, ref: str) -> list[str]:
    """archived(commondir).get(ref, []), without parsing the whole archive for the first few refs a
    process asks of (25 MB at 100,000 runs: 0.4 s, for `git exp verify RUN`); past SCANS of them,
    archived()'s map, so that a process reading every ref's log parses the archive once."""
    path = os.path.join(commondir, ARCHIVE)
    if path in _cache or len(_scanned.get(path, ())) >= SCANS:
        return archived(commondir).get(ref, [])
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return []
    known = _scanned.setdefault(path, {})
    state = (info.st_ino, info.st_size, info.st_mtime_ns)
    if ref in known and known[ref][0] == state:
        return list(known[ref][1])
    read = _read_archive(path)
    if read is None:
        return []
    found = known[ref] = (read[0], entries_of(read[1], ref))
    return list(found[1])


def entries_of(data: bytes, ref: str) -> list[str]:
    """What archived() reads of *ref* from the archive's lines *data* (text_of): its lines found by
    a byte search (a line starts with the ref name and a tab), not a parse of every line."""
    if b"\r" in data or not ref.isascii():  # (a text file also ends lines at \r; bytes past ASCII decode as a whole)
        return _parse(io.TextIOWrapper(io.BytesIO(data), encoding="utf-8", errors="replace")).get(ref, [])
    out: list[str] = []
    key = ref.encode() + b"\t"
    at = 0 if data.startswith(key) else data.find(b"\n" + key) + 1 or -1  # -1: no line of the ref
    while at >= 0:
        end = data.find(b"\n", at)
        line = data[at:] if end < 0 else data[at:end]
        entry = line[len(key):].decode("utf-8", "replace")
        if entry:
            out.append(entry)
        else:
            out.clear()  # forget(): what came before is no longer this ref's
        if end < 0:
            break
        at = data.find(b"\n" + key, end) + 1 or -1
    return out


# archive -> ref -> (the archive's stat, the ref's lines), of the refs archived_of searched for.
_scanned: dict[str, dict[str, tuple[tuple[int, int, int], list[str]]]] = {}
SCANS = 8  # refs a process searches the archive for before it parses the whole of it


def read(commondir: Path | str, ref: str) -> list[str]:
    """The ref's reflog lines, oldest first: the archive's, then those of its file."""
    own = loose(commondir, ref)  # the file first: archive() appends its lines before deleting it
    old = archived_of(commondir, ref)
    if not old:
        return own
    seen = set(old)
    return old + [line for line in own if line not in seen]


def parse(line: str) -> tuple[str, str, str]:
    """(old, new, message) of a reflog line `<old> <new> <who> <time> <tz>\\t<message>`."""
    head, _, message = line.partition("\t")
    words = head.split(" ", 2)
    if len(words) < 2:
        return ZERO, ZERO, message
    return words[0], words[1], message


def _member(text: bytes) -> bytes:
    """*text* as one gzip member (no name, no time: the same text gives the same bytes)."""
    deflate = zlib.compressobj(6, zlib.DEFLATED, 31)
    return deflate.compress(text) + deflate.flush()


def _append(commondir: Path | str, text: str) -> None:
    fd = os.open(os.path.join(commondir, ARCHIVE), os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o666)
    try:
        data = _member(text.encode("utf-8", errors="surrogateescape"))
        while data:
            data = data[os.write(fd, data):]
        os.fsync(fd)  # the files are deleted next: their lines must be on disk first
    finally:
        os.close(fd)


def _read_for_pass(commondir: Path | str) -> dict[str, list[str]]:
    """archived(commondir), for an archiving pass, which holds the archive's lock exclusively: the
    file is first rewritten as one gzip member when it holds plain lines (an archive of before, or
    an older gitexp's appends) or a member cut short (no append can land between read and rename)."""
    path = os.path.join(commondir, ARCHIVE)
    try:
        with open(path, "rb") as handle:
            info = os.fstat(handle.fileno())
            text, clean = _inflate(handle.read())
    except FileNotFoundError:
        return {}
    if not clean:
        temp = f"{path}.{os.getpid()}.tmp"
        with open(temp, "wb") as handle:
            handle.write(_member(text))
            handle.flush()
            os.fsync(handle.fileno())
            info = os.fstat(handle.fileno())
        os.replace(temp, path)
    out = _parse(io.TextIOWrapper(io.BytesIO(text), encoding="utf-8", errors="replace"))
    _cache[path] = ((info.st_ino, info.st_size, info.st_mtime_ns), out)
    return out


def forget(commondir: Path | str, ref: str) -> list[str]:
    """End the archive's record of *ref* (renamed or deleted), returning the lines it had.
    Called with writing() held."""
    lines = archived_of(commondir, ref)  # (`git exp rm` of one run: the archive is not parsed whole)
    if lines:
        _append(commondir, f"{ref}\t\n")
    return lines


def archive(commondir: Path | str, prefix: str, tip_of: Callable[[str], str | None],
            reaches: Callable[[str, str], bool], min_age: float = MIN_AGE) -> int:
    """Move the logs of refs under *prefix* (`refs/experiments/`) into the archive; returns how many.

    A log is archived when no one wrote to it for *min_age* seconds, its ref exists (*tip_of*(ref):
    its target, or None), and *reaches*(tip, commit) holds for every other commit its entries name (old and new:
    git keeps both). Gives up (0) when
    another process is archiving.
    """
    root = Path(commondir) / "logs" / prefix
    if not root.is_dir():
        return 0
    with _flock(commondir, fcntl.LOCK_EX | fcntl.LOCK_NB) as held:
        if not held:
            return 0
        done = _read_for_pass(commondir)
        now = time.time()
        chosen: list[tuple[str, Path]] = []
        text: list[str] = []
        for folder, _, files in os.walk(root):
            for name in files:
                path = Path(folder, name)
                ref = path.relative_to(Path(commondir) / "logs").as_posix()
                try:
                    lines = loose(commondir, ref)
                    ended = bool(lines) and parse(lines[-1])[2].startswith(ENDED)
                    if (not ended and now - path.stat().st_mtime < min_age) or (tip := tip_of(ref)) is None:
                        continue
                except OSError:
                    continue
                named = {oid for old, new, _ in map(parse, lines) for oid in (old, new)} - {tip, ZERO}
                if not lines or not all(reaches(tip, oid) for oid in named):
                    continue
                seen = set(done.get(ref, ()))  # lines a run of this that died before deleting appended
                text += [f"{ref}\t{line}\n" for line in lines if line not in seen]
                chosen.append((ref, path))
        if not chosen:
            return 0
        if text:
            _append(commondir, "".join(text))
        for _, path in chosen:
            with contextlib.suppress(OSError):
                path.unlink()
        _remove_empty(Path(commondir) / "logs" / "refs", {path.parent for _, path in chosen})
        return len(chosen)


def _remove_empty(top: Path, folders: set[Path]) -> None:
    """Remove each of *folders* that is empty now, and its parents up to *top*: a folder keeps the
    blocks of the entries it once held (4.5 MB after 100,000 logs). Writers make them again under
    writing(), which the caller holds exclusively."""
    for folder in sorted(folders, key=lambda f: len(f.parts), reverse=True):
        while folder != top and top in folder.parents:
            try:
                folder.rmdir()
            except OSError:  # not empty (or gone): its parents are not empty either
                break
            folder = folder.parent


def count_new_ref(commondir: Path | str, new: int = 1) -> None:
    """Count *new* new refs (a fetch makes thousands at once); start the upkeep when the count
    reaches or passes a multiple of pack_interval(). Never raises: ref upkeep is an optimisation,
    and logging must not fail over it."""
    if new <= 0:
        return
    try:
        fd = os.open(os.path.join(commondir, PENDING), os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o666)
        try:
            os.write(fd, b"." * new)
            # O_APPEND gives each writer its own offset, so exactly one of them passes each multiple.
            count = os.lseek(fd, 0, os.SEEK_CUR)
        finally:
            os.close(fd)
        interval = pack_interval(commondir)
        if count // interval > (count - new) // interval:
            start_upkeep(commondir)
        _counted.add(str(commondir))
    except OSError:
        pass


_counted: set[str] = set()  # the common git dirs this process counted new refs in


def _archive_at_exit() -> None:
    """Start an archiving pass where this process counted new refs and EXIT_FROM or more are waiting:
    the runs of a sweep that ends between two passes have ended logs, which every `git gc` would
    otherwise rewrite file by file until the next pass (0.75 ms each). Else pack the refs where
    PACK_AT_EXIT or more run refs are loose and packed-refs is small (the run shelf keeps it so):
    `git log --decorate` and `git fetch` read every loose ref (68 of them: 0.4 ms, a fifth of
    `log`'s time), and `git pack-refs` of a small file takes milliseconds, once per process."""
    for commondir in _counted:
        try:
            if os.path.getsize(os.path.join(commondir, PENDING)) >= EXIT_FROM:
                start_upkeep(commondir, archive=True)
            elif _packed_size(commondir) <= PACK_AT_EXIT_MOST and \
                    _loose_run_refs(commondir) >= PACK_AT_EXIT:
                subprocess.run(["git", "--git-dir", str(commondir), "pack-refs", "--all", "--prune"],
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               check=False, timeout=30)
        except Exception:  # an optimisation, at exit: never a traceback for it
            continue


def _loose_run_refs(commondir: str) -> int:
    """How many loose refs are under refs/experiments/ (a few hundred at most: packed every
    PACK_EVERY). Counted here, not with gitfiles.loose_refs: gitfiles reads the archive through
    this module."""
    return sum(len([name for name in files if not name.endswith(".lock")])
               for _, _, files in os.walk(os.path.join(commondir, "refs", "experiments")))


def _packed_size(commondir: Path | str) -> int:
    try:
        return os.stat(os.path.join(commondir, "packed-refs")).st_size
    except OSError:
        return 0


# Registered as the module is imported, which is before any run of this process starts (the run's
# ref is made through this module), so it runs after the runs still live at exit are ended
# (tracking/run.py's handler): atexit calls the handlers last-registered first.
atexit.register(_archive_at_exit)


def pack_interval(commondir: Path | str) -> int:
    """New refs between two packings of the refs: PACK_EVERY, more as packed-refs grows."""
    size = _packed_size(commondir)
    steps = min(max(1, size // PACKED_PER_NEW // PACK_EVERY), ARCHIVE_EVERY // PACK_EVERY)
    while (ARCHIVE_EVERY // PACK_EVERY) % steps:  # a divisor of ARCHIVE_EVERY, so the archiving pass stays due
        steps -= 1
    return steps * PACK_EVERY


def start_upkeep(commondir: Path | str, archive: bool = False) -> None:
    """Start `python -m gitexp.git.refmaint <commondir>` detached from this process (with --archive:
    an archiving pass whatever the count)."""
    package_root = str(Path(__file__).resolve().parent.parent.parent)  # this gitexp, whatever sys.path says
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")])))
    command = [sys.executable, "-m", "gitexp.git.refmaint", str(commondir), *(["--archive"] if archive else [])]
    subprocess.Popen(command, stdin=subprocess.DEVNULL,
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True, env=env,
                     close_fds=True)
