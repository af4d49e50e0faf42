"""Sharing runs through git remotes: push, fetch, pull and `remote setup`.

Transport is the user's own git (gitexp/git/transport.py). Fetching lists the remote's refs
once, fetches by id only the runs that differ from ours (git writes no ref per remote run:
at thousands of runs those writes cost more than the objects) and only then moves
`refs/experiments/`: a new run is created, a run the remote extended is fast-forwarded, and a
run that differs on both sides keeps the local version while the remote one is kept under
`refs/experiments-conflicts/<remote>/<experiment>/<run-id>`. The remote's notes are kept at
`refs/experiments-remotes/<remote>/notes/experiments` and merged, never replaced.
"""

from __future__ import annotations

import bisect
import contextlib
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from gitexp.errors import InvalidNameError
from gitexp.git import lfs, reflogs, shelf, transport
from gitexp.git.repo import RefConflictError, Repo
from gitexp.store import names, notes
from gitexp.store import writer as store
from gitexp.store.artifacts import Artifact, list_artifacts
from gitexp.store.codec import ARTIFACTS_DIR

NOTES_REF = notes.NOTES_REF
TRACKING_PREFIX = "refs/experiments-remotes/"
CONFLICTS_PREFIX = "refs/experiments-conflicts/"
NOTES_ATTEMPTS = 10
MAX_NEGOTIATION_TIPS = 1000
PUSHING_PREFIX = "refs/experiments-pushing/"  # shelved runs named for one `git push` (_named_for_push)
FEW_SHELVED = 100  # shelved runs a push names as `<commit>:<ref>` on its command line; more get refs for it
CODE_REFS = ("refs/heads/", "refs/remotes/", "refs/tags/")
_FLAGS = {" ": "updated", "+": "forced", "-": "deleted", "*": "new", "!": "rejected", "=": "up to date"}


def tracking(remote: str) -> str:
    return f"{TRACKING_PREFIX}{remote}/"


@dataclass
class RefUpdate:
    ref: str
    status: str  # new, updated, up to date, rejected (and, from git, forced or deleted)
    reason: str = ""


@dataclass
class PushReport:
    remote: str
    runs: list[RefUpdate] = field(default_factory=list)
    notes: RefUpdate | None = None
    lfs_objects: int = 0
    lfs_bytes: int = 0
    lfs_missing: list[str] = field(default_factory=list)  # artifact paths whose content is not here

    @property
    def rejected(self) -> list[RefUpdate]:
        return [u for u in [*self.runs, *([self.notes] if self.notes else [])] if u.status == "rejected"]


@dataclass
class FetchReport:
    remote: str
    new: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    same: int = 0
    ahead: list[str] = field(default_factory=list)  # local has commits the remote lacks: push them
    conflicts: list[tuple[str, str]] = field(default_factory=list)  # (run ref, where the remote's version is)
    removed_here: list[str] = field(default_factory=list)  # in the local trash: not brought back
    invalid: list[str] = field(default_factory=list)
    notes: str | None = None
    lfs_fetched: int = 0
    theirs: dict[str, str] = field(default_factory=dict)  # run ref -> the remote's commit, of each run fetched
    runs_here: list[str] = field(default_factory=list)  # every run ref here after the fetch (for handles)
    unchanged: list[str] = field(default_factory=list)  # run refs equal here and there


def _parse_porcelain(text: str) -> dict[str, RefUpdate]:
    out = {}
    for line in text.splitlines():
        parts = line.split("\t")
        if len(parts) < 3 or len(parts[0]) != 1 or ":" not in parts[1]:
            continue  # "To <url>", "Done"
        dst = parts[1].split(":", 1)[1]
        summary = parts[2]
        reason = summary[summary.find("(") + 1: summary.rfind(")")] if "(" in summary else summary
        status = _FLAGS.get(parts[0], "updated")
        out[dst] = RefUpdate(dst, status, f"{summary.split(' (')[0].strip('[]')}: {reason}"
                             if status == "rejected" else "")
    return out


def _git_push(repo: Repo, remote: str, refspecs: list[str]) -> dict[str, RefUpdate]:
    proc = transport.run_git(repo, ["push", "--porcelain", "--no-verify", remote, *refspecs], progress=True)
    updates = _parse_porcelain(proc.stdout or "")
    if proc.returncode and not updates:
        raise transport.failure(proc, f"`git push {remote}`")
    return updates


