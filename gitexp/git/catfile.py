"""Many runs' files read by one `git cat-file --batch-command`, for a listing of runs not cached yet.

Reading a run through libgit2 looks up its commit, its tree and its summary blob, each inflated
through its chain of deltas with a small cache of bases: 100 µs a run, up to a millisecond where
the pack's chains are deep, 10 s for 100,000 runs. git itself reads the same objects in a quarter
of that, in another process, while Python parses what it has read. listing_files is that fast path;
RepoReader.read_path_and_entry stays the reference, and tests/test_catfile.py holds the two to the
same answers on commits of every shape. Any run the batch cannot answer as the reference would
(not a commit, no summary blob) is None: the caller reads it the reference way.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Generator, Sequence
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


def listing_files(gitdir: Path, commits: Sequence[str], read: str,
                  locate: str) -> Generator[tuple[bytes, str | None] | None, None, None]:
    """For each of *commits*, in order: (the bytes of the blob at *read*, the id of the entry at
    *locate* or None without one) in its tree, as read_path_and_entry gives them, where the commit
    is a commit whose tree holds *read* as a blob; else None. All None where git cannot be run, or has no
    --batch-command (git before 2.36). Close the iterator to stop git early."""
    env = isolated_env()
    # (A partial clone's git would fetch a missing object from its remote, one by one: never here.)
    env.update(GIT_NO_REPLACE_OBJECTS="1", GIT_NO_LAZY_FETCH="1")
    try:
        proc = subprocess.Popen(["git", f"--git-dir={gitdir}", "cat-file", "--batch-command", "--buffer"],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    except OSError:
        yield from (None for _ in commits)
        return
    assert proc.stdin is not None and proc.stdout is not None
    threads.start(_feed, proc.stdin, commits, read, locate, name="gitexp-catfile-feeder")
    out, answered, trees = proc.stdout, 0, None
    try:
        for commit in commits:
            lines = [out.readline() for _ in range(3)]
            if not all(lines):
                break  # git stopped, or never started (no --batch-command): none from here
            kind, located, found = map(_header, lines)
            data = out.read(found[2] + 1) if found is not None else b"\n"
            if found is not None and (len(data) != found[2] + 1 or data[-1:] != b"\n"):
                break  # cut short: the stream can no longer be trusted
            answered += 1
            if kind is None or kind[1] != b"commit" or found is None or found[1] != b"blob":
                yield None
            elif located is not None:
                yield data[:-1], located[0]
            else:
                # "missing" is git's answer both for a tree without *locate* (a live run's first
                # commits, before its environment is captured) and for an entry whose object is
                # gone, where libgit2 names the entry: the tree itself tells them apart.
                if trees is None:
                    trees = _Trees(gitdir, env)
                known, entry = trees.entry(commit, locate)
                yield (data[:-1], entry) if known else None
        yield from (None for _ in commits[answered:])
    finally:
        proc.kill()
        proc.wait()
        out.close()
        if trees is not None:
            trees.close()


class _Trees:
    """The root trees of commits, read one at a time by a `git cat-file --batch` kept open."""

    def __init__(self, gitdir: Path, env: dict[str, str]) -> None:
        try:
            self._proc: subprocess.Popen[bytes] | None = subprocess.Popen(
                ["git", f"--git-dir={gitdir}", "cat-file", "--batch"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL, env=env)
        except OSError:
            self._proc = None

    def entry(self, commit: str, name: str) -> tuple[bool, str | None]:
        """(True, the id of the entry *name* of *commit*'s root tree, or None when it has none), or
        (False, None) when git cannot say (or *name* is a path)."""
        proc = self._proc
        if proc is None or "/" in name or proc.stdin is None or proc.stdout is None:
            return False, None
        try:
            proc.stdin.write(f"{commit}^{{tree}}\n".encode())
            proc.stdin.flush()
            header = _header(proc.stdout.readline())
            if header is None or header[1] != b"tree":
                return False, None
            data = proc.stdout.read(header[2] + 1)
        except (OSError, ValueError):
            return False, None
        if len(data) != header[2] + 1:
            return False, None
        return _tree_entry(data[:-1], name.encode(), len(header[0]) // 2)

    def close(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait()
            for stream in (self._proc.stdin, self._proc.stdout):
                if stream is not None:
                    stream.close()


def _tree_entry(tree: bytes, name: bytes, id_size: int) -> tuple[bool, str | None]:
    """_Trees.entry's answer from a raw tree object (`<mode> <name>NUL<id>`, entry after entry)."""
    pos = 0
    while pos < len(tree):
        space = tree.find(b" ", pos)
        nul = tree.find(b"\0", space + 1)
        if space < 0 or nul < 0 or nul + 1 + id_size > len(tree):
            return False, None  # not a tree git wrote
        if tree[space + 1:nul] == name:
            return True, tree[nul + 1:nul + 1 + id_size].hex()
        pos = nul + 1 + id_size
    return True, None


def _feed(stdin: IO[bytes], commits: Sequence[str], read: str, locate: str) -> None:
    """Write the three commands of each commit (its type, the entry at *locate*, the blob at *read*)."""
    try:
        for commit in commits:
            stdin.write(f"info {commit}\ninfo {commit}:{locate}\ncontents {commit}:{read}\n".encode())
        stdin.close()
    except (OSError, ValueError):
        pass  # git stopped early (the reader closed it): nothing more to ask


def _header(line: bytes) -> tuple[str, bytes, int] | None:
    """(object id, type, size) of a `<oid> <type> <size>` line; None for `<object> missing` and the like."""
    parts = line.split()
    if len(parts) != 3 or not parts[2].isdigit():
        return None
    return parts[0].decode("ascii", "replace"), parts[1], int(parts[2])
