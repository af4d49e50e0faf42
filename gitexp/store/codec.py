"""The on-disk format of a run commit (specified in docs/format.md): encode and decode.

The types each document must have are checked in schema; metric histories are read in histories
(the TSV is written here, by render_rows), and summary.json, the index listings read, in summary.
"""

from __future__ import annotations

import json
import math
from typing import Any

import yaml

from gitexp.errors import CorruptRunError, GitexpError
from gitexp.git.reader import RepoReader
from gitexp.git.repo import TREE_MODE, Entry, Repo
from gitexp.store import chunks, names, yamltext
from gitexp.store.histories import HISTORY_DIR, TSV_HEADER, chunk_tree, read_history
from gitexp.store.schema import check_env, check_meta, check_metrics, mapping
from gitexp.store.state import RunState, Series
from gitexp.store.summary import MAX_DOCUMENT_BYTES, SUMMARY, from_read, parse_index

FORMAT_VERSION = 2  # 2: long histories as chunk trees (gitexp/store/chunks.py)
META, PARAMS, METRICS, INPUTS, ENV = "meta.yaml", "params.yaml", "metrics.yaml", "inputs.yaml", "env.yaml"
CODE_DIR, PATCH, OUTPUT_LOG = "code", "code.patch", "output.log"
ARTIFACTS_DIR, ATTRIBUTES = "artifacts", ".gitattributes"
# git-lfs smudges pointers and passes other files through, so one rule fits every artifact.
LFS_ATTRIBUTES = b"/artifacts/** filter=lfs diff=lfs merge=lfs -text\n"
MAX_YAML_BYTES = MAX_DOCUMENT_BYTES  # one limit for every document of a run

try:  # the C loader/dumper are several times faster; both are the safe variants
    _Loader: type = yaml.CSafeLoader
    _SafeDumper: type = yaml.CSafeDumper
except AttributeError:  # pragma: no cover - PyYAML built without libyaml
    _Loader, _SafeDumper = yaml.SafeLoader, yaml.SafeDumper