def _fetch_notes(repo: Repo, remote: str) -> str | None:
    """Fetch the remote's notes into their tracking ref and merge them; returns what happened."""
    track = f"{tracking(remote)}notes/experiments"
    # A glob refspec, so a remote without notes is not an error.
    proc = transport.run_git(repo, ["fetch", "--no-tags", "--no-write-fetch-head", "--recurse-submodules=no",
                                    remote, f"+{NOTES_REF}*:{track}*"], progress=True)
    if proc.returncode:
        raise transport.failure(proc, f"`git fetch {remote}` of {NOTES_REF}")
    return _merge_tracked_notes(repo, track)


def _merge_tracked_notes(repo: Repo, track: str) -> str | None:
    theirs = repo.ref(track)
    if theirs is None:
        return None
    if repo.resolve_commit(theirs) != theirs:  # a remote's ref may point at anything
        from gitexp.store.codec import object_kind

        return f"ignored: the remote's {NOTES_REF} points at {object_kind(repo, theirs)}, not at a notes commit"
    before = repo.ref(NOTES_REF)
    after = notes.merge_notes(repo, theirs)
    if after == before:
        return "up to date"
    return "created" if before is None else "fast-forward" if after == theirs else "merged"


def push_target(repo: Repo, words: list[str] | tuple[str, ...]) -> tuple[str | None, list[str]]:
    """`git exp push [REMOTE] [RUN...]`: (the remote, or None for the default one; the runs).

    The first word is the remote when one has that name, else the first run. A word that is
    neither, such as a remote not added yet, is an error that says so (not that no run matches).
    """
    if not words or words[0] in repo.remote_names():
        return (words[0] if words else None), list(words[1:])
    from gitexp.errors import RemoteError, RunNotFoundError
    from gitexp.store import runs

    try:
        runs.resolve(runs.load_runs(repo, recover=False), words[0])
    except RunNotFoundError:
        known = ", ".join(repo.remote_names()) or "none"
        raise RemoteError(f"{words[0]!r} is neither a remote of this repository (remotes: {known}) nor a run; "
                          f"{transport.add_remote_hint(words[0])}, `git exp ls` lists the runs") from None
    return None, list(words)


def push(repo: Repo, remote: str | None = None, run_texts: list[str] | tuple[str, ...] = (),
         artifacts: bool = True) -> PushReport:
    """Push runs (all, or those named) and the notes, then the LFS objects the runs reference."""
    from gitexp.store import runs

    name = transport.resolve_remote(repo, remote)
    store.recover(repo)  # runs that crashed here are finished before they are shared
    notes.flush_pending()  # and the notes of runs that ended in this process
    if run_texts:
        records = runs.load_runs(repo, recover=False)
        named = dict.fromkeys(runs.resolve(records, text).ref for text in run_texts)
        chosen = {ref: commit for ref in named if (commit := repo.ref(ref))}
        owned = {ref for ref in chosen if repo.own_ref(ref)}
        refspecs = [f"{ref}:{ref}" for ref in chosen if ref in owned]
        shelved = {ref: commit for ref, commit in chosen.items() if ref not in owned}
    else:
        own = transport.local_refs(repo, (names.REF_PREFIX,), shelved=False)
        chosen = shelf.with_shelved(Path(repo.commondir), names.REF_PREFIX, own)  # (one for-each-ref for both)
        refspecs = [f"{names.REF_PREFIX}*:{names.REF_PREFIX}*"] if own else []
        shelved = _unpushed(repo, name, {ref: commit for ref, commit in chosen.items() if ref not in own})
    has_notes = repo.ref(NOTES_REF) is not None
    report = PushReport(name)
    if not refspecs and not shelved and not has_notes:
        return report
    if artifacts:  # objects before refs, as git-lfs does: a pushed run never points at missing content
        _push_lfs(repo, report, chosen)
    with _named_for_push(repo, shelved) as more:
        updates = _git_push(repo, name, refspecs + more + ([f"{NOTES_REF}:{NOTES_REF}"] if has_notes else []))
    report.notes = updates.pop(NOTES_REF, None)
    report.runs = [updates.get(ref) or RefUpdate(ref, "up to date") for ref in chosen]
    # Another clone may push notes at the same moment: merge theirs into ours and try again.
    for attempt in range(NOTES_ATTEMPTS):
        if report.notes is None or report.notes.status != "rejected":
            break
        _fetch_notes(repo, name)
        report.notes = _git_push(repo, name, [f"{NOTES_REF}:{NOTES_REF}"]).get(NOTES_REF, report.notes)
        time.sleep(random.uniform(0, 0.05 * (attempt + 1)) if report.notes.status == "rejected" else 0)
    return report


