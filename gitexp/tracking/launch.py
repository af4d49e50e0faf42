"""How a run begins: created (its first state, code snapshot and lock), resumed, or attached to.

tracking.start_run chooses between these; the Run they return does the logging. A run of
`git exp run` hands its command the ENV_* variables below, and a start_run there attaches to it.
"""

from __future__ import annotations

import functools
import getpass
import json
import os
import socket
import sys
import time
import warnings
from typing import Any

from gitexp.errors import GitexpError, ParamConflictError, StorageError
from gitexp.git.repo import TREE_MODE, Entry, Repo
from gitexp.store import codec as fmt
from gitexp.store import journal, names, outputs
from gitexp.store import writer as store
from gitexp.store.state import RunState, merge_params, normalize
from gitexp.tracking import env as env_mod
from gitexp.tracking import redact
from gitexp.tracking.commits import FirstCommit
from gitexp.tracking.liverun import Run
from gitexp.tracking.settings import Overrides, RunSettings, read_settings
from gitexp.warn import warn

ENV_RUN_ID, ENV_REPO, ENV_PARAMS, ENV_EXPERIMENT = "GITEXP_RUN_ID", "GITEXP_REPO", "GITEXP_PARAMS", "GITEXP_EXPERIMENT"
ENV_RUN_NAME = "GITEXP_RUN_NAME"  # the name `git exp run --name` gave; unset when it chose a random one


@functools.cache
def user() -> str:
    """The login name (read from /etc/passwd when no variable names it: once per process)."""
    return getpass.getuser()


def _physical(path: str) -> str:
    # POSIX getcwd() returns the path without symlinks already; realpath would lstat each part.
    return path if os.name == "posix" else os.path.realpath(path)


@functools.lru_cache(maxsize=16)
def _real_workdir(workdir: str) -> str:
    return os.path.realpath(workdir)


def resolve_experiment(repo: Repo, experiment: str | None) -> str:
    chosen = experiment or os.environ.get(ENV_EXPERIMENT) or repo.config("exp.experiment")
    return names.check_experiment(chosen or names.DEFAULT_EXPERIMENT)


# (base tree, snapshot tree, index stamp) -> (the snapshot without untracked secret-looking files,
# those files): trees never change, so a sweep's runs on one dirty tree look once.
_secret_free: dict[tuple[str | None, str, tuple[int, ...]], tuple[str | None, tuple[str, ...]]] = {}


def _added_secret_files(repo: Repo, old: str | None, new: str, prefix: str = "") -> list[str]:
    """Paths in tree *new* but not in tree *old* whose names look like credential files; only the
    subtrees that differ are read."""
    found = []
    before = repo.tree_entries(old) if old else {}
    for name, entry in repo.tree_entries(new).items():
        was = before.get(name)
        if was is not None and was == entry:
            continue
        path = prefix + name
        if entry.mode == TREE_MODE:
            found += _added_secret_files(repo, was.oid if was is not None and was.mode == TREE_MODE else None,
                                         entry.oid, path + "/")
        elif was is None and redact.is_secret_file(path):
            found.append(path)
    return found


def _tree_without(repo: Repo, tree: str, paths: list[str]) -> str | None:
    """*tree* less *paths* (folders left empty go too); None when nothing is left."""
    spec: dict[str, Any] = dict(repo.tree_entries(tree))
    below: dict[str, list[str]] = {}
    for path in paths:
        top, _, rest = path.partition("/")
        if rest:
            below.setdefault(top, []).append(rest)
        else:
            spec.pop(top, None)
    for top, inside in below.items():
        sub = _tree_without(repo, spec[top].oid, inside)
        if sub is None:
            del spec[top]
        else:
            spec[top] = Entry(sub, TREE_MODE)
    return repo.write_tree(spec) if spec else None


def without_secret_files(repo: Repo, base_tree: str | None, tree: str) -> tuple[str | None, list[str]]:
    """The snapshot *tree* without the untracked files that look like credentials (.env, *.pem,
    id_rsa...: redact.is_secret_file), and those files. A tracked one stays: git has it already."""
    key = (base_tree, tree, repo.index_stamp())  # what is tracked can change while the trees do not (`git add .env`)
    cached = _secret_free.get(key)
    if cached is None:
        found = _added_secret_files(repo, base_tree, tree)
        dropped = repo.untracked(found) if found else []
        kept = (_tree_without(repo, tree, dropped) or repo.write_tree({})) if dropped else tree
        if len(_secret_free) > 64:
            _secret_free.clear()
        cached = _secret_free[key] = (kept, tuple(dropped))
    return cached[0], list(cached[1])