class _Dumper(_SafeDumper):
    """The safe dumper without anchors and aliases: PyYAML writes them for an object met twice, and
    readers refuse them (load_yaml), so gitexp never writes any."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def dump_yaml(data: Any) -> bytes:
    if not data and isinstance(data, dict):
        return b"{}\n"
    fast = yamltext.dump(data)
    if fast is not None:
        return fast
    return yaml.dump(data, Dumper=_Dumper, sort_keys=True, default_flow_style=False,
                     allow_unicode=True, width=100).encode()


# The last few documents dumped, by identity: a run's commits share one params dict (params are
# immutable once logged; logging more makes a new dict) and every run of a process shares one
# read-only environment capture, whose package list costs more to write than the rest of a run.
_dumped: list[tuple[Any, bytes]] = []


def _dump_remembered(data: Any) -> bytes:
    for known, text in _dumped:
        if known is data:
            return text
    text = dump_yaml(data)
    _dumped.insert(0, (data, text))  # holding the object keeps its identity from being reused
    del _dumped[8:]
    return text


def dump_params(params: dict[str, Any]) -> bytes:
    return _dump_remembered(params)


def dump_env(env: dict[str, Any]) -> bytes:
    return _dump_remembered(env)


def load_yaml(data: bytes | None, what: str) -> Any:
    """The document in *data*, read with the safe loader; CorruptRunError naming *what* (the file) when
    it is too large, is not YAML, or uses anchors and aliases.

    Every YAML file gitexp reads comes through here, and runs may come from an untrusted remote: an
    alias bomb (nine levels of nine aliases, a kilobyte) expands into gigabytes in whatever walks the
    result, so aliases are refused before anything is built. gitexp never writes them (_Dumper).
    """
    if data is None:
        return None
    if len(data) > MAX_YAML_BYTES:
        raise CorruptRunError(f"{what} is {len(data)} bytes, over the {MAX_YAML_BYTES} byte limit; not reading it")
    try:
        if b"&" in data or b"*" in data:  # else there can be no anchor or alias: skip the scan
            _refuse_aliases(data, what)
        return yaml.load(data, Loader=_Loader)
    except yaml.YAMLError as exc:
        raise CorruptRunError(f"{what} is not valid YAML: {' '.join(str(exc).split())}") from exc
    except RecursionError:
        raise CorruptRunError(f"{what} nests too deeply to read") from None
    except (ValueError, OverflowError, TypeError) as exc:
        # The safe loader's constructors raise these for well-formed text of no value: a date of
        # month 13 (2026-13-45), an integer past Python's 4,300 digits, `!!float abc`.
        raise CorruptRunError(f"{what} holds a value that cannot be read: {' '.join(str(exc).split())}") from None


def _refuse_aliases(data: bytes, what: str) -> None:
    for event in yaml.parse(data, Loader=_Loader):
        anchor = getattr(event, "anchor", None)
        if anchor is not None:
            raise CorruptRunError(
                f"{what} uses the YAML anchor or alias {anchor!r}, which gitexp never writes; it is refused "
                "because aliases can expand a small file into gigabytes (a 'billion laughs' bomb)")


def render_rows(series: Series) -> str:
    """The TSV history of *series*, formatting only rows added since the last call."""
    done = series.rendered_count
    if done < series.count:
        steps, times, values = series.steps, series.times, series.values
        series.rendered.append("".join(
            f"{steps[i]}\t{times[i]:.3f}\t{values[i]!r}\n" for i in range(done, series.count)
        ))
        series.rendered_count = series.count
        if len(series.rendered) > 64:
            series.rendered[:] = ["".join(series.rendered)]
    return TSV_HEADER + "".join(series.rendered)


def render_range(series: Series, start: int, stop: int) -> bytes:
    """Rows [start, stop) of *series* as a complete TSV, header included: one chunk."""
    steps, times, values, off = series.steps, series.times, series.values, series.released
    return (TSV_HEADER + "".join(f"{steps[i]}\t{times[i]:.3f}\t{values[i]!r}\n"
                                 for i in range(start - off, stop - off))).encode()


def summaries(state: RunState) -> dict[str, dict[str, Any]]:
    return {key: series.summary() for key, series in state.metrics.items()}


def nest(flat: dict[str, Entry]) -> dict[str, Any]:
    """{"a/b.txt": Entry} -> {"a": {"b.txt": Entry}}; where a file and a folder collide, the later wins."""
    root: dict[str, Any] = {}
    for path, entry in flat.items():
        node = root
        *dirs, leaf = path.split("/")
        for part in dirs:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        node[leaf] = entry
    return root


def tree_spec(repo: Repo, state: RunState, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Everything a run commit holds, ready for Repo.stage_tree."""
    history: dict[str, Any] = {}
    for key, series in state.metrics.items():
        node = history
        *dirs, leaf = names.key_to_path(key).split("/")
        for part in dirs:
            node = node.setdefault(part, {})
        if series.sealed or series.count >= chunks.CHUNK_FROM:
            if series.rendered:  # the whole-history text of format 1 is needed no more
                series.rendered, series.rendered_count = [], 0
            node[leaf + ".tsv"] = chunks.stage_chunks(repo, series, render_range)
            continue
        if series.blob is None:
            series.blob = repo.stage_blob(render_rows(series).encode())
        node[leaf + ".tsv"] = Entry(series.blob)
    meta = {**state.meta, "format": FORMAT_VERSION}
    metric_summaries = summaries(state)
    spec: dict[str, Any] = {
        META: dump_yaml(meta),
        PARAMS: dump_params(state.params),
        METRICS: dump_yaml(metric_summaries),
        # The same three documents as one JSON blob: listing 10,000 runs parses these in
        # 0.3 s, the YAML in about 5 s. The YAML stays the record; this is its index.
        SUMMARY: summary_json(meta, state.params, metric_summaries),
    }
    if history:
        spec[HISTORY_DIR] = history
    if state.env is not None:
        spec[ENV] = dump_env(state.env)
    if state.inputs:
        spec[INPUTS] = dump_yaml(state.inputs)
    if state.artifacts:
        spec[ARTIFACTS_DIR] = nest(state.artifacts)
        spec[ATTRIBUTES] = LFS_ATTRIBUTES
    code = state.meta.get("code", {}).get("tree")
    if code:
        spec[CODE_DIR] = Entry(code, 0o040000)
    spec.update(state.files)
    spec.update(extra or {})
    return spec


def commit_message(state: RunState) -> str:
    meta = state.meta
    status = meta.get("status", "RUNNING")
    shown = []
    for key in sorted(state.metrics)[:3]:
        value = state.metrics[key].last
        shown.append(f"{key}={value:.4g}" if math.isfinite(value) else f"{key}={value}")
    title = f"{meta['experiment']}/{meta.get('name') or meta['id']}: {status}"
    if shown:
        title += " " + " ".join(shown)
    trailers = [f"Run-Id: {meta['id']}", f"Experiment: {meta['experiment']}", f"Status: {status}"]
    if meta.get("name"):
        trailers.append(f"Run-Name: {meta['name']}")
    if meta.get("git", {}).get("commit"):
        trailers.append(f"Base-Commit: {meta['git']['commit']}")
    return f"{title}\n\n" + "\n".join(trailers) + "\n"


def load_env(data: bytes | None, what: str) -> dict[str, Any]:
    """env.yaml as a mapping ({} when absent), checked: CorruptRunError naming *what* when it is not usable."""
    return check_env(load_yaml(data, what), what)