def _unpushed(repo: Repo, remote: str, shelved: dict[str, str]) -> dict[str, str]:
    """Those of *shelved* (runs with no ref of their own) that *remote* does not hold as they are here."""
    if not shelved:
        return {}
    same = set(transport.compare_refs(repo, remote, names.REF_PREFIX).same)
    return {ref: commit for ref, commit in shelved.items() if ref not in same}


@contextlib.contextmanager
def _named_for_push(repo: Repo, shelved: dict[str, str]) -> Iterator[list[str]]:
    """The refspecs that push *shelved* runs (git/shelf.py: no ref of their own) to their names.

    A few go as `<commit>:<ref>`. More would not fit one command line (100,000 runs are 10 MB of
    refspecs), and a `git push` per few thousand costs a ref advertisement and a pack each (14,000
    runs: 40 s in 7 pushes). So they get refs under PUSHING_PREFIX for the push, made and deleted
    by one `git update-ref --stdin` each, and one glob refspec carries them all. A push killed
    meanwhile leaves those refs; the next push deletes them first."""
    left = transport.local_refs(repo, (PUSHING_PREFIX,), shelved=False)
    if left:
        _update_refs(repo, "".join(f"delete {ref} {oid}\n" for ref, oid in left.items()))
    if len(shelved) <= FEW_SHELVED:
        yield [f"{commit}:{ref}" for ref, commit in shelved.items()]
        return
    made = {PUSHING_PREFIX + ref[len(names.REF_PREFIX):]: commit for ref, commit in shelved.items()}
    _update_refs(repo, "".join(f"create {ref} {commit}\n" for ref, commit in made.items()))
    try:
        yield [f"{PUSHING_PREFIX}*:{names.REF_PREFIX}*"]
    finally:
        _update_refs(repo, "".join(f"delete {ref} {commit}\n" for ref, commit in made.items()))


def _update_refs(repo: Repo, commands: str) -> None:
    proc = transport.run_git(repo, ["update-ref", "--stdin"], stdin=commands)
    if proc.returncode:
        raise transport.failure(proc, "`git update-ref` of the refs a push of shelved runs names")


def _push_lfs(repo: Repo, report: PushReport, tips: dict[str, str]) -> None:
    """Upload the LFS objects the runs *tips* (ref -> commit) reference, before their refs travel.

    Runs without artifacts are passed over at one tree lookup each, and runs sharing an
    artifacts tree (the same files) are read once: at 10,000 runs, reading every run's
    artifacts cost a second.
    """
    lfs_store = lfs.Store(repo)
    wanted: dict[str, int] = {}
    seen: dict[str, list[Artifact]] = {}
    for ref, commit in tips.items():
        tree = repo.entry_oid(commit, ARTIFACTS_DIR)
        if tree is None:
            continue
        if tree not in seen:
            seen[tree] = [a for a in list_artifacts(repo, commit) if a.lfs and not a.problem]
        for artifact in seen[tree]:
            if lfs_store.has(lfs.Pointer(artifact.sha256, artifact.size)):
                wanted[artifact.sha256] = artifact.size
            else:
                report.lfs_missing.append(f"{ref.rsplit('/', 1)[-1]}:{artifact.path}")
    if wanted:
        transport.lfs_push(repo, report.remote, sorted(wanted))
    report.lfs_objects, report.lfs_bytes = len(wanted), sum(wanted.values())


def fetch(repo: Repo, remote: str | None = None) -> FetchReport:
    """Fetch the runs and notes of *remote* that differ from ours, and bring them into refs/experiments/.

    One listing of the remote's refs decides what is wanted; only those commits are fetched
    (by id, so git writes no ref of its own) and only their refs are written here.
    """
    name = transport.resolve_remote(repo, remote)
    compared = transport.compare_refs(repo, name, names.REF_PREFIX, (NOTES_REF,))
    # The other refs fetch reads, few: kept apart from the runs so that no step walks all of them.
    local = transport.local_refs(repo, (names.TRASH_PREFIX, f"{CONFLICTS_PREFIX}{name}/", tracking(name), *CODE_REFS))
    report, wanted = _plan(compared, local, name)
    track = f"{tracking(name)}notes/experiments"
    notes_oid = compared.named.get(NOTES_REF)
    oids = set(wanted.values())
    if notes_oid is not None and notes_oid != local.get(track):
        oids.add(notes_oid)
    transport.fetch_objects(repo, name, sorted(oids), _negotiation_tips(repo, local, compared.here, wanted))
    _integrate(repo, name, report, wanted, compared.here, local)
    if notes_oid is None and track in local:
        repo.delete_ref(track, local[track])  # the remote has no notes any more
    elif notes_oid is not None and notes_oid != local.get(track):
        _set_ref(repo, track, notes_oid, f"gitexp: fetch {name}")
    report.notes = _merge_tracked_notes(repo, track)
    _drop_run_tracking_refs(repo, name, local)
    report.runs_here = [*compared.here, *report.new]
    return report


