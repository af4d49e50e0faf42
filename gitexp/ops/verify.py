"""`git exp verify`: every run is intact, unchanged since it was written, and validly signed.

Four checks per run: its tree has the required files and they parse (and metrics.yaml agrees
with the histories); its artifact pointers match the stored content; its signature verifies
when it is signed; and its ref's reflog shows no rewrite: every step builds on the previous
commit along first parents, and after a final status only gitexp's own moves follow (rm and
undo keep the same commit, a link commit changes nothing but meta.linked_commit, a resume
starts with a RUNNING commit).
"""

from __future__ import annotations

import math
import multiprocessing
import os
import signal
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from gitexp.errors import CorruptRunError, GitexpError, StorageError
from gitexp.git import shelf, signing
from gitexp.git.repo import TREE_MODE, ZERO, Repo
from gitexp.store import codec as fmt
from gitexp.store import names
from gitexp.store.fields import flatten
from gitexp.store.histories import read_history
from gitexp.store.state import FINAL_STATUSES, STATUSES

REQUIRED = (fmt.META, fmt.PARAMS, fmt.METRICS)
MAX_WALK = 100_000  # first-parent steps per reflog entry before giving up on a fast-forward


PER_PROCESS = 2_000  # runs from which another process checks a share of them (one starts in 0.3 s)


