"""The run shelf: runs kept reachable through one ref, `refs/experiments-shelf`, not a ref each.

git goes through every ref in `git fetch`, `git push`, `git log --decorate` and `git gc`, so at
100,000 runs a ref each made the user's own commands 6x to 40x slower (benchmarks/README.md,
experiment_shelves.py). The shelf is a chain of link commits of gitexp's own. Each link's first
parent is the link before it; its other parents are the run commits it shelves, which keeps them
reachable (git never prunes them) with one ref. Its tree holds `shelved`, lines `<commit> <ref>`
of the run refs it shelves, and `unshelved`, lines `<ref>` of those it takes off the shelf again.
Walked from the first link to the tip, the links give the shelved refs: docs/format.md, "The run
shelf", says it precisely enough for another tool.

A run's ref, where there is one, overrides the shelf (with_shelved): a shelved run that is written
again gets its ref back before it is taken off the shelf, so at every moment each run is named
once or, between the two steps, twice with the ref winning. Links are dated 2000-01-01, older
than any run they hold: git walks commits newest first, and an old link is reached after its runs.

This module reads git's objects through `git cat-file` and writes them through git's plumbing, so
that the readers that import no pygit2 (gitfiles.py, lazyrepo.py) can use it. read() keeps what it
found in `<common git dir>/gitexp/cache/shelf-v1.marshal`, by tip, and brings it up to date from
the links added since.
"""

from __future__ import annotations

import contextlib
import fcntl
import marshal
import os
import re
import subprocess
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import NamedTuple

from gitexp import threads
from gitexp.errors import StorageError
from gitexp.git import catfile
from gitexp.git.gitfiles import RUN_PREFIX, SHELF_REF, settled

SHELVED, UNSHELVED = "shelved", "unshelved"
LINK_DATE = "946684800 +0000"  # 2000-01-01: older than every run (see above)
LINK_AUTHOR = ("gitexp", "gitexp@localhost")
CACHE = "gitexp/cache/shelf-v1.marshal"
LOCK = "gitexp/shelf.lock"
PER_LINK = 64  # runs a link shelves (measured: benchmarks/README.md, experiment_shelves.py, chain:64)
_SCRATCH = "refs/experiments-shelf-writing"  # where fast-import leaves the last link, until the shelf's ref moves
_BAD_CHARS = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]|\.\.|//|@\{|/\.|\.lock(?:/|$)|[./]$")
_OID = re.compile(r"[0-9a-f]{40}")
_packed_tip: tuple[tuple[object, ...], str | None] | None = None  # (packed-refs' identity, the shelf's tip in it)
_memo: tuple[str, str, dict[str, str]] | None = None  # (common dir, tip, refs) of the last read()


def is_run_ref(name: str) -> bool:
    """Whether *name* can be a run's ref: refs/experiments/<experiment>/<run id>, by git's ref-name rules."""
    rest = name[len(RUN_PREFIX):]
    return name.startswith(RUN_PREFIX) and "/" in rest and not rest.startswith(("/", ".")) and \
        _BAD_CHARS.search(rest) is None


class ShelfError(StorageError):
    """The shelf cannot be read as docs/format.md says it is written."""


class Link(NamedTuple):
    commit: str
    parents: list[str]
    shelved: dict[str, str]  # ref -> run commit
    unshelved: list[str]


def tip(commondir: Path) -> str | None:
    """The commit the shelf ref points at (its loose file, else its packed-refs line), or None."""
    try:
        data = (commondir / SHELF_REF).read_bytes()
    except FileNotFoundError:
        data = None
    except OSError as exc:
        raise ShelfError(f"cannot read {SHELF_REF}: {exc}") from exc
    if data is not None:
        value = data.decode("ascii", "replace").strip()
        if not _OID.fullmatch(value):
            raise ShelfError(f"{SHELF_REF} holds {value[:60]!r}, not a commit id; `git exp verify` says more")
        return value
    global _packed_tip
    path = commondir / "packed-refs"
    try:
        info = os.stat(path)
        identity = (str(path), info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)
        if _packed_tip is not None and _packed_tip[0] == identity:
            return _packed_tip[1]  # (a writer asks for a ref it is about to create: 100,000 lines unread)
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ShelfError(f"cannot read packed-refs: {exc}") from exc
    at = data.find(b" " + SHELF_REF.encode() + b"\n")
    found = data[at - 40:at].decode("ascii", "replace") if at >= 40 and data[at - 41:at - 40] in (b"", b"\n") else None
    packed = found if found is not None and _OID.fullmatch(found) else None
    # (A packed-refs rewritten within the same tick could keep its stat: gitfiles.refs_state.)
    _packed_tip = (identity, packed) if settled(info) else None
    return packed


