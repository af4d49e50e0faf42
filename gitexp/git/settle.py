"""Run objects settled: packed by git with deltas, in kept packs that `git gc` leaves alone.

At 100,000 runs the repository holds about 1.6 million run objects, and every `git gc` of the
user's copied them all into a new pack again (14 to 16 s on two cores, against 0.03 s without
runs). So gitexp's background upkeep (refmaint.py) settles them: `git pack-objects --revs
--honor-pack-keep` packs what the run refs (refs/experiments*, refs/notes/experiments) reach and
the user's refs and HEAD do not, with git's own delta compression, into a pack whose `.keep` says
`gitexp settled`. `git gc` and `git repack -a -d` skip the objects of kept packs, so they only
walk them. Every pack whose objects are all in settled packs is removed then, as `git repack -d`
removes the packs it made redundant; a pack nine tenths settled is first rewritten as its
remainder (`git pack-objects` of the objects no settled pack holds), so every object stays. Settled packs
are merged into one after each pass (_roll_up): every big pack index costs each git command that
looks up an object the user has not packed yet, or abbreviates a hash, a search of its own
(`git log --oneline --decorate -20` at 100,000 runs: 1.13x the time without runs with two
settled packs, 1.09x with one).

A kept pack's objects outlive the refs that reached them: `git exp gc` lifts every settled keep
(lift()) after it deletes removed runs, so the user's next `git gc` prunes what they alone held,
and the next upkeep settles the rest again. A pass and lift hold SETTLE_LOCK, so one runs at a
time; a pass holds maintenance.py's pack lock too, so no merge of gitexp's own packs runs beside
it, except while it merges the settled packs, which those merges never touch.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from gitexp.git import catfile, maintenance, packindex

KEEP = b"gitexp settled\n"
RUN_REFS = ("refs/experiments/", "refs/experiments-", "refs/notes/experiments")
REWRITE_FROM = 0.9  # share of a pack's objects settled from which its remainder is rewritten
# Settling walks every run object (4 s at 100,000 runs), so it waits until the packs that
# appeared since the last pass (newer than STAMP) hold this many objects and an eighth of those
# settled: a sweep pays the walk once per eighth of its size, and `git gc` copies at most that
# eighth again. The floor is low: a pass happens at most once per 1,000 new runs (the archiving
# pass), a walk of a few thousand runs costs a tenth of a second, and until settled the objects
# stay as gitexp wrote them, uncompressed (a quarter more disk for a repository of 1,000 runs).
SETTLE_FROM = 2_000
# Bytes of settled packs up to which each pass merges them all into one (_roll_up): about 200,000
# runs; git then holds about 1.3 GB (650 MB for the 257 MB of 100,000 runs) for 15 s.
ROLL_UP_MOST = 512 << 20
STAMP = "gitexp/settled.stamp"
SETTLE_LOCK = "settle.lock"  # held by a pass (settle) and lift, always before the pack lock
_SIDE = ("rev", "bitmap")  # files beside a pack that go with it


@dataclass
class Settled:
    objects: int = 0  # objects packed into a new settled pack
    removed: int = 0  # packs removed as redundant (rewritten ones included)
    rolled: int = 0  # settled packs merged into one


def settle(commondir: Path, minimum: int | None = None, roll_up_most: int | None = None) -> Settled:
    """Settle the run objects no kept pack holds yet, once the packs made since the last pass
    hold *minimum* (SETTLE_FROM) objects and an eighth of the settled ones, then merge the settled
    packs (_roll_up, up to *roll_up_most*: ROLL_UP_MOST). Nothing when another process holds
    SETTLE_LOCK, and no new settled pack while one holds the pack lock (the next upkeep makes it)."""
    minimum = SETTLE_FROM if minimum is None else minimum
    most = ROLL_UP_MOST if roll_up_most is None else roll_up_most
    done = Settled()
    with maintenance.pack_lock(commondir, wait=False, name=SETTLE_LOCK) as settling:
        if not settling:
            return done
        with maintenance.pack_lock(commondir, wait=False) as held:
            if held:  # (else another process merges gitexp's packs: settled at the next upkeep)
                _settle_new(commondir, minimum, done)
        # Outside the pack lock: a sweep's writers, past maintenance.HARD_LIMIT packs, wait for it,
        # and the merge takes seconds. It reads and removes settled packs alone, which nothing but
        # a pass (and lift) touches, and both hold SETTLE_LOCK.
        if not maintenance.gc_running(commondir):
            done.rolled = _roll_up(commondir, most)
    return done


def _settle_new(commondir: Path, minimum: int, done: Settled) -> None:
    """The pass itself, holding the pack lock: a settled pack of the run objects no kept pack holds
    yet, once there are enough of them (see settle), and the plain packs it made redundant removed."""
    pack_dir = commondir / "objects" / "pack"
    settled = sum(packindex.object_count(pack_dir, base) for base in settled_packs(pack_dir))
    if _new_objects(commondir) < max(minimum, settled // 8, 1):
        return
    # Stamped before the walk: packs written during it count toward the next pass.
    (commondir / STAMP).touch()
    _drop_dead_work(commondir)
    runs, others = _tips(commondir)
    if runs:
        # gitexp's own packs store small objects as uncompressed deflate blocks, which git would
        # copy as they are: compressed again here, they take a quarter to a third less space,
        # for a tenth of a millisecond per run, in the background.
        args = ["--revs", "--honor-pack-keep", "--no-reuse-object"]
        name = _pack(commondir, args, [*runs, "--not", *others])
        if name is None:  # a ref at an object this repository lacks (damage) stops git's walk
            runs, others = _present(commondir, runs), _present(commondir, others)
            name = _pack(commondir, args, [*runs, "--not", *others]) if runs else None
        if name is not None:
            done.objects = packindex.object_count(pack_dir, name)
    if not maintenance.gc_running(commondir):
        done.removed = _drop_redundant(commondir)


def _drop_dead_work(commondir: Path) -> None:
    """Remove what a pass that died (killed, out of memory) left: its folder, and a settled keep
    and pack moved into place without their index (only a pass, under the lock held here, moves them)."""
    for name in os.listdir(commondir / "gitexp"):
        pid = name.removeprefix("settle.")
        if name.startswith("settle.") and pid.isdigit() and not maintenance.alive(int(pid)):
            shutil.rmtree(commondir / "gitexp" / name, ignore_errors=True)
    pack_dir = commondir / "objects" / "pack"
    for name in os.listdir(pack_dir):
        base = name[:-5]
        if name.endswith(".keep") and not (pack_dir / f"{base}.idx").exists():
            try:
                if (pack_dir / name).read_bytes() != KEEP:
                    continue
            except OSError:
                continue
            for suffix in ("pack", *_SIDE, "keep"):
                (pack_dir / f"{base}.{suffix}").unlink(missing_ok=True)


def lift(commondir: Path) -> int:
    """Remove every settled keep: their packs become plain packs, which `git gc` repacks and
    prunes. Returns the number lifted."""
    with maintenance.pack_lock(commondir, wait=True, name=SETTLE_LOCK), maintenance.pack_lock(commondir, wait=True):
        pack_dir = commondir / "objects" / "pack"
        lifted = 0
        for base in settled_packs(pack_dir):
            (pack_dir / f"{base}.keep").unlink(missing_ok=True)
            lifted += 1
        (commondir / STAMP).unlink(missing_ok=True)  # every pack is new to the next pass
        return lifted


def settled_packs(pack_dir: Path) -> list[str]:
    """Base names (pack-<sha>) of the settled packs in *pack_dir*."""
    out = []
    for name in os.listdir(pack_dir):
        if name.endswith(".keep") and os.path.exists(pack_dir / f"{name[:-5]}.idx"):
            try:
                if (pack_dir / name).read_bytes() == KEEP:
                    out.append(name[:-5])
            except OSError:
                continue
    return sorted(out)


def _env() -> dict[str, str]:
    env = catfile.isolated_env()
    env.update(GIT_NO_REPLACE_OBJECTS="1", GIT_NO_LAZY_FETCH="1")
    return env


def _git(commondir: Path, args: list[str], stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    command = ["git", f"--git-dir={commondir}", *args]
    try:
        return subprocess.run(command, input=stdin, capture_output=True, env=_env(), check=False)
    except OSError as exc:  # no git: nothing settles, as before
        return subprocess.CompletedProcess(command, 127, b"", str(exc).encode())


def _tips(commondir: Path) -> tuple[list[str], list[str]]:
    """The commits the run refs point at, and every other ref's target and HEAD's; none in a
    partial clone, whose git would fetch each object it lacks from the remote while walking
    (GIT_NO_LAZY_FETCH stops that only from git 2.39.4 and 2.45 on)."""
    promisors = _git(commondir, ["config", "--get-regexp", r"^(extensions\.partialclone|remote\..*\.promisor)$"])
    for line in promisors.stdout.decode(errors="replace").splitlines():
        key, _, value = line.partition(" ")
        if key == "extensions.partialclone" or value.strip().lower() in ("true", "yes", "on", "1", ""):
            return [], []
    proc = _git(commondir, ["for-each-ref", "--format=%(objectname) %(refname)"])
    if proc.returncode:
        return [], []
    runs: list[str] = []
    others: list[str] = []
    for line in proc.stdout.decode(errors="replace").splitlines():
        oid, _, name = line.partition(" ")
        (runs if name.startswith(RUN_REFS) else others).append(oid)
    head = _git(commondir, ["rev-parse", "--verify", "--quiet", "HEAD"])
    if head.returncode == 0:
        others.append(head.stdout.decode().strip())
    return runs, others


def _present(commondir: Path, oids: list[str]) -> list[str]:
    """The ids of *oids* whose object this repository has."""
    proc = _git(commondir, ["cat-file", "--batch-check=%(objectname) %(objecttype)"], ("\n".join(oids) + "\n").encode())
    if proc.returncode:
        return []
    # One line per id, in order: "<id> <type>", or "<id> missing".
    lines = proc.stdout.decode(errors="replace").splitlines()
    return [oid for oid, line in zip(oids, lines, strict=False) if not line.endswith(" missing")]


def _pack(commondir: Path, args: list[str], lines: list[str], keep: bool = True) -> str | None:
    """Have `git pack-objects *args*` write a pack of what *lines* name, and move it into place,
    kept as settled when *keep*; its base name, or None when it would be empty or git failed."""
    work = commondir / "gitexp" / f"settle.{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        proc = _git(commondir, ["pack-objects", "--delta-base-offset", "--local", "--non-empty", "-q", *args,
                                str(work / "pack")], ("\n".join(lines) + "\n").encode())
        digest = proc.stdout.decode().strip()
        if proc.returncode or len(digest) != 40:
            return None
        base = f"pack-{digest}"
        pack_dir = commondir / "objects" / "pack"
        if keep:
            try:
                fd = os.open(pack_dir / f"{base}.keep", os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o444)
            except FileExistsError:
                pass  # the same objects, kept already
            else:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(KEEP)
        # The index last: a pack without one is invisible to readers.
        for suffix in ("pack", *_SIDE, "idx"):
            if (work / f"{base}.{suffix}").exists():
                os.replace(work / f"{base}.{suffix}", pack_dir / f"{base}.{suffix}")
        return base
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _new_objects(commondir: Path) -> int:
    """Objects in the packs no keep holds that appeared since the last pass (all, before the first)."""
    pack_dir = commondir / "objects" / "pack"
    try:
        since = os.stat(commondir / STAMP).st_mtime
    except OSError:
        since = 0.0
    total = 0
    for base in _plain_packs(pack_dir):
        try:
            if os.stat(pack_dir / f"{base}.idx").st_mtime >= since:
                total += packindex.object_count(pack_dir, base)
        except OSError:
            continue
    return total


def _plain_packs(pack_dir: Path) -> list[str]:
    """Packs no .keep holds and git gives no other role (promisor, cruft, bitmapped)."""
    names = set(os.listdir(pack_dir))
    return sorted(name[:-4] for name in names if name.startswith("pack-") and name.endswith(".idx")
                  and f"{name[:-4]}.pack" in names
                  and not any(f"{name[:-4]}.{s}" in names for s in ("keep", "promisor", "mtimes", "bitmap")))


def _drop_redundant(commondir: Path) -> int:
    pack_dir = commondir / "objects" / "pack"
    kept = settled_packs(pack_dir)
    if not kept:
        return 0
    settled = packindex.merged_names([packindex.object_names((pack_dir / f"{base}.idx").read_bytes()) for base in kept])
    removed = 0
    for base in _plain_packs(pack_dir):
        try:
            names = packindex.object_names((pack_dir / f"{base}.idx").read_bytes())
        except (OSError, ValueError):
            continue
        rest = packindex.missing(names, settled)
        if rest and len(rest) > (1 - REWRITE_FROM) * len(names) / 20:
            continue
        if rest and _pack(commondir, [], rest, keep=False) is None:
            continue
        _remove(pack_dir, base)
        removed += 1
    if removed:
        # A multi-pack index naming a removed pack would send git looking for it.
        (pack_dir / "multi-pack-index").unlink(missing_ok=True)
    return removed


def _roll_up(commondir: Path, most: int = ROLL_UP_MOST) -> int:
    """Merge the settled packs into one where there are two or more; how many were merged. Called
    holding SETTLE_LOCK. Their objects are copied as they are, deltas included (`--window=0`:
    no new delta search, which settling did once): 1.24 million objects at 100,000 runs in 7 s
    and 650 MB of git's memory, in the background upkeep, once per eighth more runs. Past *most*
    bytes of them in all, each pass would copy them all again: they are merged geometrically (the
    smallest until each is twice the size of all smaller ones together), a few settled packs."""
    pack_dir = commondir / "objects" / "pack"
    chosen = settled_packs(pack_dir)
    sizes = sorted((os.path.getsize(pack_dir / f"{base}.pack"), base) for base in chosen)
    if sum(size for size, _ in sizes) > most:
        chosen = [base for _, base in sizes[:maintenance.geometric_split([size for size, _ in sizes])]]
    if len(chosen) < 2:
        return 0
    merged = _pack(commondir, ["--stdin-packs", "--window=0"], [f"{base}.pack" for base in chosen])
    if merged is None:
        return 0
    for base in chosen:
        if base != merged:
            _remove(pack_dir, base)
    (pack_dir / "multi-pack-index").unlink(missing_ok=True)
    return len(chosen)


def _remove(pack_dir: Path, base: str) -> None:
    # The index first: without it no reader looks at the pack any more; the keep last.
    for suffix in ("idx", "pack", *_SIDE, "keep"):
        (pack_dir / f"{base}.{suffix}").unlink(missing_ok=True)