def without_own_outputs(repo: Repo, base_tree: str | None, tree: str) -> str:
    """The snapshot *tree* without the files gitexp itself wrote into the work tree (a report, a
    plot: gitexp.store.outputs) that are untracked and still hold what gitexp wrote: they are
    gitexp's output, not the code a run ran."""
    if repo.workdir is None:
        return tree
    found = [path for path, entry in outputs.written_under(repo.commondir, repo.workdir).items()
             if repo.entry_oid(tree, path) is not None
             and (base_tree is None or repo.entry_oid(base_tree, path) is None)
             and outputs.as_written(repo.workdir, path, entry)]
    dropped = repo.untracked(found) if found else []
    return (_tree_without(repo, tree, dropped) or repo.write_tree({})) if dropped else tree


def git_state(repo: Repo, settings: RunSettings, state_files: dict[str, Any]) -> dict[str, Any]:
    head = repo.head()
    git: dict[str, Any] = {"commit": head.commit, "branch": head.branch, "dirty": False}
    url = repo.remote_url()
    # user:password@ and a bare token@ go; a token in the query (?access_token=...) is masked.
    git["remote"] = redact.mask_text(redact.strip_url_credentials(url)) if url else None
    code: dict[str, Any] = {}
    if settings["capture_code"] and repo.workdir is not None:
        tree, skipped = repo.snapshot(head.commit, int(settings["max_snapshot"]))
        base_tree = repo.tree_of(head.commit) if head.commit else None
        secret_files: list[str] = []
        if tree is not None and tree != base_tree:  # a clean tree has no untracked files to look at
            tree = without_own_outputs(repo, base_tree, tree)
            tree, secret_files = without_secret_files(repo, base_tree, tree)
            if secret_files:
                warnings.warn(f"gitexp: {len(secret_files)} untracked file(s) that look like secrets were left "
                              f"out of the code snapshot: {', '.join(secret_files[:5])}; a rerun or checkout "
                              "of this run will not have them. `git add` one to include it, or list it in "
                              ".gitignore to silence this", RuntimeWarning, stacklevel=4)
        git["dirty"] = tree != base_tree
        code["tree"] = tree
        cwd = os.path.relpath(_physical(os.getcwd()), _real_workdir(str(repo.workdir)))
        if not cwd.startswith(".."):  # where in code/ the command ran: a rerun starts there too
            code["cwd"] = cwd
        if skipped or secret_files:
            code["skipped"] = sorted([*skipped, *secret_files])
        if skipped:
            warnings.warn(f"gitexp: {len(skipped)} file(s) over {int(settings['max_snapshot'])} bytes left out "
                          f"of the code snapshot: {', '.join(skipped[:5])}; raise git config "
                          "exp.snapshotMaxSize to include them", RuntimeWarning, stacklevel=4)
        if git["dirty"] and tree:
            patch = repo.diff_trees(base_tree, tree)
            if patch:
                state_files[fmt.PATCH] = Entry(repo.ensure_blob(patch.encode()))  # on disk: see _create
    return {"git": git, "code": code}