def read(commondir: Path) -> dict[str, str]:
    """ref -> commit of every shelved run, by name ({} without a shelf); ShelfError when it is
    damaged. The same dict is given to every caller until the shelf moves: read it, never change it."""
    global _memo
    now = tip(commondir)
    if now is None:
        return {}
    key = str(commondir)
    if _memo is not None and _memo[:2] == (key, now):
        return _memo[2]
    cached = _load_cache(commondir)
    if cached is not None and cached[0] == now:
        refs = cached[1]
    else:
        refs = dict(sorted(_walk(commondir, now, cached).items()))  # by name, as with_shelved lists them
        _save_cache(commondir, now, refs)
    _memo = (key, now, refs)
    return refs


def with_shelved(commondir: Path, prefix: str, real: dict[str, str]) -> dict[str, str]:
    """*real* (refs starting with *prefix*) and, after them by name, the shelved refs of *prefix*
    that no real ref overrides: the run refs as every reader sees them."""
    if not (prefix.startswith(RUN_PREFIX) or RUN_PREFIX.startswith(prefix)):
        return real
    shelved = read(commondir)  # (kept by name)
    if not shelved:
        return real
    out = dict(real)
    if prefix == RUN_PREFIX:
        out.update(pair for pair in shelved.items() if pair[0] not in real)
    else:
        out.update(pair for pair in shelved.items() if pair[0].startswith(prefix) and pair[0] not in real)
    return out


def links(commondir: Path, start: str | None = None, stop: str | None = None) -> list[Link]:
    """The links from *start* (by default the tip) back to the first, or to *stop* (not given),
    each checked; ShelfError at the first that is not one.

    The commits are read one after the other (each names the one before), then their trees and
    blobs in two batches: 1,563 links of 100,000 runs in a fraction of a second."""
    commit = tip(commondir) if start is None else start
    heads: list[tuple[str, str, list[str]]] = []  # (link, its tree, its parents), tip first
    with _Reader(commondir) as reader:
        seen: set[str] = set()
        while commit is not None and commit != stop:
            if commit in seen:
                raise ShelfError(f"the shelf's links loop back to {commit[:12]}; `git exp verify` says more")
            seen.add(commit)
            tree, parents, linked = _commit(reader.object(commit, b"commit"), commit)
            if not linked:  # gitexp did not write it: the link before was the first (its parents are runs)
                if not heads:
                    raise ShelfError(f"{SHELF_REF} points at {commit[:12]}, which is no link gitexp wrote")
                break
            heads.append((commit, tree, parents))
            commit = parents[0] if parents else None
    named = [_tree_blobs(tree, link) for (link, _, _), tree in
             zip(heads, _batch(commondir, [tree for _, tree, _ in heads], b"tree"), strict=True)]
    wanted = [oid for blobs in named for oid in blobs.values()]
    blobs = dict(zip(wanted, _batch(commondir, wanted, b"blob"), strict=True))
    at_stop = stop is not None and commit == stop  # (else the last link read is the first of all)
    out = []
    for k, ((link, _, parents), files) in enumerate(zip(heads, named, strict=True)):
        shelved = _parse_shelved(blobs[files[SHELVED]], link) if SHELVED in files else {}
        unshelved = _parse_unshelved(blobs[files[UNSHELVED]], link) if UNSHELVED in files else []
        before = heads[k + 1][0] if k + 1 < len(heads) else stop if at_stop else None
        runs = set(shelved.values())
        if not parents or not (set(parents) == runs if before is None
                               else parents[0] == before and set(parents[1:]) == runs and before not in runs):
            raise ShelfError(f"link {link[:12]} of the shelf does not have the runs it shelves as its parents "
                             "(and the link before it first)")
        out.append(Link(link, parents, shelved, unshelved))
    return out


