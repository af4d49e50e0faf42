"""`git exp report`: a self-contained HTML file, loaded in headless Chromium (Debian's chromium and
chromium-driver, driven by selenium): no console errors, one row per run, user text escaped."""

from __future__ import annotations

import re
import shutil
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

import gitexp
from gitexp.cli.main import main
from gitexp.errors import GitexpError
from gitexp.store import runs
from gitexp.views.report import _start_cells, report
from gitexp.views.table import local_time
from tests.conftest import git
from tests.sample_runs import EVIL, QUIET, Sample, sample_runs

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
CHROMEDRIVER = shutil.which("chromedriver")


@pytest.fixture
def sample(repo: Path) -> Sample:
    return sample_runs(repo, git(repo, "rev-parse", "HEAD").strip(), variant="user-text")


class _Audit(HTMLParser):
    """Collects what the page would load or run: tags, src/href targets, inline handlers."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.targets: list[str] = []
        self.handlers: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        for name, value in attrs:
            if name in ("src", "href", "xlink:href", "action", "data", "poster"):
                self.targets.append(value or "")
            if name.startswith("on"):
                self.handlers.append(name)


def test_report_is_self_contained_and_escaped(sample: Sample, tmp_path: Path) -> None:
    path = report(output=tmp_path / "report.html")
    text = path.read_text(encoding="utf-8")
    audit = _Audit()
    audit.feed(text)
    assert "script" not in audit.tags and "link" not in audit.tags and "iframe" not in audit.tags
    assert audit.handlers == []
    assert all(t.startswith("#") for t in audit.targets), audit.targets  # only links within the page
    assert not re.search(r"url\((?!#)", text) and "@import" not in text
    assert "Content-Security-Policy" in text and "default-src 'none'" in text
    assert audit.tags.count("svg") >= 3  # loss, val/acc and the evil metric (bars: logged twice -> lines)
    assert EVIL not in text and "&lt;script&gt;window.pwned=1&lt;/script&gt;" in text
    # Figures never share an id: each figure's ids are prefixed.
    ids = re.findall(r'\bid="([^"]+)"', text)
    assert len(ids) == len(set(ids))


def test_report_sections(sample: Sample, tmp_path: Path) -> None:
    text = report(["baseline", "wide"], output=tmp_path / "two.html", title="lr sweep").read_text()
    assert "<title>lr sweep</title>" in text
    assert text.count('<tr class="run"') == 2
    for run_id in (sample.ids["baseline"], sample.ids["wide"]):
        assert f'<section id="run-{run_id}">' in text and f'href="#run-{run_id}"' in text
    assert "<h3>Params</h3>" in text and "model.layers" in text
    assert "<h3>Environment</h3>" in text and "installed packages" in text
    text = report(where="experiment = rnn", output=tmp_path / "rnn.html").read_text()
    assert text.count('<tr class="run"') == 1
    # rnn's "acc.max" was logged once: drawn as a bar chart, not as an invisible one-point line.
    assert "acc.max: last value per run" in text


def test_a_report_of_many_runs_lists_them_all_and_details_and_draws_the_first(
        sample: Sample, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A sweep's thousands of runs: every one in the table, the first MAX_SECTIONS with a section
    of their own (only their names link to one), the first MAX_LINES drawn; the page says so."""
    from gitexp.views import report as module

    records = runs.load_runs()
    monkeypatch.setattr(module, "MAX_SECTIONS", 2)
    monkeypatch.setattr(module, "MAX_LINES", 1)
    text = report([r.id for r in records], output=tmp_path / "many.html").read_text()
    assert text.count('<tr class="run"') == len(records) > 2
    sections = re.findall(r'<section id="run-([^"]+)">', text)
    assert sections == [r.id for r in records[:2]]
    assert re.findall(r'href="#run-([^"]+)"', text) == sections  # no link to a section that is not there
    assert f"The {len(records) - 2:,} runs after the first 2 have no section of their own" in text
    assert f"The plots draw the first 1 of the {len(records):,} runs" in text
    # One line a plot: the second run, which a plot of every run draws (and its legend names), is not drawn.
    figures = re.findall(r"<figure>.*?</figure>", text, flags=re.S)
    assert figures and all(records[1].name not in figure for figure in figures)