def _plan(compared: transport.RefComparison, local: dict[str, str],
          remote: str) -> tuple[FetchReport, dict[str, str]]:
    """The report so far (unchanged, invalid, removed here) and the runs to fetch: rel path -> their commit.

    Names are checked before anything is fetched: a remote's stray refs cost no objects here. A
    ref equal on both sides is counted unchanged unchecked: nothing is done with it.
    """
    report = FetchReport(remote, same=len(compared.same), unchanged=compared.same)
    trashed = {ref.rsplit("/", 1)[-1] for ref in local if ref.startswith(names.TRASH_PREFIX)}
    wanted = {}
    experiments: dict[str, bool] = {}  # a few experiments hold thousands of runs: each is checked once
    for ref, oid in sorted(compared.differing.items()):
        rel = ref[len(names.REF_PREFIX):]
        experiment, _, run_id = rel.rpartition("/")
        if experiment not in experiments:
            try:
                experiments[experiment] = bool(names.check_experiment(experiment))
            except InvalidNameError:
                experiments[experiment] = False
        if not experiments[experiment] or not names.is_run_id(run_id):
            report.invalid.append(rel)  # not a run ref: a remote's stray data is never imported
        elif ref not in compared.here and run_id in trashed:
            report.removed_here.append(ref)
        else:
            wanted[rel] = oid
    return report, wanted


def _negotiation_tips(repo: Repo, local: dict[str, str], runs: dict[str, str],
                      wanted: dict[str, str]) -> list[str] | None:
    """What git offers the remote as common history: the user's branches, tags and a detached HEAD,
    and the runs being updated (so a longer run's earlier commits do not travel again), but not
    every other run: offered every run, git sends the remote thousands of `have` lines before the
    one that matters (the code commit new runs start from)."""
    # (By commit: a shelved run, git/shelf.py, has no ref of its own to name.)
    updated = [runs[ref] for rel in wanted if (ref := names.REF_PREFIX + rel) in runs]
    # Only namespaces that hold refs: git warns about a tip that matches nothing.
    listed = sorted(local)
    tips = [f"{space}*" for space in CODE_REFS
            if (at := bisect.bisect_left(listed, space)) < len(listed) and listed[at].startswith(space)]
    if repo.head().branch is None and repo.head().commit:
        tips.append("HEAD")
    if len(updated) > MAX_NEGOTIATION_TIPS or not tips + updated:
        return None  # git's default, every ref: as good as that many arguments, and never nothing
    return tips + updated


def _integrate(repo: Repo, remote: str, report: FetchReport, wanted: dict[str, str], runs: dict[str, str],
               local: dict[str, str]) -> None:
    moves: list[tuple[str, str, str | None]] = []  # (ref, new, old or None to create)
    for rel, theirs in wanted.items():
        ref, conflict = names.REF_PREFIX + rel, f"{CONFLICTS_PREFIX}{remote}/{rel}"
        ours = runs.get(ref)
        if repo.resolve_commit(theirs) != theirs:
            report.invalid.append(rel)  # a blob, a tree or a tag is no run
            continue
        report.theirs[ref] = theirs
        if ours is None:
            moves.append((ref, theirs, None))
        elif repo.is_ancestor(ours, theirs):
            moves.append((ref, theirs, ours))
        elif repo.is_ancestor(theirs, ours):
            report.ahead.append(ref)
        else:
            _set_ref(repo, conflict, theirs, f"gitexp: conflict with {remote} {rel.rpartition('/')[2]}")
            report.conflicts.append((ref, conflict))
    prefix = f"{CONFLICTS_PREFIX}{remote}/"
    stale = {names.REF_PREFIX + ref[len(prefix):]: (ref, oid) for ref, oid in local.items() if ref.startswith(prefix)}
    if stale:
        settled = (set(report.theirs) | set(report.unchanged) | set(report.removed_here)) - \
            {ref for ref, _ in report.conflicts}
        for run in settled.intersection(stale):
            repo.delete_ref(*stale[run])  # the two sides agree again
    moved = {ref for ref, _, _ in _move_refs(repo, moves, f"gitexp: fetch {remote}")}
    for ref, _, old in moves:
        # A run a local writer moved meanwhile is left as it is; the next fetch looks again.
        (report.ahead if ref not in moved else report.new if old is None else report.updated).append(ref)