def _is_first(link: Link) -> bool:
    """Whether *link* starts the chain: its parents are the runs it shelves, and nothing else."""
    return set(link.parents) == set(link.shelved.values())


def _walk(commondir: Path, now: str, cached: tuple[str, dict[str, str]] | None) -> dict[str, str]:
    """The shelved refs at *now*: from the *cached* ones (tip, refs) where the links since lead
    back to that tip, else from the first link."""
    stop = cached[0] if cached is not None else None
    found = links(commondir, now, stop)
    met = cached is not None and found and not _is_first(found[-1]) and found[-1].parents[0] == stop
    refs = dict(cached[1]) if met and cached is not None else {}
    for link in reversed(found):
        for name in link.unshelved:
            refs.pop(name, None)
        refs.update(link.shelved)
    return refs


_LINK_COMMITTER = f"committer {LINK_AUTHOR[0]} <{LINK_AUTHOR[1]}> {LINK_DATE}"


def _commit(data: bytes, commit: str) -> tuple[str, list[str], bool]:
    """(tree, parents, whether gitexp committed it as a link) of a raw commit object."""
    head, _, _ = data.partition(b"\n\n")
    tree, parents, linked = None, [], False
    for line in head.decode("utf-8", "replace").split("\n"):
        word, _, rest = line.partition(" ")
        if word == "tree" and tree is None:
            tree = rest
        elif word == "parent":
            parents.append(rest)
        elif word == "committer":
            linked = line == _LINK_COMMITTER
    ids = "".join([tree or "", *parents])  # (64 parents a link: checked as one text)
    if tree is None or len(ids) != 40 * (1 + len(parents)) or ids.encode().translate(None, b"0123456789abcdef"):
        raise ShelfError(f"commit {commit[:12]} of the shelf is not a commit git wrote")
    return tree, parents, linked


def _batch(commondir: Path, oids: list[str], kind: bytes) -> list[bytes]:
    """The contents of *oids*, each of type *kind*, from one `git cat-file --batch` fed by a thread."""
    if not oids:
        return []
    with _Reader(commondir) as reader:
        return reader.many(oids, kind)


class _Reader:
    """One `git cat-file --batch`, asked one object at a time or many at once."""

    def __init__(self, commondir: Path) -> None:
        env = catfile.isolated_env()
        env.update(GIT_NO_REPLACE_OBJECTS="1", GIT_NO_LAZY_FETCH="1")
        try:
            self._proc = subprocess.Popen(["git", f"--git-dir={commondir}", "cat-file", "--batch"],
                                          stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                          stderr=subprocess.DEVNULL, env=env)
        except OSError as exc:
            raise ShelfError(f"cannot run git to read the shelf: {exc}") from exc

    def __enter__(self) -> _Reader:
        return self

    def __exit__(self, *_: object) -> None:
        self._proc.kill()
        self._proc.wait()
        for stream in (self._proc.stdin, self._proc.stdout):
            if stream is not None:
                stream.close()

    def object(self, oid: str, kind: bytes) -> bytes:
        stdin = self._proc.stdin
        assert stdin is not None
        try:
            stdin.write(f"{oid}\n".encode())
            stdin.flush()
        except OSError as exc:
            raise ShelfError(f"cannot read {oid[:12]} of the shelf: {exc}") from exc
        return self._answer(oid, kind)

    def many(self, oids: list[str], kind: bytes) -> list[bytes]:
        stdin = self._proc.stdin
        assert stdin is not None

        def feed() -> None:
            with contextlib.suppress(OSError, ValueError):  # (git stopped: the answers say so)
                stdin.write("".join(f"{oid}\n" for oid in oids).encode())
                stdin.close()
        threads.start(feed, name="gitexp-shelf-feeder")
        return [self._answer(oid, kind) for oid in oids]

    def _answer(self, oid: str, kind: bytes) -> bytes:
        stdout = self._proc.stdout
        assert stdout is not None
        try:
            header = stdout.readline().split()
            if len(header) != 3 or header[1] != kind or not header[2].isdigit():
                raise ShelfError(f"the shelf names {oid[:12]}, which is not a {kind.decode()} here "
                                 f"({b' '.join(header[1:]).decode(errors='replace') or 'no answer'})")
            size = int(header[2])
            data = stdout.read(size + 1)
        except OSError as exc:
            raise ShelfError(f"cannot read {oid[:12]} of the shelf: {exc}") from exc
        if len(data) != size + 1:
            raise ShelfError(f"git stopped while reading {oid[:12]} of the shelf")
        return data[:-1]


