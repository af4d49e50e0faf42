"""`git exp ui`: the real server (`python -m gitexp ui`, a subprocess on a free loopback port) driven by
headless Chromium through selenium, and by plain HTTP where a browser adds nothing: the table, the
filter, curves of selected runs, a live run gaining points on the open page, compare, the run page and
its artifact download, escaping, the token, the Host check, 404s, read-only-ness, and Ctrl-C."""

from __future__ import annotations

import http.client
import math
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

import gitexp
from gitexp.cli.main import main
from gitexp.ui import curves, hosts, server
from tests.conftest import git

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
CHROMEDRIVER = shutil.which("chromedriver")
EVIL = "<img src=x onerror=alert(1)>"
# An artifact a browser would run if it were shown inline: it must come back as these bytes, as a download.
ARTIFACT = b"<html><script>window.pwned = 1</script></html>\n\x00\xff binary tail"
DEADLINE = 30.0


def wait_for(condition: Callable[[], Any], what: str, timeout: float = DEADLINE) -> Any:
    """Poll *condition* until it returns something true, and return it; fail after *timeout* seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.1)


def repository_state(repo: Path) -> tuple[str, list[str]]:
    """Every ref with its target, and every file of the object store: what a read-only server leaves alone."""
    objects = repo / ".git" / "objects"
    return git(repo, "for-each-ref"), sorted(str(p.relative_to(objects)) for p in objects.rglob("*") if p.is_file())


@pytest.fixture
def sample(repo: Path, tmp_path: Path) -> dict[str, str]:
    """Four runs: name -> run id. One of them is named EVIL, one has an artifact."""
    ids = {}
    for i, name in enumerate(["baseline", "wide", EVIL, "deep"]):
        with gitexp.start_run(name=name, params={"lr": 0.1 * (i + 1), "model": {"layers": 2 + i}}, capture_env=False,
                              system_metrics_interval=0) as run:
            for step in range(30):
                run.log_metrics({"loss": math.exp(-step / 10) + i, "acc": step / 30 - i / 10}, step=step)
            if name == "baseline":
                artifact = tmp_path / "page.html"
                artifact.write_bytes(ARTIFACT)
                run.log_artifact(artifact, "reports/page.html")
            ids[name] = run.id
    gitexp.flush()
    return ids


@contextmanager
def serving(repo: Path, env: dict[str, str], *args: str) -> Iterator[str]:
    """`git exp ui --port 0 ARGS` running in *repo*: the URL it printed. Stopped with
    SIGINT (Ctrl-C) at the end, which must end it cleanly."""
    proc = subprocess.Popen([sys.executable, "-m", "gitexp", "ui", "--port", "0", *args], cwd=repo, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: queue.Queue[str] = queue.Queue()
    assert proc.stdout is not None
    reader = threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True)  # type: ignore[union-attr]
    reader.start()
    printed: list[str] = []

    def url() -> str | None:
        while not lines.empty():
            printed.append(lines.get())
        found = [line.strip() for line in printed if line.strip().startswith("http://")]
        if proc.poll() is not None:
            raise AssertionError(f"git exp ui exited with {proc.returncode}: {proc.stderr.read()}")  # type: ignore[union-attr]
        return found[-1] if found else None

    try:
        address = wait_for(url, "git exp ui to print its URL")
        wait_for(lambda: _get(address)[0] in (200, 403), "the server to answer")
        yield address
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            code = proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
        errors = proc.stderr.read() if proc.stderr else ""
    assert code == 0 and "Traceback" not in errors, errors  # Ctrl-C stops it cleanly
    assert "stopped" in errors


def _get(url: str, path: str | None = None, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """GET *path* (as written: no dot segment is resolved) of the server at *url*."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=30)
    try:
        target = path if path is not None else (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        connection.request("GET", target, headers=headers or {})
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    except OSError:
        return 0, {}, b""
    finally:
        connection.close()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.skip("Chromium and chromedriver are not installed (Debian: apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run", f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def console_problems(browser: Any) -> list[Any]:
    return [entry for entry in browser.get_log("browser") if entry["level"] in ("SEVERE", "WARNING")]


def rows(browser: Any) -> list[str]:
    """The run ids of the table's rows."""
    return browser.execute_script(
        "return Array.from(document.querySelectorAll('#runs tbody tr')).map(r => r.dataset.id)")


def traces(browser: Any) -> list[int]:
    """The number of traces of each chart drawn."""
    return browser.execute_script(
        "return Array.from(document.querySelectorAll('#charts .chart')).map(d => (d.data || []).length)")


def test_table_filter_curves_compare_in_chromium(sample: dict[str, str], repo: Path, env_for_subprocess: dict[str, str],
                                                 browser: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    before = repository_state(repo)
    with serving(repo, env_for_subprocess) as url:
        browser.get(url)
        wait_for(lambda: len(rows(browser)) == 4, "the table to show every run")
        # The run named like markup shows as that text; no element was made of it, nothing ran.
        names = browser.execute_script(
            "return Array.from(document.querySelectorAll('#runs tbody tr')).map(r => r.cells[2].textContent)")
        assert sorted(names) == sorted(sample)
        assert browser.execute_script("return document.querySelectorAll('main img').length") == 0

        box = browser.find_element(By.ID, "where")
        box.send_keys("params.lr < 0.25", Keys.ENTER)  # lr 0.1 and 0.2
        wait_for(lambda: sorted(rows(browser)) == sorted([sample["baseline"], sample["wide"]]), "the filter to narrow")
        box.clear()
        box.send_keys("params.lr <", Keys.ENTER)
        error = wait_for(lambda: browser.find_element(By.ID, "where-error").text, "the filter's error")
        assert "column 12" in error  # where the expression went wrong
        box.clear()
        box.send_keys(Keys.ENTER)
        wait_for(lambda: len(rows(browser)) == 4, "the table to list every run again")

        for name in ("baseline", EVIL):
            browser.find_element(By.CSS_SELECTOR, f'tr[data-id="{sample[name]}"] input[type=checkbox]').click()
        wait_for(lambda: traces(browser) == [2, 2], "two traces in each metric's chart (acc, loss)")
        legend = browser.execute_script("return document.querySelector('#charts').textContent")
        assert EVIL in legend  # Plotly shows the name as text too

        browser.find_element(By.CSS_SELECTOR, '#tabs button[data-tab="compare"]').click()
        wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "#compare-table tbody tr.differs"), "the comparison")
        headers = [th.text for th in browser.find_elements(By.CSS_SELECTOR, "#compare-table thead th")]
        assert headers == ["field", "baseline", EVIL]
        diff = browser.find_element(By.ID, "diff").text  # what git exp diff prints, for two runs
        assert diff.startswith("diff A") and "\nparams\n" in diff and EVIL in diff

        # The address keeps the filter and the selection: a reload shows the same.
        assert sample["baseline"] in browser.current_url
        assert browser.execute_script("return window.pwned === undefined")
        assert console_problems(browser) == []
    assert repository_state(repo) == before  # read-only: no ref, no object added or changed


LIVE_SCRIPT = """
import sys, time, pathlib, gitexp
stop = pathlib.Path(sys.argv[1])
with gitexp.start_run(name="live", capture_env=False, capture_code=False, system_metrics_interval=0) as run:
    print(run.id, flush=True)
    step = 0
    while not stop.exists():
        run.log_metric("loss", 1.0 / (step + 1), step=step)
        step += 1
        time.sleep(0.05)
"""


def test_a_live_run_gains_points_on_the_open_page(repo: Path, tmp_path: Path, env_for_subprocess: dict[str, str],
                                                 browser: Any) -> None:
    stop = tmp_path / "stop"
    child = subprocess.Popen([sys.executable, "-c", LIVE_SCRIPT, str(stop)], cwd=repo, env=env_for_subprocess,
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        run_id = child.stdout.readline().strip()
        with serving(repo, env_for_subprocess) as url:
            wait_for(lambda: run_id.encode() in _get(url, "/api/runs")[2], "the live run to be listed")
            browser.get(f"{url}?runs={run_id}")
            browser.execute_script("window.notReloaded = true")

            def points() -> int:
                return browser.execute_script(
                    "const d = document.querySelector('#charts .chart'); return d && d.data ? d.data[0].x.length : 0")

            first = wait_for(points, "the live run's curve")
            wait_for(lambda: points() > first, "new points on the open page", timeout=20)
            assert browser.execute_script("return window.notReloaded === true")
            row = browser.find_element("css selector", f'tr[data-id="{run_id}"]').text
            assert "RUNNING · live" in row
            assert console_problems(browser) == []
    finally:
        stop.touch()
        child.wait(timeout=30)


def test_run_page_lists_artifacts_and_serves_them_as_downloads(sample: dict[str, str], repo: Path,
                                                               env_for_subprocess: dict[str, str],
                                                               browser: Any) -> None:
    from selenium.webdriver.common.by import By

    run_id = sample["baseline"]
    with serving(repo, env_for_subprocess) as url:
        browser.get(f"{url}run/{run_id}")
        links = wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "#artifact-table a.artifact"), "artifacts")
        assert [a.text for a in links] == ["reports/page.html"]
        wait_for(lambda: traces(browser) == [1, 1], "the run's curves")
        assert console_problems(browser) == []

        status, headers, body = _get(url, urlsplit(links[0].get_attribute("href")).path)
        assert status == 200 and body == ARTIFACT  # byte-identical
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["content-type"] == "application/octet-stream"
        assert headers["content-disposition"].startswith('attachment; filename="page.html"')
        for path in (f"/api/run/{run_id}/artifact/../../../../etc/passwd",
                     f"/api/run/{run_id}/artifact/reports/../reports/page.html",
                     f"/api/run/{run_id}/artifact/%2e%2e/%2e%2e/meta.yaml", f"/api/run/{run_id}/artifact/meta.yaml"):
            assert _get(url, path)[0] == 404, path  # only a path the run lists is served

        # The run named like markup: its page shows the name as text.
        browser.get(f"{url}run/{sample[EVIL]}")
        assert wait_for(lambda: browser.find_element(By.ID, "run-title").text, "the title").startswith(EVIL)
        assert browser.execute_script("return document.querySelectorAll('main img').length") == 0
        assert _get(url, "/run/20990101-0000000000000000")[0] == 404
        assert console_problems(browser) == []