def object_kind(repo: RepoReader, oid: str) -> str:
    """What *oid* is, for a message: "a commit", "an annotated tag", "a tree", "a blob", "a missing object"."""
    if not repo.has_object(oid):
        return "a missing object"
    if repo.resolve_commit(oid) == oid:
        return "a commit"
    try:
        return "a tree" if repo.tree_of(oid) == oid else "an annotated tag"
    except (KeyError, ValueError, GitexpError):  # it does not peel to a tree
        return "a blob"


def check_commit(repo: RepoReader, oid: str) -> None:
    """CorruptRunError unless *oid*, a run ref's target, is a commit (a fetched ref may point at anything)."""
    if repo.resolve_commit(oid) != oid:
        raise CorruptRunError(f"the ref points at {object_kind(repo, oid)} ({oid[:12]}), not at a commit")


def read_meta(repo: RepoReader, commit: str) -> dict[str, Any]:
    return check_meta(load_yaml(repo.read_path(commit, META), f"{META} of commit {commit[:12]}"), META)


def summary_json(meta: dict[str, Any], params: dict[str, Any], metrics: dict[str, Any]) -> bytes:
    return json.dumps({"meta": meta, "params": params, "metrics": metrics}, sort_keys=True, default=str,
                      separators=(",", ":")).encode()


def replace_meta(repo: Repo, commit: str, meta: dict[str, Any]) -> dict[str, Any]:
    """The tree of *commit* with meta.yaml (and its summary.json index) replaced by *meta*."""
    spec: dict[str, Any] = dict(repo.tree_entries(commit))
    _, params, metrics = read_summary(repo, commit)
    spec[META] = dump_yaml(meta)
    spec[SUMMARY] = summary_json(meta, params, metrics)
    return spec


def read_listing(repo: RepoReader, commit: str, read: bytes | None = None) -> tuple[dict, dict, dict]:
    """(meta, params, metric summaries) of a run commit: what listing needs.

    Read from summary.json when the commit has one (gitexp writes it) and it is sound, else from the
    YAML; checked either way (CorruptRunError says what is wrong, also when *commit* is not a commit).
    *read*: summary.json's bytes, when git read them already (catfile.listing_files).
    """
    indexed = from_read(read)
    if indexed is not None:
        return indexed
    if read is None:
        is_commit, read = repo.read_commit_path(commit, SUMMARY)
        if not is_commit:
            check_commit(repo, commit)  # raises, saying what the ref points at
            raise CorruptRunError(f"commit {commit[:12]} cannot be read")
        indexed = from_read(read)
        if indexed is not None:
            return indexed
    return read_summary(repo, commit)  # no index, or a damaged one: the YAML is the record


def read_index(repo: RepoReader, commit: str) -> tuple[dict, dict, dict]:
    """(meta, params, metric summaries) from summary.json, checked; CorruptRunError when it is
    absent or unsound (verify reports it, listings fall back to the YAML)."""
    return parse_index(repo.read_path(commit, SUMMARY))


def read_summary(repo: RepoReader, commit: str) -> tuple[dict, dict, dict]:
    """(meta, params, metric summaries) of a run commit from its YAML files, checked."""
    where = f"of commit {commit[:12]}"
    meta = read_meta(repo, commit)
    params = mapping(load_yaml(repo.read_path(commit, PARAMS), f"{PARAMS} {where}"), PARAMS)
    metrics = check_metrics(load_yaml(repo.read_path(commit, METRICS), f"{METRICS} {where}"), METRICS)
    return meta, params, metrics


def read_state(repo: RepoReader, commit: str) -> RunState:
    """The full state of a run commit, to resume it or finish it after a crash."""
    meta, params, metrics = read_summary(repo, commit)
    state = RunState(meta=meta, params=params)
    for key in metrics:
        series = state.metrics[key] = read_history(repo, commit, key)
        tree = chunk_tree(repo, commit, key)
        if tree is not None:  # committed chunks stay as they are: the next commit adds to them
            series.sealed = series.count
            series.chunk_levels = [[(chunks.part_name(0, False), TREE_MODE, tree)]]
    state.env = load_yaml(repo.read_path(commit, ENV), ENV)
    state.inputs = mapping(load_yaml(repo.read_path(commit, INPUTS), INPUTS), INPUTS)
    state.meta.pop("format", None)
    state.artifacts = dict(repo.tree_files(commit, ARTIFACTS_DIR))
    standard = {META, PARAMS, METRICS, SUMMARY, ENV, INPUTS, HISTORY_DIR, CODE_DIR, ARTIFACTS_DIR, ATTRIBUTES}
    state.files = {name: entry for name, entry in repo.tree_entries(commit).items() if name not in standard}
    return state
