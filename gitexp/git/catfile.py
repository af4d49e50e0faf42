"""Many runs' files read by one `git cat-file --batch-command`, for a listing of runs not cached yet.

Reading a run through libgit2 looks up its commit, its tree and its summary blob, each inflated
through its chain of deltas with a small cache of bases: 100 µs a run, up to a millisecond where
the pack's chains are deep, 10 s for 100,000 runs. git itself reads the same objects in a quarter
of that, in another process, while Python parses what it has read. listing_files is that fast path;
RepoReader.read_commit_path stays the reference, and tests/test_catfile.py holds the two to the
same answers on commits of every shape. Any run the batch cannot answer as the reference would
(not a commit, no summary blob) is None: the caller reads it the reference way.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Generator, Iterable, Sequence
from pathlib import Path
from typing import IO

from gitexp import threads

# git would follow refs/replace/ and the variables that point a process at other objects; libgit2
# (the reference) does neither.
_CLEARED = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY", "GIT_ALTERNATE_OBJECT_DIRECTORIES",
            "GIT_COMMON_DIR", "GIT_NAMESPACE", "GIT_REPLACE_REF_BASE")


def isolated_env() -> dict[str, str]:
    """This process's environment without the variables that point git at other objects."""
    return {k: v for k, v in os.environ.items() if k not in _CLEARED}


# Bytes read from git's pipe at once. With io's default (8 KiB), the 100 MiB of 100,000 runs took
# 13,000 reads, and after each the reader waited for the GIL, which the threads beside it (the feeder,
# the cache writer) had taken meanwhile: 0.4 s of a cold `git exp ls` at 100,000 runs.
READ_BUFFER = 1 << 20


def listing_files(gitdir: Path, commits: Sequence[str], read: str) -> Generator[bytes | None, None, None]:
    """For each of *commits*, in order: the bytes of the blob at *read* in its tree, as
    read_commit_path gives them, where the commit is a commit whose tree holds *read* as a blob;
    else None. All None where git cannot be run, or has no --batch-command (git before 2.36).
    Close the iterator to stop git early."""
    commands = (f"info {commit}\ncontents {commit}:{read}\n" for commit in commits)
    yield from _answers(gitdir, commands, len(commits), (b"commit", b"blob"))


def blobs(gitdir: Path, oids: Sequence[str]) -> Generator[bytes | None, None, None]:
    """For each of *oids*, in order: its bytes where it is a blob, as RepoReader.read_blob gives
    them; else None (the caller reads it the reference way, which says what is wrong). All None
    where git cannot be run. The chunks of a long metric history: libgit2 inflates them holding
    the GIL (0.37 s for the 20 of a 1,000,000-step history), git in 0.15 s beside the parsing."""
    yield from _answers(gitdir, (f"contents {oid}\n" for oid in oids), len(oids), (b"blob",))


def _answers(gitdir: Path, commands: Iterable[str], count: int,
             kinds: tuple[bytes] | tuple[bytes, bytes]) -> Generator[bytes | None, None, None]:
    """*count* answers of one `git cat-file --batch-command`, fed *commands* by a thread: each
    answer is a header per command of the item (one or two), the last one's followed by its
    content; the content where each header names the type *kinds* gives it, else None."""
    env = isolated_env()
    # (A partial clone's git would fetch a missing object from its remote, one by one: never here.)
    env.update(GIT_NO_REPLACE_OBJECTS="1", GIT_NO_LAZY_FETCH="1")
    try:
        proc = subprocess.Popen(["git", f"--git-dir={gitdir}", "cat-file", "--batch-command", "--buffer"],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env,
                                bufsize=READ_BUFFER)
    except OSError:
        yield from (None for _ in range(count))
        return
    assert proc.stdin is not None and proc.stdout is not None
    threads.start(_feed, proc.stdin, commands, name="gitexp-catfile-feeder")
    out, answered = proc.stdout, 0
    # (Unrolled for one or two headers: a list and a zip per answer cost 0.1 s of 100,000 runs.)
    two, first_kind, last_kind = len(kinds) == 2, kinds[0], kinds[-1]
    try:
        for _ in range(count):
            first = out.readline()
            second = out.readline() if two else first
            if not first or not second:
                break  # git stopped, or never started (no --batch-command): none from here
            head, last = _header(first) if two else None, _header(second)
            data = out.read(last[1] + 1) if last is not None else b"\n"
            if last is not None and (len(data) != last[1] + 1 or data[-1:] != b"\n"):
                break  # cut short: the stream can no longer be trusted
            answered += 1
            sound = last is not None and last[0] == last_kind and (not two or (head is not None and
                                                                              head[0] == first_kind))
            yield data[:-1] if sound else None
        yield from (None for _ in range(count - answered))
    finally:
        proc.kill()
        proc.wait()
        out.close()


def _feed(stdin: IO[bytes], commands: Iterable[str]) -> None:
    """Write the commands, one item's at a time."""
    try:
        for command in commands:
            stdin.write(command.encode())
        stdin.close()
    except (OSError, ValueError):
        pass  # git stopped early (the reader closed it): nothing more to ask


def _header(line: bytes) -> tuple[bytes, int] | None:
    """(type, size) of a `<oid> <type> <size>` line; None for `<object> missing` and the like."""
    parts = line.split()
    if len(parts) != 3 or not parts[2].isdigit():
        return None
    return parts[1], int(parts[2])