def test_a_non_loopback_host_requires_the_token(sample: dict[str, str], repo: Path,
                                                env_for_subprocess: dict[str, str]) -> None:
    with serving(repo, env_for_subprocess, "--host", "0.0.0.0") as url:
        parts = urlsplit(url)
        assert parts.query.startswith("token=") and len(parts.query) > 30
        local = f"http://127.0.0.1:{parts.port}"
        for path in ("/", "/api/runs", f"/run/{sample['wide']}", "/static/ui.js", "/?token=wrong"):
            status, _, body = _get(local, path)
            assert status == 403 and b"token" in body, path
        assert _get(local, "/api/runs", {"Cookie": "gitexp-ui-token=wrong"})[0] == 403
        status, headers, _ = _get(local, f"/?{parts.query}")
        assert status == 200 and "gitexp-ui-token=" in headers["set-cookie"] and "HttpOnly" in headers["set-cookie"]
        cookie = headers["set-cookie"].split(";")[0]
        assert _get(local, "/api/runs", {"Cookie": cookie})[0] == 200
        token = parts.query.removeprefix("token=")
        assert _get(local, "/api/runs", {"Authorization": f"token {token}"})[0] == 200


def test_loopback_answers_only_loopback_host_names(sample: dict[str, str], repo: Path,
                                                   env_for_subprocess: dict[str, str]) -> None:
    with serving(repo, env_for_subprocess, "--host", "127.0.0.2") as url:  # loopback: no token
        assert url.startswith("http://127.0.0.2:") and "token" not in url
        assert _get(url, "/api/runs")[0] == 200
        assert _get(url, "/api/runs", {"Host": "attacker.example"})[0] == 403  # DNS rebinding
        port = urlsplit(url).port
        assert _get(url, "/api/runs", {"Host": f"localhost:{port}"})[0] == 200
        status, headers, _ = _get(url, "/")
        assert status == 200 and "script-src 'self'" in headers["content-security-policy"]
        assert _get(url, "/api/run/nope/log")[0] == 404