def verify_runs(repo: Repo, refs: Iterable[tuple[str, str]], processes: int | None = None) -> list[tuple[str, str]]:
    """(run label, problem) for every problem found in the runs at *refs* ((ref, commit) pairs), in
    their order.

    Runs may come from an untrusted remote: whatever is wrong with one run is a problem of that
    run, and every other run is still checked. Each run is checked on its own (about a millisecond
    of CPU: 100,000 runs took 97 s in one process), so *processes* (by default one per PER_PROCESS
    runs, up to the CPUs) check a share each.
    """
    refs = list(refs)
    count = min(os.cpu_count() or 1, len(refs) // PER_PROCESS) if processes is None else processes
    if count <= 1:
        return _verify(repo, refs)
    size = -(-len(refs) // count)
    shares = [(str(repo.workdir or repo.gitdir), refs[k:k + size]) for k in range(0, len(refs), size)]
    # spawn, not fork: this process may hold threads (a cache writer) and libgit2's state.
    pool = multiprocessing.get_context("spawn").Pool(len(shares), initializer=_ignore_interrupts)
    try:
        found = pool.map(_verify_share, shares, chunksize=1)
        pool.close()
    except BaseException:  # Ctrl-C reaches this process alone (the workers ignore it): stop them
        pool.terminate()
        raise
    finally:
        pool.join()
    return [problem for part in found for problem in part]


def _ignore_interrupts() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _verify_share(share: tuple[str, list[tuple[str, str]]]) -> list[tuple[str, str]]:
    where, refs = share
    return _verify(Repo.discover(where), refs)


def _verify(repo: Repo, refs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    problems = []
    cwd = repo.workdir or repo.gitdir
    # The runs of one machine share their env.yaml blob (5 KB of YAML, half of verifying 100,000
    # runs when each was parsed again): a file whose check depends on its bytes alone is checked
    # once per blob id.
    seen: dict[str, str | None] = {}
    for ref, commit in refs:
        experiment, run_id = ref[len(names.REF_PREFIX):].rpartition("/")[::2]
        label = f"{run_id} {experiment}"
        summary = None
        try:
            fmt.check_commit(repo, commit)
            try:
                summary = fmt.read_summary(repo, commit)
                meta = summary[0]
            except CorruptRunError:
                meta = fmt.read_meta(repo, commit)  # (the label's name, when meta.yaml alone is sound)
            label = f"{run_id} {experiment}/{meta.get('name') or ''}".rstrip("/")
        except (CorruptRunError, StorageError):
            pass  # check_run says what is wrong
        for problem in check_run(repo, ref, commit, run_id, experiment, cwd, summary, seen):
            problems.append((label, problem))
    return problems


def check_shelf(repo: Repo) -> list[tuple[str, str]]:
    """(the shelf's ref, problem) where a link of the run shelf (git/shelf.py) is not as
    docs/format.md says; its runs are checked as runs, through their refs as readers see them."""
    try:
        for _ in shelf.links(Path(repo.commondir)):
            pass
    except StorageError as exc:
        return [(shelf.SHELF_REF, f"{exc}; its runs cannot be read until it is mended (its links are commits "
                                  f"`git log {shelf.SHELF_REF}` shows)")]
    return []


def check_run(repo: Repo, ref: str, commit: str, run_id: str, experiment: str, cwd: Path,
              summary: tuple[dict, dict, dict] | None = None, seen: dict[str, str | None] | None = None) -> list[str]:
    """The problems of one run; *summary*: its YAML files as codec.read_summary read them, where the
    caller has; *seen*: blob id -> problem (or None) of the files checked by their bytes alone so far."""
    try:
        fmt.check_commit(repo, commit)
    except CorruptRunError as exc:
        return [str(exc)]  # nothing else of it can be read
    out = []
    for check in (lambda: check_tree(repo, commit, run_id, experiment, summary, seen),
                  lambda: check_artifacts(repo, commit),
                  lambda: check_signature(repo, ref, commit, cwd), lambda: check_reflog(repo, ref)):
        try:
            out += check()
        except (GitexpError, KeyError, ValueError) as exc:  # ValueError: pygit2 meeting an object of a wrong type
            out.append(f"could not be checked through: {exc}")
    return out


def _same(a: Any, b: Any) -> bool:
    """a == b, deeply, except that NaN equals NaN: a metric may be NaN, and the summary then says so."""
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def check_tree(repo: Repo, commit: str, run_id: str, experiment: str, summary: tuple[dict, dict, dict] | None = None,
               seen: dict[str, str | None] | None = None) -> list[str]:
    out = []
    for name in REQUIRED:
        if repo.read_path(commit, name) is None:
            out.append(f"commit {commit[:12]} has no {name}")
    if out:
        return out
    try:
        summary = fmt.read_summary(repo, commit) if summary is None else summary
    except CorruptRunError as exc:
        return [str(exc)]
    meta, _, metrics = summary
    if (meta.get("id"), meta.get("experiment")) != (run_id, experiment):
        out.append(f"meta.yaml names run {meta.get('experiment')}/{meta.get('id')}, but the ref is "
                   f"{experiment}/{run_id}")
    if meta.get("status") not in STATUSES:
        out.append(f"meta.yaml has the unknown status {meta.get('status')!r}")
    out += _check_index(repo, commit, summary)
    code = (meta.get("code") or {}).get("tree")
    if code and repo.entry_oid(commit, fmt.CODE_DIR) != code:
        out.append(f"code/ is not the snapshot meta.yaml records ({code[:12]})")
    for name, read in ((fmt.ENV, fmt.load_env), (fmt.INPUTS, fmt.load_yaml)):
        problem = _file_problem(repo, commit, name, read, {} if seen is None else seen)
        if problem is not None:
            out.append(problem)
    for key, told in metrics.items():
        try:
            series = read_history(repo, commit, key)
        except CorruptRunError as exc:
            out.append(str(exc))
            continue
        told = told if isinstance(told, dict) else {}
        if series.count != told.get("count") or not _same(series.last, told.get("last")):
            out.append(f"metrics.yaml says {key} last={told.get('last')} count={told.get('count')}, but "
                       f"its history has last={series.last} count={series.count}")
    return out


def _file_problem(repo: Repo, commit: str, name: str, read: Callable[[bytes | None, str], object],
                  seen: dict[str, str | None]) -> str | None:
    """What *read* finds wrong with the file *name* of *commit* (None: nothing), from *seen* where a
    run before had the same blob: the check depends on the file's bytes alone."""
    oid = repo.entry_oid(commit, name)
    if oid is not None and oid in seen:
        return seen[oid]
    problem = None
    try:
        read(repo.read_path(commit, name), name)
    except CorruptRunError as exc:
        problem = str(exc)
    if oid is not None:
        seen[oid] = problem
    return problem


def _check_index(repo: Repo, commit: str, summary: tuple[dict, dict, dict]) -> list[str]:
    """summary.json, when present, is sound and says what the YAML files say (*summary*, read_summary's)."""
    if repo.read_path(commit, fmt.SUMMARY) is None:
        return []
    try:
        index = fmt.read_index(repo, commit)
    except CorruptRunError as exc:
        return [f"{exc}; listings read the YAML files instead"]
    if not _same(index, summary):
        return ["summary.json does not match meta.yaml, params.yaml and metrics.yaml (one was edited "
                "without the other); listings show summary.json"]
    return []


def check_artifacts(repo: Repo, commit: str) -> list[str]:
    """Artifact pointers against the stored content, when the artifacts feature is installed."""
    try:
        from gitexp.git import lfs
        from gitexp.store import artifacts
    except ImportError:
        return []
    out = []
    store = lfs.Store(repo)
    try:
        listed = artifacts.list_artifacts(repo, commit)
    except GitexpError as exc:
        return [f"cannot read the artifacts: {exc}"]
    for artifact in listed:
        if artifact.problem:
            out.append(f"artifact {artifact.path}: {artifact.problem}")
        elif artifact.lfs and artifact.present:
            fd = os.open(store.path(artifact.sha256), os.O_RDONLY)
            try:
                digest = lfs.hash_stream(fd)
            finally:
                os.close(fd)
            if digest != (artifact.sha256, artifact.size):
                out.append(f"artifact {artifact.path}: the stored content has sha256 {digest[0][:16]}... "
                           f"({digest[1]} bytes), the run's pointer says {artifact.sha256[:16]}... "
                           f"({artifact.size} bytes)")
    return out


def check_signature(repo: Repo, ref: str, commit: str, cwd: Path) -> list[str]:
    if repo.is_signed(commit):
        valid, said = signing.verify(cwd, commit)
        return [] if valid else [f"the signature of commit {commit[:12]} does not verify: {said}"]
    log = repo.reflog(ref)
    first = next((new for old, new, _ in log if old == ZERO), None)
    if first and first != commit and repo.has_object(first) and repo.is_signed(first):
        return [f"commit {commit[:12]} is not signed, though the run's first commit {first[:12]} is: it was "
                "not written by gitexp with exp.sign on"]
    return []


def _meta(repo: Repo, commit: str) -> dict[str, Any]:
    try:
        return fmt.read_meta(repo, commit)
    except (CorruptRunError, KeyError):
        return {}


def _only_link(repo: Repo, parent: str, commit: str) -> bool:
    """True when *commit* changes nothing of *parent* but meta.linked_commit (the post-commit hook)."""
    a, b = repo.tree_entries(parent), repo.tree_entries(commit)
    derived = (fmt.META, fmt.SUMMARY)  # summary.json is the index of meta.yaml: it changes with it
    if {k: v for k, v in a.items() if k not in derived} != {k: v for k, v in b.items() if k not in derived}:
        return False
    ma, mb = _meta(repo, parent), _meta(repo, commit)
    return "linked_commit" in mb and {k: v for k, v in ma.items() if k != "linked_commit"} == \
        {k: v for k, v in mb.items() if k != "linked_commit"}


def _status(repo: Repo, commit: str) -> str | None:
    _, message, _ = repo.commit_info(commit)
    for line in message.splitlines():
        if line.startswith("Status: "):
            return line[len("Status: "):].strip()
    return None


def _allowed_after_end(repo: Repo, parent: str, commit: str) -> bool:
    """A resume (a RUNNING commit, in its message and its meta) or the hook's link commit."""
    if _status(repo, commit) == "RUNNING" and _meta(repo, commit).get("status") == "RUNNING":
        return True
    return _only_link(repo, parent, commit)


def changes(repo: Repo, old: str, new: str) -> str:
    """What differs from run commit *old* to *new*, for a person: metric, param and meta values, files."""
    said = []
    try:
        ma, pa, sa = fmt.read_summary(repo, old)
        mb, pb, sb = fmt.read_summary(repo, new)
    except CorruptRunError:
        ma = pa = sa = mb = pb = sb = {}
    for key in sorted(set(sa) | set(sb)):
        a, b = sa.get(key) or {}, sb.get(key) or {}
        for field in ("last", "min", "max", "count"):
            if not _same(a.get(field), b.get(field)):
                said.append(f"metric {key} {field} {a.get(field)} -> {b.get(field)}")
    fa, fb = flatten(pa), flatten(pb)
    said += [f"param {k} {fa.get(k)!r} -> {fb.get(k)!r}" for k in sorted(set(fa) | set(fb)) if fa.get(k) != fb.get(k)]
    said += [f"meta {k} {ma.get(k)!r} -> {mb.get(k)!r}" for k in sorted(set(ma) | set(mb))
             if k not in ("end", "duration") and ma.get(k) != mb.get(k)]
    ta, tb = repo.tree_entries(old), repo.tree_entries(new)
    files = [name + ("/" if (ta.get(name) or tb[name]).mode == TREE_MODE else "")
             for name in sorted(set(ta) | set(tb)) if ta.get(name) != tb.get(name)
             and name not in (fmt.META, fmt.PARAMS, fmt.METRICS, fmt.SUMMARY)]
    if files:
        said.append("files " + ", ".join(files))
    return "; ".join(said[:12]) + (" ..." if len(said) > 12 else "") if said else "no visible change"


def _first_parent_path(repo: Repo, old: str, new: str) -> list[str] | None:
    """The commits from *new* back to (not including) *old* along first parents, or None if *old*
    is not on that path (the ref was rewritten)."""
    path: list[str] = []
    current = new
    for _ in range(MAX_WALK):
        if current == old:
            return path
        path.append(current)
        try:
            parents, _, _ = repo.commit_info(current)
        except (KeyError, ValueError, GitexpError):
            return None
        if not parents:
            return None
        current = parents[0]
    return None


def check_reflog(repo: Repo, ref: str) -> list[str]:
    """Rewrites in the ref's history: a step that does not build on the previous commit, a commit
    that changes a finished run, a move that left no log entry."""
    log = repo.reflog(ref)
    if not log:
        return []  # a fetched run has no local history to check; its signature still can be
    out: list[str] = []
    last: str | None = None
    for old, new, message in log:
        said = message or "no reflog message"
        if old == ZERO:
            if last is not None and (new != last or not message.startswith("gitexp: rm")):
                out.append(f"the ref was recreated at {new[:12]} ({said}) where it was at {last[:12]}: "
                           + changes(repo, last, new))
            last = new
            continue
        if last is not None and old != last:
            out.append(f"the ref moved from {last[:12]} to {old[:12]} without a reflog entry: "
                       + changes(repo, last, old))
        last = new
        if old == new:
            continue
        path = _first_parent_path(repo, old, new)
        if path is None:
            out.append(f"the ref was rewritten from {old[:12]} to {new[:12]} ({said}), which does not build on "
                       "it: " + changes(repo, old, new))
            continue
        parent = old
        for commit in reversed(path):
            # Statuses from the commit messages (cheap, for runs with thousands of checkpoints);
            # meta.yaml is read only where a run had finished, the rare case that needs care.
            if _status(repo, parent) in FINAL_STATUSES and not _allowed_after_end(repo, parent, commit):
                out.append(f"commit {commit[:12]} changed the run after it had finished ({said}): "
                           + changes(repo, parent, commit))
            parent = commit
    tip = repo.ref(ref)
    if last is not None and tip is not None and tip != last:
        out.append(f"the ref points at {tip[:12]} but its reflog ends at {last[:12]}: it was moved without a log "
                   "entry: " + changes(repo, last, tip))
    return out