def _tree_blobs(tree: bytes, commit: str) -> dict[str, str]:
    """name -> blob id of the `shelved` and `unshelved` entries of a raw tree object."""
    out, pos = {}, 0
    while pos < len(tree):
        space, nul = tree.find(b" ", pos), tree.find(b"\0", pos)
        if space < 0 or nul < space or nul + 21 > len(tree):
            raise ShelfError(f"the tree of link {commit[:12]} of the shelf is damaged")
        mode, name = tree[pos:space], tree[space + 1:nul].decode("utf-8", "replace")
        if name in (SHELVED, UNSHELVED) and mode == b"100644":
            out[name] = tree[nul + 1:nul + 21].hex()
        pos = nul + 21
    return out


def _parse_shelved(data: bytes, commit: str) -> dict[str, str]:
    """ref -> commit of a `shelved` blob; ShelfError naming the first line that is not `<commit> <run ref>`.

    A link holds 64 lines and a shelf of 100,000 runs 1,563 links: checked as one text each
    (_shelved_at_once), with the line-by-line reading (parse_shelved_lines) the reference, and
    the one that names what is wrong; tests/test_shelf.py holds the two to the same answers."""
    text = data.decode("utf-8", "replace")
    found = _shelved_at_once(text)
    return found if found is not None else parse_shelved_lines(text, commit)


def parse_shelved_lines(text: str, commit: str) -> dict[str, str]:
    """_parse_shelved's reference: each line read and checked in turn."""
    lines = text.split("\n")
    if lines.pop() != "":
        raise ShelfError(f"the shelved file of link {commit[:12]} of the shelf does not end with a newline")
    out: dict[str, str] = {}
    for line in lines:
        oid, _, name = line.partition(" ")
        if not _OID.fullmatch(oid) or not is_run_ref(name) or name in out:
            raise ShelfError(f"link {commit[:12]} of the shelf has a line that is not `<commit> <run ref>` "
                             f"(or names a run twice): {line[:100]!r}")
        out[name] = oid
    return out


# _BAD_CHARS for names joined by newlines: a newline ends a name, as the end of the text does.
_BAD_JOINED = re.compile(r"[\x00-\x09\x0b-\x20\x7f~^:?*\[\\]|\.\.|//|@\{|/\.|\.lock(?:/|\n|$)|[./](?:\n|$)")


def _shelved_at_once(text: str) -> dict[str, str] | None:
    """parse_shelved_lines(text) where every line is sound, checked at C speed; else None."""
    lines = text.split("\n")
    if lines.pop() != "":
        return None
    rests = [line[41 + len(RUN_PREFIX):] for line in lines]
    if "".join(line[40:41 + len(RUN_PREFIX)] for line in lines) != f" {RUN_PREFIX}" * len(lines):
        return None  # a line without " refs/experiments/" after its 40 characters
    joined = "\n".join(rests)
    if _BAD_JOINED.search(joined) or joined.startswith((".", "/")) or "\n." in joined or "\n/" in joined or \
            not all("/" in rest for rest in rests):
        return None
    ids = "".join(line[:40] for line in lines)
    if len(ids) != 40 * len(lines) or ids.encode().translate(None, b"0123456789abcdef"):
        return None
    out = {line[41:]: line[:40] for line in lines}
    return out if len(out) == len(lines) else None