def create(name: str | None, experiment: str | None, params: dict[str, Any] | None,
            tags: dict[str, Any] | None, description: str | None, path: Any, command: list[str] | None,
            overrides: Overrides, fork: Any = None, extra_meta: dict[str, Any] | None = None) -> Run:
    repo = Repo.borrow(path)
    extra_parents: tuple[str, ...] = ()
    if fork is not None:
        origin = source(repo, fork)
        extra_meta, extra_parents = {**(extra_meta or {}), "forked_from": origin.id}, (origin.commit,)
        experiment = experiment or origin.experiment
    chosen = read_settings(repo, overrides)
    if chosen["capture_env"]:
        env_mod.prefetch()
    exp = resolve_experiment(repo, experiment)
    clean_params = normalize(params or {})
    for key in clean_params:
        names.check_key(key, "param")
    clean_tags = {names.check_key(k, "tag"): str(v) for k, v in (tags or {}).items()}
    # The id and meta.start come from one reading of the clock; the duration, from a monotonic one.
    run_id, started = names.new_run_id_at()
    clock_start = time.monotonic()
    files: dict[str, Any] = {}
    meta: dict[str, Any] = {
        "id": run_id,
        "name": names.check_run_name(name) if name is not None else names.random_run_name(),
        "experiment": exp, "status": "RUNNING", "start": store.iso(started),
        "user": user(), "host": socket.gethostname(), "pid": os.getpid(),
        "command": redact.mask_argv(list(command if command is not None else sys.orig_argv)),
        "tags": clean_tags, "description": description,
        **git_state(repo, chosen, files), **(extra_meta or {}),
    }
    state = RunState(meta=meta, params=clean_params, files=files)
    if chosen["capture_env"] and env_mod.ready():
        state.env = env_mod.shared_env(chosen["env_variables"])
    initial = RunState(meta=dict(meta), params=state.params, env=state.env, files=dict(files))
    # Staged now (written at the first flush; the final commit of a shorter run takes its place), so the
    # journal's info names it from the start.
    shared = repo.take_staged()
    first_commit = store.stage_first(repo, initial, extra_parents)
    first = FirstCommit(initial, first_commit, shared, repo.take_staged(), extra_parents)
    # The lock exists before the ref, so a run can never be RUNNING with nobody to finish it;
    # it holds the run as it started, so even a run that dies before its first commit is kept.
    info = {"id": meta["id"], "experiment": exp, "initial": journal.initial_info(initial, extra_parents),
            "base": first.commit}
    try:
        jour = journal.Journal.create(repo.commondir, meta["id"], info)
    except OSError as exc:
        raise StorageError(f"cannot start a run: gitexp needs to write its journal in "
                           f"{journal.journal_root(repo.commondir)} ({exc.strerror or exc}); check that the "
                           "repository is writable and the disk is not full") from exc
    tip = None
    if repo.config_bool("exp.sign", False):
        # A signing set-up that fails must fail here, not in the background: signing costs a
        # process anyway, so the RUNNING commit is written now.
        try:
            first.stage(repo)
            tip = store.put_first(repo, first.state, first.commit)
        except BaseException:
            jour.remove()
            raise
    return Run(repo, state, True, jour, chosen, tip=tip, first=first if tip is None else None,
               clock_start=clock_start)


def source(repo: Repo, run: Any) -> Any:
    """The RunRecord that resume= or fork= names."""
    from gitexp.store import runs

    return runs.resolve(runs.load_runs(repo), getattr(run, "id", run))


def resume(target: Any, path: Any, overrides: Overrides, params: dict[str, Any] | None = None,
            tags: dict[str, Any] | None = None) -> Run:
    """Continue an ended run: new commits on its ref, metric steps going on from where they stopped."""
    repo = Repo.discover(path)
    record = source(repo, target)
    if record.status == "RUNNING":
        raise GitexpError(f"run {record.id} ({record.name}) is still RUNNING (pid {record.meta.get('pid')} on "
                          f"{record.meta.get('host')}); resume it once it has ended")
    state = fmt.read_state(repo, record.commit)
    state.set_params(normalize(params or {}))  # the same params again are fine; changed ones are refused
    state.set_tags({names.check_key(k, "tag"): str(v) for k, v in (tags or {}).items()})
    for key in ("end", "duration", "error", "exit_code"):
        state.meta.pop(key, None)
    state.update_meta({"status": "RUNNING", "host": socket.gethostname(), "pid": os.getpid()})
    info = {"id": record.id, "experiment": record.experiment}
    try:
        jour = journal.Journal.create(repo.commondir, record.id, info)
    except OSError as exc:
        raise StorageError(f"cannot resume run {record.id}: its journal in {journal.journal_root(repo.commondir)} "
                           f"cannot be created ({exc.strerror or exc}); is another process resuming it?") from exc
    try:
        tip = store.commit_state(repo, state, record.commit)
    except BaseException:
        jour.remove()
        raise
    # The journal extends this session's first commit, as a new run's extends its first one.
    jour.write_info({**info, "host": state.meta["host"], "pid": state.meta["pid"], "base": tip})
    return Run(repo, state, True, jour, read_settings(repo, overrides), tip=tip)


