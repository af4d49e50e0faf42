"""The on-disk format of a run commit (specified in docs/format.md): encode and decode."""

from __future__ import annotations

import json
import math
from typing import Any

import yaml

from gitexp import names, yamltext
from gitexp.errors import CorruptRunError
from gitexp.repo import Entry, Repo
from gitexp.state import RunState, Series

FORMAT_VERSION = 1
META, PARAMS, METRICS, ENV, INPUTS = "meta.yaml", "params.yaml", "metrics.yaml", "env.yaml", "inputs.yaml"
SUMMARY = "summary.json"
HISTORY_DIR, CODE_DIR, PATCH, OUTPUT_LOG = "metrics", "code", "code.patch", "output.log"
ARTIFACTS_DIR, ATTRIBUTES = "artifacts", ".gitattributes"
# git-lfs smudges pointers and passes other files through, so one rule fits every artifact.
LFS_ATTRIBUTES = b"/artifacts/** filter=lfs diff=lfs merge=lfs -text\n"
TSV_HEADER = "step\ttime\tvalue\n"
MAX_YAML_BYTES = 16 * 2**20  # runs may come from an untrusted remote: refuse absurd blobs

try:  # the C loader/dumper are several times faster; both are the safe variants
    _Loader: type = yaml.CSafeLoader
    _Dumper: type = yaml.CSafeDumper
except AttributeError:  # pragma: no cover - PyYAML built without libyaml
    _Loader, _Dumper = yaml.SafeLoader, yaml.SafeDumper


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
    if data is None:
        return None
    if len(data) > MAX_YAML_BYTES:
        raise CorruptRunError(f"{what} is {len(data)} bytes, over the {MAX_YAML_BYTES} byte limit; not reading it")
    try:
        return yaml.load(data, Loader=_Loader)
    except yaml.YAMLError as exc:
        raise CorruptRunError(f"{what} is not valid YAML: {exc}") from exc


def format_value(value: float) -> str:
    return repr(float(value))


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


def parse_history(data: bytes) -> Series:
    series = Series()
    lines = data.decode().splitlines()
    if not lines or lines[0] != TSV_HEADER.rstrip("\n"):
        raise CorruptRunError("metric history does not start with the header 'step<TAB>time<TAB>value'")
    for line in lines[1:]:
        step, time, value = line.split("\t")
        series.add(int(step), float(time), float(value))
    return series


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
        if series.blob is None:
            series.blob = repo.stage_blob(render_rows(series).encode())
        node = history
        *dirs, leaf = names.key_to_path(key).split("/")
        for part in dirs:
            node = node.setdefault(part, {})
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


def _mapping(value: Any, what: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise CorruptRunError(f"{what} should be a mapping, found {type(value).__name__}")
    return value


def read_meta(repo: Repo, commit: str) -> dict[str, Any]:
    meta = _mapping(load_yaml(repo.read_path(commit, META), f"{META} of commit {commit[:12]}"), META)
    if "id" not in meta or "experiment" not in meta:
        raise CorruptRunError(f"{META} of commit {commit[:12]} lacks 'id' or 'experiment'")
    return meta


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


def read_listing(repo: Repo, commit: str) -> tuple[dict, dict, dict, str | None]:
    """(meta, params, metric summaries, env.yaml blob id) of a run commit: what listing needs.

    Read from summary.json when the commit has one (gitexp writes it), else from the YAML.
    """
    entries = repo.tree_entries(commit)
    env = entries.get(ENV)
    summary = entries.get(SUMMARY)
    if summary is not None:
        data = repo.read_blob(summary.oid)
        try:
            if len(data) > MAX_YAML_BYTES:
                raise ValueError(f"{len(data)} bytes")
            parsed = json.loads(data)
            meta, params, metrics = parsed["meta"], parsed["params"], parsed["metrics"]
            if all(isinstance(x, dict) for x in (meta, params, metrics)) and "id" in meta and "experiment" in meta:
                return meta, params, metrics, env.oid if env else None
        except (ValueError, KeyError, TypeError):
            pass  # a damaged index: the YAML below is the record
    meta, params, metrics = read_summary(repo, commit)
    return meta, params, metrics, env.oid if env else None


def read_summary(repo: Repo, commit: str) -> tuple[dict, dict, dict]:
    """(meta, params, metric summaries) of a run commit: what listing needs."""
    where = f"of commit {commit[:12]}"
    meta = read_meta(repo, commit)
    params = _mapping(load_yaml(repo.read_path(commit, PARAMS), f"{PARAMS} {where}"), PARAMS)
    metrics = _mapping(load_yaml(repo.read_path(commit, METRICS), f"{METRICS} {where}"), METRICS)
    return meta, params, metrics


def read_history(repo: Repo, commit: str, key: str) -> Series:
    data = repo.read_path(commit, f"{HISTORY_DIR}/{names.key_to_path(key)}.tsv")
    if data is None:
        return Series()
    try:
        return parse_history(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise CorruptRunError(f"history of metric {key!r} in commit {commit[:12]} is malformed: {exc}") from exc


def read_state(repo: Repo, commit: str) -> RunState:
    """The full state of a run commit, to resume it or finish it after a crash."""
    meta, params, metrics = read_summary(repo, commit)
    state = RunState(meta=meta, params=params)
    for key in metrics:
        state.metrics[key] = read_history(repo, commit, key)
    state.env = load_yaml(repo.read_path(commit, ENV), ENV)
    state.inputs = _mapping(load_yaml(repo.read_path(commit, INPUTS), INPUTS), INPUTS)
    state.meta.pop("format", None)
    state.artifacts = dict(repo.tree_files(commit, ARTIFACTS_DIR))
    standard = {META, PARAMS, METRICS, SUMMARY, ENV, INPUTS, HISTORY_DIR, CODE_DIR, ARTIFACTS_DIR, ATTRIBUTES}
    state.files = {name: entry for name, entry in repo.tree_entries(commit).items() if name not in standard}
    return state