def _parse_unshelved(data: bytes, commit: str) -> list[str]:
    """The refs of an `unshelved` blob; ShelfError at a line that is no run ref."""
    names = data.decode("utf-8", "replace").split("\n")
    if names.pop() != "":
        raise ShelfError(f"the unshelved file of link {commit[:12]} of the shelf does not end with a newline")
    for name in names:
        if not is_run_ref(name):
            raise ShelfError(f"link {commit[:12]} of the shelf takes back {name[:100]!r}, which is no run ref")
    return names


def _load_cache(commondir: Path) -> tuple[str, dict[str, str]] | None:
    try:
        data = marshal.loads((commondir / CACHE).read_bytes())
    except (OSError, EOFError, ValueError, TypeError):
        return None
    if type(data) is tuple and len(data) == 2 and type(data[0]) is str and type(data[1]) is dict:
        return data
    return None


def _save_cache(commondir: Path, now: str, refs: dict[str, str]) -> None:
    path = commondir / CACHE
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    with contextlib.suppress(OSError):  # (a read-only repository: read from git each time)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(marshal.dumps((now, refs)))
        os.replace(tmp, path)


# -- writing ----------------------------------------------------------------------------------------

@contextlib.contextmanager
def locked(commondir: Path) -> Iterator[None]:
    """Hold the shelf's lock: one process at a time adds a link (the ref's compare-and-swap would
    catch a second one, which would then have to start over)."""
    path = commondir / LOCK
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def add_link(commondir: Path, shelve: dict[str, str], take_back: Iterable[str] = ()) -> str | None:
    """Add a link that shelves *shelve* (ref -> run commit) and takes *take_back* off the shelf;
    returns the new tip, or None when there was nothing to do. Call it holding locked()."""
    return add_links(commondir, [shelve], take_back, per_link=max(len(shelve), 1))