def attach(run_id: str, params: dict[str, Any] | None, tags: dict[str, Any] | None, description: str | None,
           *, name: str | None = None, experiment: str | None = None, path: Any = None,
           overrides: Overrides | None = None, meta: dict[str, Any] | None = None) -> Run:
    """The run of the `git exp run` this process runs under, as a process attached to it.

    The script's choices apply where the run can take them: its name (`git exp run --name`, when
    given, is replaced, with a warning), params (a -p param given another value is an error: params
    never change), tags, description, meta and flush_interval. What belongs to the run as `git exp
    run` made it, its experiment, repository and the settings of the process that owns it, is kept,
    and each such choice that differs is named in a warning saying how to make it.
    """
    repo = Repo.discover(os.environ.get(ENV_REPO))
    inherited = json.loads(os.environ.get(ENV_PARAMS) or "{}")
    current = os.environ.get(ENV_EXPERIMENT, names.DEFAULT_EXPERIMENT)
    chosen_name = os.environ.get(ENV_RUN_NAME)
    clean_params = normalize(params or {})
    for key in clean_params:
        names.check_key(key, "param")
    try:
        merge_params(inherited, clean_params)
    except ParamConflictError as exc:
        raise ParamConflictError(f"start_run(params=...) inside `git exp run` (run {run_id}): {exc}. The run "
                                 "already has the -p params of `git exp run`: read them with gitexp.params(), "
                                 "or leave that -p out") from None
    state = RunState(meta={"id": run_id, "experiment": current, "tags": {}}, params=inherited)
    jour = journal.Journal.attach(repo.commondir, run_id)
    if not jour.exists():
        raise StorageError(f"{ENV_RUN_ID}={run_id} names no live run in {repo.gitdir}; unset it to start "
                           "a new run")
    _warn_dropped(repo, run_id, current, experiment, path, overrides or {})
    if name is not None:
        name = names.check_run_name(name)
        if chosen_name and chosen_name != name:
            warn(f"gitexp: start_run(name={name!r}) inside `git exp run` renames run {run_id} from {chosen_name!r}, "
                 "the name `git exp run --name` gave it; leave out one of the two to keep the other")
    flush = (overrides or {}).get("flush_interval")
    run = Run(repo, state, False, jour, read_settings(repo, {"system_interval": 0, "flush_interval": flush}))
    changes: dict[str, Any] = {**(meta or {}), **({"name": name} if name is not None else {})}
    if changes:
        run.update_meta(changes)
    if clean_params:
        run.log_params(clean_params)
    if tags:
        run.set_tags(tags)
    if description:
        run.set_description(description)
    return run


# start_run's keywords for settings that the process owning the run applies: git config keys that set them
_OWNER_SETTINGS = {"checkpoint_interval": "exp.checkpointInterval", "system_interval": "exp.systemMetricsInterval",
                   "capture_env": "exp.captureEnv", "capture_code": "exp.captureCode"}
_KEYWORDS = {"system_interval": "system_metrics_interval"}


def _warn_dropped(repo: Repo, run_id: str, current: str, experiment: str | None, path: Any,
                  overrides: Overrides) -> None:
    """Warn of each choice of start_run that the run of `git exp run` cannot take."""
    where = f"inside `git exp run`: this run is {run_id} in experiment {current!r}, started by `git exp run`"
    if experiment is not None and names.check_experiment(experiment) != current:
        warn(f"gitexp: start_run(experiment={experiment!r}) {where}; pass -e {experiment} to `git exp run` to choose "
             "the experiment")
    if path is not None:
        try:
            other = Repo.discover(path).commondir
        except GitexpError:
            other = None
        if other is None or os.path.realpath(other) != os.path.realpath(repo.commondir):
            warn(f"gitexp: start_run(repo={os.fspath(path)!r}) {where} in {repo.gitdir}; run `git exp run` in "
                 "that repository to record the run there")
    for key, config in _OWNER_SETTINGS.items():
        value = overrides.get(key)
        if value is not None:
            shown = str(value).lower() if isinstance(value, bool) else f"{value:g}"
            warn(f"gitexp: start_run({_KEYWORDS.get(key, key)}={value!r}) {where}, whose process applies git config "
                 f"{config} instead; `git config {config} {shown}` sets it for `git exp run`")