def test_report_errors(sample: Sample, tmp_path: Path) -> None:
    with pytest.raises(GitexpError, match="no runs to report match --where"):
        report(where="params.lr > 100", output=tmp_path / "r.html")
    with pytest.raises(GitexpError, match=r"folder .*missing.* does not exist"):
        report(output=tmp_path / "missing" / "dir" / "r.html")
    (tmp_path / "taken").mkdir()
    with pytest.raises(GitexpError, match="cannot write the report to"):
        report(["rnn"], output=tmp_path / "taken")  # a folder, not a file


def test_cli_report(sample: Sample, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "out.html"
    code = main(["report", "--where", "experiment = cnn", "-o", str(target), "--title", "cnn runs"])
    out, err = capsys.readouterr()
    assert (code, err, out) == (0, "", f"{target}\n")
    assert target.read_text().count('<tr class="run"') == 4


def test_report_goes_outside_the_work_tree_by_default(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Regression: `git exp report` wrote report.html into the work tree, where the next run's code
    snapshot took it and a branch switch removed it. Without -o it goes under the git directory."""
    with gitexp.start_run(name="one", **QUIET) as run:
        run.log_metric("loss", 0.5)
    assert main(["report"]) == 0
    out, err = capsys.readouterr()
    path = Path(out.strip())
    assert path.parent == (repo / ".git" / "gitexp" / "reports").resolve() and path.name.startswith("report-")
    assert path.read_text(encoding="utf-8").count('<tr class="run"') == 1
    assert err == f"open it in a browser: {path.as_uri()}\n"
    assert git(repo, "status", "--porcelain", "--untracked-files=all") == ""  # the work tree is untouched
    assert main(["report"]) == 0  # a second report, within the same second, is a new file
    second = Path(capsys.readouterr()[0].strip())
    assert second != path and second.exists() and path.exists()


def code_files(run_id: str) -> tuple[list[str], str | None]:
    """The paths in run *run_id*'s code snapshot, and its code.patch (None when there is none)."""
    record = runs.resolve(runs.load_runs(), run_id)
    listed = git(Path.cwd(), "ls-tree", "-r", "--name-only", f"{record.commit}:code").split()
    patch = git(Path.cwd(), "show", f"{record.commit}:code.patch", check=False) or None
    return listed, patch


def test_gitexp_outputs_stay_out_of_code_snapshots(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Regression: a report written into the work tree was swept into the next run's code snapshot
    (its code/ and a 230 KB code.patch). gitexp's own outputs, reports and plots, are left out
    while they hold what gitexp wrote; a file the user edits or adds is theirs and is kept."""
    with gitexp.start_run(name="first", **QUIET) as run:
        run.log_metric("loss", 0.5, step=0)
        run.log_metric("loss", 0.25, step=1)
    (repo / "out").mkdir()
    assert main(["report", "-o", "report.html"]) == 0
    assert main(["plot", "loss", "-o", "out/loss.png"]) == 0
    assert main(["plot", "loss", "-o", str(repo.parent / "elsewhere.svg")]) == 0  # outside: nothing to note
    capsys.readouterr()
    (repo / "notes.txt").write_text("the user's own file\n")
    with gitexp.start_run(name="second", **QUIET) as run:
        run.log_metric("loss", 0.4)
    listed, patch = code_files(run.id)
    assert "report.html" not in listed and "out/loss.png" not in listed
    assert "notes.txt" in listed and patch is not None
    assert "report.html" not in patch and "loss.png" not in patch and "notes.txt" in patch
    (repo / "notes.txt").unlink()
    with gitexp.start_run(name="clean", **QUIET) as run:
        pass
    assert runs.resolve(runs.load_runs(), run.id).meta["git"]["dirty"] is False  # only gitexp's outputs: clean
    assert code_files(run.id) == (["train.py", ".gitignore"][::-1], None)
    # Once the user changes the report, or adds the plot to git, it is theirs.
    with (repo / "report.html").open("a", encoding="utf-8") as handle:
        handle.write("<!-- my notes -->\n")
    git(repo, "add", "out/loss.png")
    with gitexp.start_run(name="edited", **QUIET) as run:
        pass
    listed, _ = code_files(run.id)
    assert "report.html" in listed and "out/loss.png" in listed


def test_inline_svg_is_well_formed_xml(sample: Sample, tmp_path: Path) -> None:
    text = report(["baseline"], output=tmp_path / "one.html").read_text()
    svg = text[text.index("<svg"): text.index("</svg>") + len("</svg>")]
    assert ET.fromstring(svg).tag == "{http://www.w3.org/2000/svg}svg"


# -- in a real browser --------------------------------------------------------------------------


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[object]:
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.skip("Chromium and chromedriver are not installed (Debian: apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
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


def test_report_in_headless_chromium(sample: Sample, tmp_path: Path, browser: object) -> None:
    from selenium.webdriver.common.by import By

    path = report(output=tmp_path / "report.html")
    browser.get(path.as_uri())  # type: ignore[attr-defined]
    logs = browser.get_log("browser")  # type: ignore[attr-defined]
    problems = [entry for entry in logs if entry["level"] in ("SEVERE", "WARNING")]
    assert problems == [], problems  # no console errors: nothing blocked, nothing failed to load
    rows = browser.find_elements(By.CSS_SELECTOR, "table#runs tbody tr.run")  # type: ignore[attr-defined]
    assert len(rows) == len(sample.ids) == 5  # one row per run
    assert browser.execute_script("return window.pwned === undefined")  # type: ignore[attr-defined]
    assert browser.execute_script("return document.scripts.length") == 0  # type: ignore[attr-defined]
    assert browser.execute_script(  # type: ignore[attr-defined]
        "return document.querySelectorAll('figure svg').length") >= 3
    names = {row.find_elements(By.TAG_NAME, "td")[1].text for row in rows}
    assert names == {"baseline", "wide", "rnn", "broken", EVIL}  # the evil name shown as text
    assert browser.execute_script(  # type: ignore[attr-defined]
        "return Array.from(document.querySelectorAll('figure svg')).every(s => s.getBBox().width > 0)")


def sweep(repo: Path, count: int = 10) -> list[str]:
    """*count* runs as a sweep makes them: 8 params that vary (two of them nested), 8 metrics, one
    artifact each (every third one big enough for Git LFS)."""
    git(repo, "config", "exp.lfsThreshold", "100000")
    ids = []
    for i in range(count):
        params = {"lr": round(0.01 * 1.8 ** i, 5), "batch": (32, 64, 128)[i % 3], "wd": (0.0, 1e-4, 1e-3)[i % 3],
                  "dropout": 0.1 * (i % 4), "warmup": 100 * (i % 5), "seed": i,
                  "model": {"layers": 2 + i % 4, "hidden": 64 * (1 + i % 3)}}
        with gitexp.start_run(name=f"lr-{params['lr']:g}-s{i}", experiment="mlp", params=params, **QUIET) as run:
            for step in range(3):
                loss = 2.0 / (1 + step + i)
                run.log_metrics({"loss": loss, "val_loss": loss * 1.1, "acc": 1 - loss / 3, "val_acc": 1 - loss / 2.9,
                                 "train/grad_norm": 3.0 + i + step, "lr_now": params["lr"] / (1 + step)}, step=step)
            run.log_metrics({"test_acc": 0.5 + i / 30, "f1": 0.4 + i / 40})
            weights = repo / "weights.bin"
            weights.write_bytes(bytes([i]) * (200_000 if i % 3 == 0 else 1000 + i))
            run.log_artifact(weights, "model/weights.bin")
            weights.unlink()
        ids.append(run.id)
    return ids


def test_report_start_column_is_as_short_as_the_runs_allow() -> None:
    assert _start_cells(["2026-12-02T10:05:00.000Z", "2026-12-02T10:06:00.000Z"]) == (
        [local_time("2026-12-02T10:05:00.000Z")[11:], local_time("2026-12-02T10:06:00.000Z")[11:]],
        local_time("2026-12-02T10:05:00.000Z")[:10])
    cells, day = _start_cells(["2026-11-02T10:05:00.000Z", "2026-12-02T10:06:00.000Z"])
    assert day is None and [len(c) for c in cells] == [11, 11]  # MM-DD HH:MM
    cells, day = _start_cells(["2025-11-02T10:05:00.000Z", "2026-12-02T10:06:00.000Z"])
    assert day is None and [len(c) for c in cells] == [16, 16]


def test_report_fits_a_laptop_screen(repo: Path, tmp_path: Path, browser: object) -> None:
    """Regression: at 1400 px the run table wrapped ids and dates onto three lines, hid metric
    columns behind a horizontal scroll and listed no artifacts. At 1280x800, ~10 runs with 8
    params and 8 metrics fit: no cell wraps, nothing scrolls sideways, every artifact is listed."""
    from selenium.webdriver.common.by import By

    ids = sweep(repo)
    path = report(output=tmp_path / "sweep.html")
    driver: Any = browser
    driver.set_window_size(1280, 800)
    inner = driver.execute_script("return [window.innerWidth, window.innerHeight]")
    driver.set_window_size(1280 + 1280 - inner[0], 800 + 800 - inner[1])  # the viewport, not the window
    driver.get(path.as_uri())
    assert driver.execute_script("return [window.innerWidth, window.innerHeight]") == [1280, 800]
    rows = driver.find_elements(By.CSS_SELECTOR, "table#runs tbody tr.run")
    assert len(rows) == 10
    headers = driver.execute_script(
        "return Array.from(document.querySelectorAll('table#runs thead th'))"
        ".map(th => th.textContent.replaceAll('\\u00ad', ''))")  # without the soft hyphens
    assert {"id", "name", "start", "params", "metrics", "lr", "model.layers", "val_loss", "artifacts"} <= set(headers)
    lines = driver.execute_script("""
        const out = [];
        for (const td of document.querySelectorAll('table#runs tbody td')) {
            const walk = document.createTreeWalker(td, NodeFilter.SHOW_TEXT), tops = new Set();
            while (walk.nextNode()) {  // one rectangle per line of each piece of text
                const range = document.createRange();
                range.selectNodeContents(walk.currentNode);
                for (const rect of range.getClientRects()) tops.add(Math.round(rect.top));
            }
            out.push([td.cellIndex, tops.size]);
        }
        return out;""")
    assert lines and all(count <= 1 for _, count in lines), [c for c in lines if c[1] > 1]  # no cell wraps
    # The id and start cells hold one line of text: their text is no taller than one line.
    heights = driver.execute_script("""
        const out = [];
        for (const row of document.querySelectorAll('table#runs tbody tr.run')) {
            for (const td of [row.cells[0], row.cells[2]]) {
                const range = document.createRange();
                range.selectNodeContents(td);
                out.push([td.textContent, range.getBoundingClientRect().height,
                          parseFloat(getComputedStyle(td).lineHeight)]);
            }
        }
        return out;""")
    assert all(0 < height <= line + 0.5 for _, height, line in heights), heights
    box = driver.execute_script("""
        const table = document.querySelector('table#runs'), box = table.parentElement;
        return [table.scrollWidth, box.clientWidth, box.scrollWidth,
                document.documentElement.scrollWidth, window.innerWidth];""")
    assert box[0] <= box[1] and box[2] <= box[1], box  # the table fits its box: no horizontal scroll
    assert box[3] <= box[4], box  # nor does the page scroll sideways
    # Each run's artifacts: path, size and where they are stored.
    for run_id in ids:
        table = driver.find_element(By.CSS_SELECTOR, f"[id='artifacts-{run_id}'] + div table")
        cells = [td.text for td in table.find_elements(By.CSS_SELECTOR, "tbody td")]
        assert cells[0] == "model/weights.bin" and cells[1].endswith(("B", "KiB")) and cells[2] in ("git", "Git LFS")
    stored = driver.execute_script("return Array.from(document.querySelectorAll("
                                   "'section .block table tbody tr td:nth-child(3)')).map(t => t.textContent)")
    assert "Git LFS" in stored and "git" in stored