def add_links(commondir: Path, batches: list[dict[str, str]], take_back: Iterable[str] = (),
              per_link: int = PER_LINK, fresh: bool = False) -> str | None:
    """Add links that shelve the refs of *batches* (ref -> run commit), *per_link* runs to a link,
    the first taking *take_back* off the shelf, and move the shelf's ref to the last by
    compare-and-swap; returns the new tip, or None when there was nothing to do. *fresh*: a chain
    of its own, replacing the shelf (compact()). Call it holding locked(). One `git fast-import`
    writes them all, into a pack of its own, however few."""
    current = tip(commondir)
    shelved = read(commondir) if current is not None and not fresh else {}
    adding = {name: oid for batch in batches for name, oid in batch.items() if shelved.get(name) != oid}
    back = sorted({name for name in take_back if name in shelved and name not in adding})
    for name, oid in adding.items():
        if not is_run_ref(name) or not _OID.fullmatch(oid):
            raise ShelfError(f"cannot shelve {name!r} at {oid!r}: not a run ref and a commit id")
    if (not adding and not back) or (current is None and not adding):
        return None
    names = list(adding)
    chunks = [names[k:k + per_link] for k in range(0, len(names), per_link)] or [[]]
    stream = []
    for number, chunk in enumerate(chunks, 1):
        files = [(SHELVED, "".join(f"{adding[name]} {name}\n" for name in sorted(chunk)))] if chunk else []
        if number == 1 and back:
            files.append((UNSHELVED, "".join(f"{name}\n" for name in back)))
        said = [f"{len(chunk)} run{'s' * (len(chunk) != 1)} shelved"] if chunk else []
        said += [f"{len(back)} taken back"] if number == 1 and back else []
        message = f"gitexp shelf: {', '.join(said)}\n"
        stream.append(f"commit {_SCRATCH}\nmark :{number}\n"
                      f"committer {LINK_AUTHOR[0]} <{LINK_AUTHOR[1]}> {LINK_DATE}\n"
                      f"data {len(message.encode())}\n{message}")
        previous = f":{number - 1}" if number > 1 else None if fresh else current
        runs = list(dict.fromkeys(adding[name] for name in sorted(chunk)))
        if previous is None:  # the first link of all: its parents are its runs alone
            previous, runs = runs[0], runs[1:]
        stream.append(f"from {previous}\n" + "".join(f"merge {oid}\n" for oid in runs) + "deleteall\n")
        for name, text in files:
            stream.append(f"M 100644 inline {name}\ndata {len(text.encode())}\n{text}\n")
    if adding:
        # A last link that shelves nothing, the link before its one parent: `git fetch` checks what
        # it brought with `git rev-list --not --all`, which walked the 64 recent run commits that
        # were the tip's parents (a fetch of a branch at 100,000 runs: 1.06x the time without runs,
        # 1.02x with this link; git's task clock, 25 fetches each).
        message = "gitexp shelf: 0 runs shelved\n"
        stream.append(f"commit {_SCRATCH}\nmark :{len(chunks) + 1}\n"
                      f"committer {LINK_AUTHOR[0]} <{LINK_AUTHOR[1]}> {LINK_DATE}\n"
                      f"data {len(message.encode())}\n{message}from :{len(chunks)}\ndeleteall\n")
    marks = commondir / "gitexp" / f"shelf-marks.{os.getpid()}"
    try:
        # Below fastimport.unpackLimit objects (100 by default) git would leave them loose, where the
        # upkeep never settles them and every `git log --oneline` looks through their folders until
        # the user's `git gc`: a link or two of each pass. Packed, but without deltas (--depth=0),
        # gitexp's merges fold the pack with its runs' (maintenance.compact): packs of deltas, which
        # they leave alone, one each pass, stayed until the next settling (12,500 runs at 100,000
        # runs), and every lookup of an object that git or gitexp makes went through them all.
        _git_out(commondir, ["-c", "fastimport.unpackLimit=0", "fast-import", "--depth=0", "--quiet", "--force",
                             f"--export-marks={marks}"], "".join(stream))
        new = marks.read_text().splitlines()[-1].split()[1] if marks.exists() else ""
        if not _OID.fullmatch(new):
            raise ShelfError("`git fast-import` wrote no link of the shelf")
        _git_out(commondir, ["update-ref", "-m", "gitexp: shelf", SHELF_REF, new, current or "0" * 40])
    finally:
        marks.unlink(missing_ok=True)
        _git_out(commondir, ["update-ref", "-d", _SCRATCH], "", check=False)
    return new


def _git_out(commondir: Path, args: list[str], stdin: str = "", check: bool = True) -> str:
    env = catfile.isolated_env()
    env.update(GIT_NO_REPLACE_OBJECTS="1")
    try:
        proc = subprocess.run(["git", f"--git-dir={commondir}", *args], input=stdin.encode(), capture_output=True,
                              env=env, check=False)
    except OSError as exc:
        raise ShelfError(f"cannot run git to write the shelf: {exc}") from exc
    if proc.returncode and check:
        raise ShelfError(f"`git {args[0]}` failed writing the shelf: "
                         f"{proc.stderr.decode(errors='replace').strip() or proc.returncode}")
    return proc.stdout.decode(errors="replace").strip()


def compact(commondir: Path) -> bool:
    """Write the shelf again as a chain of the runs it holds now, when its links also hold commits
    of runs taken off it since (removed, or given a ref again): git keeps what any link reaches, so
    `git exp gc` compacts it before a deleted run's objects can go. True when it did."""
    with locked(commondir):
        current = tip(commondir)
        if current is None:
            return False
        refs = read(commondir)
        held = {oid for link in links(commondir, current) for oid in link.shelved.values()}
        if held == set(refs.values()):
            return False
        if refs:
            add_links(commondir, [refs], fresh=True)
        else:
            _git_out(commondir, ["update-ref", "-m", "gitexp: shelf emptied", "-d", SHELF_REF, current])
        return True
