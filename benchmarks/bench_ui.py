#!/usr/bin/env python
"""`git exp ui` in headless Chromium, against its targets, with `mlflow ui` on the same kind of runs as anchor.

    python benchmarks/bench_ui.py              # about 3 minutes once the fixtures exist
    python benchmarks/bench_ui.py --no-mlflow  # gitexp only

Prints one table: measurement | git exp ui | mlflow ui (anchor) | target | ok?

Each time is measured inside the browser, the same way for both tools: a script added to every
new document (Chrome DevTools' Page.addScriptToEvaluateOnNewDocument) checks a condition on every
animation frame and notes performance.now() when it first holds, that is, milliseconds since the
page was requested. Every measurement is the median of REPS page loads after one warm-up load (whose
time is printed in the notes as "first"): the server's caches and the browser's copy of
plotly.min.js are warm, as for a user who keeps the UI open.

Fixtures (cached under benchmarks/.cache/, shared with bench_core.py and bench_compare.py):
- 10,000 runs in 5 experiments (bench_core's, built through the real API), and MLflow's sqlite
  store of the same runs (bench_core's; 2,000 runs if building 10,000 would take too long);
- 50 runs x 10,000 steps of one metric (bench_compare's plot fixture);
- one run with one metric of 1,000,000 steps (built here).
- for the MLflow anchor of one run's curve: one MLflow run of 10,000 steps (built here, each time).

The MLflow side runs `mlflow ui` (the mlflow installed with gitexp's test extras) on its sqlite store.
Its experiment page lists one experiment at a time (2,000 of the 10,000 runs); its run page draws
the run's metric charts. The rows without an MLflow figure are the ones its UI has no counterpart for
that this script could time reliably (its filter box, a chart of 50 runs' histories, one of 1,000,000 steps).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(ROOT), str(HERE)]

import bench_compare  # noqa: E402  (needs the path above)
import bench_core as core  # noqa: E402

REPS = 3
REBUILD = False  # --rebuild: fixtures of this gitexp version, not any cached one
WHERE = "params.lr = 0.01 and metrics.acc > 0.905"
BIG_STEPS = 1_000_000
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
CHROMEDRIVER = shutil.which("chromedriver")
WATCH = """
window.__shownAt = null;
(function () {
  const test = () => { try { return Boolean(%s); } catch (e) { return false; } };
  const tick = () => { if (test()) { window.__shownAt = performance.now(); } else { requestAnimationFrame(tick); } };
  requestAnimationFrame(tick);
})();
"""
ROWS = "document.querySelector('#runs tbody tr')"
CHART_OF = ("(() => {{ const d = document.querySelector('#charts .chart'); "
            "return d && d.data && d.data.length === {n} && d.querySelector('path.js-line'); }})()")
MLFLOW_ROWS = r"/\brun-\d+\b/.test(document.body.innerText)"
MLFLOW_CHART = "document.querySelector('path.js-line')"


# -- fixtures --------------------------------------------------------------------------------------


def big_history_fixture() -> tuple[Path, str]:
    """A repository with one run logging one metric for BIG_STEPS steps: (repo, run id)."""
    final = core.CACHE / f"ui-1m-{core.gitexp_version_key()}"
    if (final / "fixture.json").exists():
        return final / "repo", json.loads((final / "fixture.json").read_text())["run"]
    core.log(f"building a run of {BIG_STEPS:,} steps (cached in {final})")
    import gitexp

    tmp = core.CACHE / f"tmp-ui-1m-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    repo = core.make_code_repo(tmp / "repo", dirty=False)
    with gitexp.start_run(name="million", repo=repo, capture_env=False, capture_code=False,
                          system_metrics_interval=0) as run:
        log = run.log_metric
        for step in range(BIG_STEPS):
            log("loss", math.exp(-step / 250_000) * (1 + 0.05 * math.sin(step * 0.7)) + (3.0 if step == 777_777 else 0),
                step=step)
        run_id = run.id
    gitexp.flush()
    (tmp / "fixture.json").write_text(json.dumps({"run": run_id, "steps": BIG_STEPS}))
    tmp.rename(final)
    return final / "repo", run_id


def reused(pattern: str, inside: str, notes: list[str]) -> Path | None:
    """The newest cached fixture matching *pattern*, whatever gitexp version built it, unless --rebuild.

    bench_core's fixtures are keyed by a hash of the run store's source, so any change there means a
    rebuild of minutes; the UI reads older formats as every gitexp does, so a fixture built by an
    earlier version measures it as well."""
    if REBUILD:
        return None
    found = sorted(core.CACHE.glob(pattern), key=lambda p: p.stat().st_mtime)
    found = [p for p in found if (p / "fixture.json").exists()]
    if not found:
        return None
    notes.append(f"fixture reused: {found[-1].name}")
    return found[-1] / inside


def mlflow_curve_fixture(work: Path) -> tuple[str, str, str]:
    """An MLflow sqlite store with one run of 10,000 steps of loss: (uri, experiment id, run id)."""
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{work / 'curve.db'}"
    client = MlflowClient(uri)
    experiment = client.create_experiment("curve")
    run = client.create_run(experiment, run_name="run-0")
    now = int(time.time() * 1000)
    steps = bench_compare.PLOT_STEPS
    values = [Metric("loss", math.exp(-s / 2500) * (1 + 0.05 * math.sin(s * 0.7)), now + s, s) for s in range(steps)]
    for start in range(0, steps, 1000):
        client.log_batch(run.info.run_id, metrics=values[start:start + 1000])
    client.set_terminated(run.info.run_id)
    return uri, experiment, run.info.run_id


# -- servers and the browser -------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_http(url: str, limit_s: float = 120) -> None:
    deadline = time.monotonic() + limit_s
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not answer within {limit_s} s")
        time.sleep(0.2)


@contextmanager
def gitexp_ui(repo: Path) -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "gitexp", "ui", "--port", str(port)], cwd=repo,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_http(url)
        yield url
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)


@contextmanager
def mlflow_ui(uri: str) -> Iterator[str]:
    port = free_port()
    mlflow = shutil.which("mlflow") or "mlflow"
    proc = subprocess.Popen([mlflow, "ui", "--backend-store-uri", uri, "--host", "127.0.0.1", "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_http(url + "health")
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:  # its workers linger: the measurements stand, the server goes
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)


def browser(profile: Path) -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run", "--window-size=1400,900", f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(120)
    return driver


def shown_after(driver: Any, url: str, condition: str, limit_s: float = 60) -> float:
    """Seconds from requesting *url* until *condition* (JS) first holds on the page."""
    script = driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": WATCH % condition})
    try:
        driver.get("about:blank")
        driver.get(url)
        deadline = time.monotonic() + limit_s
        while True:
            at = driver.execute_script("return window.__shownAt")
            if at is not None:
                return at / 1000
            if time.monotonic() > deadline:
                raise RuntimeError(f"not shown within {limit_s} s: {condition}")
            time.sleep(0.05)
    finally:
        driver.execute_cdp_cmd("Page.removeScriptToEvaluateOnNewDocument", {"identifier": script["identifier"]})


def filter_time(driver: Any, url: str) -> float:
    """Seconds from setting the filter box (as Enter does) until the table shows the matching runs."""
    driver.get(url)
    driver.execute_script("return 1")
    deadline = time.monotonic() + 60
    while not driver.execute_script(f"return Boolean({ROWS})"):
        if time.monotonic() > deadline:
            raise RuntimeError("the table did not show")
        time.sleep(0.05)
    return driver.execute_async_script("""
        const [where, done] = arguments;
        const box = document.getElementById('where');
        const count = document.getElementById('count');
        const t0 = performance.now();
        box.value = where;
        box.dispatchEvent(new KeyboardEvent('keydown', {key: 'Enter', bubbles: true}));
        const tick = () => count.textContent.includes('match') ? done((performance.now() - t0) / 1000)
                                                                : requestAnimationFrame(tick);
        requestAnimationFrame(tick);
    """, WHERE)


def measure(what: str, take: Any) -> dict[str, Any]:
    """One warm-up, then REPS measurements: {"first", "median", "all"}."""
    core.log(f"  {what}")
    first = take()
    times = [take() for _ in range(REPS)]
    return {"first": first, "median": statistics.median(times), "all": times}


# -- main --------------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--no-mlflow", action="store_true", help="skip the mlflow ui anchor")
    parser.add_argument("--rebuild", action="store_true",
                        help="use (and build if missing) fixtures of this gitexp version, not any cached one")
    args = parser.parse_args()
    global REBUILD
    REBUILD = args.rebuild
    if not (CHROMIUM and CHROMEDRIVER):
        print("needs chromium and chromedriver (Debian: apt-get install chromium chromium-driver)", file=sys.stderr)
        return 1
    core.CACHE.mkdir(exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="bench-ui-"))
    core.isolate(work / "home")
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    notes: list[str] = []
    big_repo = reused("gitexp-v*-10000", "repo", notes) or core.cached_gitexp_fixture(10_000)[0]
    plot_repo = reused("plot-*-50x10000", "repo", notes) or bench_compare.cached_plot_fixture()
    million_repo, million_id = big_history_fixture()
    results: dict[str, dict[str, Any]] = {}
    driver = browser(work / "profile")
    try:
        core.log("git exp ui")
        with gitexp_ui(big_repo) as url:
            results["table"] = measure("table, 10,000 runs", lambda: shown_after(driver, url, ROWS))
            results["filter"] = measure("filter, 10,000 runs", lambda: filter_time(driver, url))
        import gitexp

        plot_ids = [r.id for r in gitexp.load_runs(plot_repo)]
        with gitexp_ui(plot_repo) as url:
            page = f"{url}?runs={','.join(plot_ids)}"
            results["curves"] = measure("curves, 50 runs", lambda: shown_after(driver, page, CHART_OF.format(n=50)))
            one = f"{url}?runs={plot_ids[0]}"
            results["one"] = measure("one run's curve", lambda: shown_after(driver, one, CHART_OF.format(n=1)))
        with gitexp_ui(million_repo) as url:
            page = f"{url}?runs={million_id}"
            results["million"] = measure("1,000,000 steps", lambda: shown_after(driver, page, CHART_OF.format(n=1)))
        anchor: dict[str, dict[str, Any]] = {}
        if not args.no_mlflow:
            anchor = mlflow_side(driver, work, notes)
    finally:
        driver.quit()
    print_table(results, anchor, notes)
    shutil.rmtree(work, ignore_errors=True)
    return 0


def mlflow_side(driver: Any, work: Path, notes: list[str]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    try:
        import mlflow
        from mlflow.tracking import MlflowClient
    except ImportError:
        notes.append("mlflow is not installed here (pip install -e '.[test]'): no anchor")
        return out
    core.log(f"mlflow ui {mlflow.__version__}")
    uri, info = core.cached_mlflow_fixture(Path(sys.executable), mlflow.__version__, 10_000, 2000, 480.0)
    experiment = MlflowClient(uri).get_experiment_by_name("exp0")
    per_experiment = info["runs"] // 5
    notes.append(f"mlflow ui {mlflow.__version__}: its experiment page shows one experiment: exp0, "
                 f"{per_experiment:,} of the store's {info['runs']:,} runs (git exp ui lists all 10,000 at once)")
    try:
        with mlflow_ui(uri) as url:
            page = f"{url}#/experiments/{experiment.experiment_id}/runs"
            out["table"] = measure("mlflow table", lambda: shown_after(driver, page, MLFLOW_ROWS, limit_s=120))
    except Exception as exc:  # the anchor must not hide gitexp's figures
        notes.append(f"mlflow ui table: not measured ({type(exc).__name__}: {exc})")
    try:
        curve_uri, curve_experiment, curve_run = mlflow_curve_fixture(work)
        with mlflow_ui(curve_uri) as url:
            page = f"{url}#/experiments/{curve_experiment}/runs/{curve_run}/model-metrics"
            out["one"] = measure("mlflow one run's curve", lambda: shown_after(driver, page, MLFLOW_CHART, limit_s=120))
    except Exception as exc:
        notes.append(f"mlflow ui run chart: not measured ({type(exc).__name__}: {exc})")
    return out


def print_table(results: dict[str, dict[str, Any]], anchor: dict[str, dict[str, Any]], notes: list[str]) -> None:
    rows = [
        ("table", "runs table, 10,000 runs: first rows shown", 1.0),
        ("filter", f"filter applied over 10,000 runs ({WHERE})", 0.5),
        ("curves", "curves, 50 runs x 10,000 steps: drawn", 1.0),
        ("million", "one metric of 1,000,000 steps: drawn", 1.0),
        ("one", "one run's curve, 10,000 steps: drawn", None),
    ]
    print("| measurement | git exp ui | mlflow ui (anchor) | target | ok? |")
    print("|---|---|---|---|---|")
    for key, label, target in rows:
        mine = results.get(key)
        theirs = anchor.get(key)
        cell = f"{mine['median']:.3f} s" if mine else "n/a"
        other = f"{theirs['median']:.3f} s" if theirs else "n/a"
        verdict = "" if target is None or mine is None else ("yes" if mine["median"] <= target else "NO")
        limit = f"≤ {target:g} s" if target is not None else "(anchor only)"
        print(f"| {label} | {cell} | {other} | {limit} | {verdict} |")
    print()
    print(f"Times: seconds from requesting the page (or, for the filter, from setting it) until shown, in headless "
          f"Chromium; median of {REPS} after one warm-up load.")
    for name, found in (("git exp ui", results), ("mlflow ui", anchor)):
        for key, value in found.items():
            each = ", ".join(f"{t:.3f}" for t in value["all"])
            print(f"- {name} {key}: first load {value['first']:.3f} s; then {each}")
    for note in notes:
        print(f"- {note}")
    print(f"- load average: {', '.join(f'{v:.2f}' for v in os.getloadavg())} ({os.cpu_count()} CPUs)")


if __name__ == "__main__":
    sys.exit(main())
