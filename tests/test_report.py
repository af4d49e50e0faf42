"""`git exp report`: a self-contained HTML file, loaded in headless Chromium (Debian's chromium and
chromium-driver, driven by selenium): no console errors, one row per run, user text escaped."""

from __future__ import annotations

import re
import shutil
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest

from gitexp.cli.main import main
from gitexp.errors import GitexpError
from gitexp.views.report import report
from tests.conftest import git
from tests.sample_runs import EVIL, Sample, sample_runs

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