def test_port_in_use_is_an_error_that_says_what_to_do(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    taken = server.bind("127.0.0.1", 0)
    try:
        port = taken.getsockname()[1]
        assert main(["ui", "--port", str(port)]) == 1
    finally:
        taken.close()
    assert f"port {port} on 127.0.0.1 is in use; choose another with --port N, or --port 0" in capsys.readouterr().err


def test_loopback_addresses() -> None:
    assert all(hosts.is_loopback(h) for h in ("127.0.0.1", "127.0.0.2", "localhost", "::1", "[::1]"))
    assert not any(hosts.is_loopback(h) for h in ("0.0.0.0", "::", "192.168.1.10", "example.com", "127.0.0.1.evil.com"))
    assert [hosts.host_name(h) for h in ("127.0.0.2:80", "[::1]:5080", "[::1]", "localhost", "a.example:1")] == \
        ["127.0.0.2", "[::1]", "[::1]", "localhost", "a.example"]
    assert server.urls("127.0.0.1", 8080, None) == ["http://127.0.0.1:8080/"]
    assert server.urls("0.0.0.0", 8080, "abc")[-1] == "http://127.0.0.1:8080/?token=abc"


def test_a_long_history_is_drawn_from_its_extremes_and_says_so(repo: Path) -> None:
    with gitexp.start_run(name="long", capture_env=False, system_metrics_interval=0) as run:
        for step in range(20_000):
            run.log_metric("loss", 100.0 if step == 12_345 else math.sin(step / 100), step=step)
    record = gitexp.get_run("long")
    answer = curves.curves([record], x="step")
    (line,) = answer["charts"][0]["lines"]
    assert line["count"] == 20_000 and line["shown"] <= curves.MAX_POINTS < 20_000
    assert (12_345, 100.0) in zip(line["x"], line["y"], strict=True)  # the spike is drawn
    assert line["x"][0] == 0 and line["x"][-1] == 19_999
    smoothed = curves.curves([record], x="relative", smooth=50)["charts"][0]["lines"][0]
    assert max(v for v in smoothed["y"] if v is not None) < 100.0  # averaged over 50 steps
