"""`git exp diff`: how one run differs from another in params, metrics, environment, inputs and code."""

from __future__ import annotations

import json
import math
from typing import Any

from gitexp.errors import GitexpError
from gitexp.store import search
from gitexp.store.fields import flatten
from gitexp.store.runs import RunRecord, run_handles
from gitexp.text import printable
from gitexp.views.table import cell


def _changes(a: dict[str, Any], b: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """{"added": {k: b}, "removed": {k: a}, "changed": {k: [a, b]}} between two flat mappings."""
    def same(x: Any, y: Any) -> bool:  # by value and type as stored: 3 and 3.0 differ, NaN equals NaN
        return json.dumps(x, sort_keys=True, default=str) == json.dumps(y, sort_keys=True, default=str)

    return {
        "added": {k: b[k] for k in sorted(b.keys() - a.keys())},
        "removed": {k: a[k] for k in sorted(a.keys() - b.keys())},
        "changed": {k: [a[k], b[k]] for k in sorted(a.keys() & b.keys()) if not same(a[k], b[k])},
    }


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def metric_change(a: Any, b: Any) -> dict[str, Any]:
    """Both values, b - a, and (b - a) / |a| (None where it means nothing: a missing, zero or not finite)."""
    x, y = _number(a), _number(b)
    change = y - x if x is not None and y is not None and math.isfinite(x) and math.isfinite(y) else None
    relative = change / abs(x) if change is not None and x else None
    return {"a": a, "b": b, "abs": change, "rel": relative}


def env_summary(env: dict[str, Any]) -> dict[str, Any]:
    """The parts of env.yaml worth comparing, each as one printable value."""
    if not env:
        return {}
    python = env.get("python") or {}
    gpu = env.get("gpu") or {}
    devices = gpu.get("devices") or []
    names = [str(d.get("name", "?")) for d in devices]
    gpus = ", ".join(f"{names.count(n)}x {n}" for n in dict.fromkeys(names)) or "none"
    drivers = {str(d.get("driver_version")) for d in devices if d.get("driver_version")}
    cuda = {str(d.get("cuda_version")) for d in devices if d.get("cuda_version")}
    details = [f"driver {', '.join(sorted(drivers))}"] if drivers else []
    details += [f"CUDA {', '.join(sorted(cuda))}"] if cuda else []
    version, implementation = str(python.get("version") or ""), python.get("implementation")
    os_info, cpu = env.get("os") or {}, env.get("cpu") or {}
    return {
        "python": f"{version} ({implementation})" if implementation else version,
        "host": env.get("host"),
        "os": " ".join(str(os_info.get(k, "")) for k in ("system", "release")).strip(),
        "cpu": f"{cpu.get('model')} x{cpu.get('cores_logical')}" if cpu else None,
        "gpus": gpus + (f" ({', '.join(details)})" if details else ""),
        "memory_total_mb": env.get("memory_total_mb"),
    }


def _inputs(record: RunRecord) -> dict[str, Any]:
    """name -> sha256 (or the whole entry when it has none) of the run's inputs.yaml."""
    out = {}
    for name, entry in search.inputs_of(record).items():
        out[name] = entry.get("sha256", entry) if isinstance(entry, dict) else entry
    return out


def diff_runs(a: RunRecord, b: RunRecord, code: bool = False) -> dict[str, Any]:
    """Everything that differs from run *a* to run *b*, as plain data (what `--format json` prints)."""
    metrics = {}
    keys = sorted(k for k in a.metrics.keys() | b.metrics.keys() if not k.startswith("system/"))
    for key in keys:
        metrics[key] = metric_change((a.metrics.get(key) or {}).get("last"), (b.metrics.get(key) or {}).get("last"))
    env_a, env_b = a.env, b.env
    summary_a, summary_b = env_summary(env_a), env_summary(env_b)
    env: dict[str, Any] = {"recorded": [bool(env_a), bool(env_b)]}
    for key in dict.fromkeys([*summary_a, *summary_b]):
        env[key] = [summary_a.get(key), summary_b.get(key)]
    env["packages"] = _changes(env_a.get("packages") or {}, env_b.get("packages") or {})
    tree_a, tree_b = ((r.meta.get("code") or {}).get("tree") for r in (a, b))
    files = [] if not (tree_a or tree_b) else a.repo.diff_stat(tree_a, tree_b)
    code_info: dict[str, Any] = {"base": [a.base_commit, b.base_commit], "tree": [tree_a, tree_b],
                                 "files": [list(f) for f in files]}
    if code:
        code_info["patch"] = a.repo.diff_trees(tree_a, tree_b) if tree_b else ""
    handles = run_handles([a, b])
    return {
        "a": _identity(a, handles[a.id]), "b": _identity(b, handles[b.id]),
        "params": _changes(flatten(a.params), flatten(b.params)),
        "metrics": metrics,
        "env": env,
        "inputs": _changes(_inputs(a), _inputs(b)),
        "code": code_info,
    }


def _identity(record: RunRecord, handle: str) -> dict[str, Any]:
    return {"id": record.id, "name": record.name, "experiment": record.experiment, "status": record.status,
            "commit": record.commit, "handle": handle}


def _percent(value: float | None) -> str:
    return "" if value is None else f"{value * 100:+.1f}%"


def _signed(value: float | None) -> str:
    return "" if value is None else ("+" if value >= 0 else "") + cell(value, 4)


def _pairs(title: str, changes: dict[str, dict[str, Any]], show: Any = lambda v: cell(v, 6)) -> list[str]:
    rows = [("changed", k, f"{show(x)} -> {show(y)}") for k, (x, y) in changes["changed"].items()]
    rows += [("added", k, show(v)) for k, v in changes["added"].items()]
    rows += [("removed", k, show(v)) for k, v in changes["removed"].items()]
    if not rows:
        return ["", f"{title}: the same"]
    width = max(len(k) for _, k, _ in rows)
    return ["", title, *(f"  {what:<8} {k:<{width}}  {text}" for what, k, text in rows)]


def render_diff(diff: dict[str, Any], form: str = "text") -> str:
    if form == "json":
        return json.dumps(diff, indent=2, default=str) + "\n"
    if form != "text":
        raise GitexpError(f"unknown format {form!r} for diff; use text or json")
    a, b = diff["a"], diff["b"]
    lines = [f"diff A {a.get('handle', a['id'])} {a['experiment']}/{a['name']} ({a['status']})",
             f"  -> B {b.get('handle', b['id'])} {b['experiment']}/{b['name']} ({b['status']})"]
    lines += _pairs("params", diff["params"])
    lines += _metric_lines(diff["metrics"])
    lines += _env_lines(diff["env"])
    lines += _pairs("inputs (sha256)", diff["inputs"], show=lambda v: str(v)[:12] if isinstance(v, str) else cell(v, 6))
    lines += _code_lines(diff["code"])
    # Each line holds run data (names, keys, values, file names), which may come from an untrusted
    # remote: none may break into two lines or reach the terminal with its control characters.
    lines = [printable(line) for line in lines]
    patch = diff["code"].get("patch")
    if patch:
        lines += ["", printable(patch.rstrip("\n"), keep="\n\t")]
    return "\n".join(lines) + "\n"


def _metric_lines(metrics: dict[str, dict[str, Any]]) -> list[str]:
    if not metrics:
        return ["", "metrics: none"]
    width = max(7, *(len(k) for k in metrics))
    out = ["", f"{'metrics':<{width + 2}}  {'A':>12} {'B':>12} {'B - A':>12} {'change':>8}"]
    for key, m in metrics.items():
        out.append(f"  {key:<{width}}  {cell(m['a'], 6) or '-':>12} {cell(m['b'], 6) or '-':>12} "
                   f"{_signed(m['abs']):>12} {_percent(m['rel']):>8}".rstrip())
    return out


def _env_lines(env: dict[str, Any]) -> list[str]:
    if not any(env["recorded"]):
        return ["", "environment: not recorded in either run"]
    out = ["", "environment"]
    fields = [k for k in env if k not in ("recorded", "packages")]
    width = max(len(k) for k in [*fields, "packages"])
    for key in fields:
        x, y = env[key]
        out.append(f"  {key:<{width}}  " + (f"same ({cell(x, 6)})" if x == y else f"{cell(x, 6) or '-'} -> "
                                                                                  f"{cell(y, 6) or '-'}"))
    packages = env["packages"]
    counts = {k: len(v) for k, v in packages.items()}
    if not any(counts.values()):
        out.append(f"  {'packages':<{width}}  same")
    else:
        out.append(f"  {'packages':<{width}}  {counts['added']} added, {counts['removed']} removed, "
                   f"{counts['changed']} changed")
        out += [f"    + {k} {v}" for k, v in packages["added"].items()]
        out += [f"    - {k} {v}" for k, v in packages["removed"].items()]
        out += [f"    ~ {k} {x} -> {y}" for k, (x, y) in packages["changed"].items()]
    return out


def _code_lines(code: dict[str, Any]) -> list[str]:
    base_a, base_b = code["base"]
    def short(commit: str | None) -> str:
        return (commit or "none")[:12]

    out = ["", "code", "  base commit  " + (f"same ({short(base_a)})" if base_a == base_b
                                            else f"{short(base_a)} -> {short(base_b)}")]
    tree_a, tree_b = code["tree"]
    if not (tree_a or tree_b):
        out.append("  snapshot     not recorded in either run")
    elif tree_a == tree_b:
        out.append("  snapshot     identical")
    else:
        files = code["files"]
        plus, minus = sum(f[2] for f in files), sum(f[3] for f in files)
        out.append(f"  snapshot     {len(files)} file(s) changed, +{plus} -{minus}")
        out += [f"    {status} {path}  +{added} -{deleted}" for status, path, added, deleted in files]
        if "patch" not in code:
            out.append("  (`git exp diff --code A B` prints the patch)")
    return out  # the patch, if any, follows: render_diff adds it