def _drop_run_tracking_refs(repo: Repo, remote: str, local: dict[str, str]) -> None:
    """Delete the per-run remote-tracking refs earlier versions kept (one ref per run the remote
    had): nothing reads them any more, and at 100,000 runs they double every ref listing."""
    old = [(ref, oid) for ref, oid in local.items() if ref.startswith(f"{tracking(remote)}runs/")]
    if old:
        transport.run_git(repo, ["update-ref", "--stdin"], stdin="".join(f"delete {r} {o}\n" for r, o in old))


def _move_refs(repo: Repo, moves: list[tuple[str, str, str | None]], message: str) -> list[tuple[str, str, str | None]]:
    """Create or fast-forward refs (with reflogs) in one git transaction; one by one if that fails.

    One `git update-ref --stdin` writes a thousand refs in a fraction of the time separate
    updates take. It is all or nothing, so when a local writer moved one of the runs meanwhile,
    the refs are moved one at a time and the moved run is left for the next fetch.
    """
    if not moves:
        return []
    # A shelved run (git/shelf.py) gets its own ref again through update_refs (one link takes them
    # all off the shelf): git's transaction knows no shelf.
    shelved = shelf.read(Path(repo.commondir))
    singles = [(ref, new, old) for ref, new, old in moves if old is not None and ref in shelved]
    if singles:
        moves = [move for move in moves if move not in singles]
        moved = set(repo.update_refs(singles, message))
        done: list[tuple[str, str, str | None]] = [move for move in singles if move[0] in moved]
        return done + (_move_refs(repo, moves, message) if moves else [])
    commands = "".join(f"create {ref} {new}\n" if old is None else f"update {ref} {new} {old}\n"
                       for ref, new, old in moves)
    proc = transport.run_git(repo, ["update-ref", "--create-reflog", "-m", message, "--stdin"], stdin=commands)
    if proc.returncode == 0:
        # git made these refs, not create_ref: counted here, so that 10,000 fetched runs get packed
        # by the ref upkeep too rather than slow every `git log --decorate` until the next run.
        reflogs.count_new_ref(repo.commondir, sum(old is None for _, _, old in moves))
        return moves
    return _move_one_by_one(repo, moves, message)


def _move_one_by_one(repo: Repo, moves: list[tuple[str, str, str | None]],
                     message: str) -> list[tuple[str, str, str | None]]:
    done = []
    for ref, new, old in moves:
        try:
            if old is None:
                repo.create_ref(ref, new, message)
            else:
                repo.update_ref(ref, new, old, message)
            done.append((ref, new, old))
        except RefConflictError:
            continue
    return done


def _set_ref(repo: Repo, name: str, target: str, message: str) -> None:
    current = repo.ref(name)
    if current is None:
        repo.create_ref(name, target, message)
    elif current != target:
        repo.update_ref(name, target, current, message)


def pull(repo: Repo, remote: str | None = None, artifacts: bool = False) -> FetchReport:
    """fetch(), then (with *artifacts*) the LFS content of every run the remote has."""
    from gitexp.ops.restore import ensure_present

    report = fetch(repo, remote)
    if artifacts:
        here = transport.local_refs(repo, (names.REF_PREFIX,))
        commits = set(report.theirs.values()) | {here[ref] for ref in report.unchanged if ref in here}
        wanted = [a for commit in sorted(commits) for a in list_artifacts(repo, commit)]
        report.lfs_fetched = ensure_present(repo, wanted, report.remote)
    return report


def setup(repo: Repo, remote: str | None = None) -> tuple[str, list[tuple[str, str]]]:
    """Add refspecs so plain `git fetch`/`git push` carry runs and notes; returns (remote, added)."""
    name = transport.resolve_remote(repo, remote)
    fetch_specs = [f"{names.REF_PREFIX}*:{names.REF_PREFIX}*", f"+{NOTES_REF}*:{tracking(name)}notes/experiments*"]
    push_specs = [f"{names.REF_PREFIX}*:{names.REF_PREFIX}*", f"{NOTES_REF}:{NOTES_REF}"]
    added = []
    for key, wanted in ((f"remote.{name}.fetch", fetch_specs), (f"remote.{name}.push", push_specs)):
        proc = transport.run_git(repo, ["config", "--get-all", key])
        present = (proc.stdout or "").split()
        if key.endswith(".push") and not present:
            # With push refspecs configured, a bare `git push` pushes only those; keep the
            # current branch in it, as `git push <remote> HEAD` would.
            wanted = ["HEAD", *wanted]
        for spec in wanted:
            if spec in present:
                continue
            proc = transport.run_git(repo, ["config", "--add", key, spec])
            if proc.returncode:
                raise transport.failure(proc, f"`git config --add {key} {spec}`")
            added.append((key, spec))
    return name, added
