"""Metric histories (gitexp/store/histories.py): the fast parser, and the cache of parsed histories by blob id."""

from __future__ import annotations

import math
from functools import partial
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import gitexp
from gitexp.errors import CorruptRunError
from gitexp.store import codec as fmt
from gitexp.store import fastjson, histories
from gitexp.store.state import Series
from tests.conftest import git

QUIET = {"system_metrics_interval": 0}
# msgspec loaded, as a process that has read a long history or listed many runs has it: from then
# on every history parsed here has its numbers read by it (histories._parse_numbers), else by int() and float().
assert fastjson.decoder() is not None
LONG = 1000  # steps: a one-blob history (under chunks.CHUNK_FROM) over MIN_BYTES, so it is cached


def fields(series: Series) -> tuple[object, ...]:
    """Everything a Series holds, NaN made comparable."""
    return tuple(repr(v) for v in (series.steps, series.times, series.values, series.last, series.last_step,
                                   series.min, series.max, series.rendered, series.rendered_count, series.blob))


def outcome(parse: object, data: bytes) -> object:
    try:
        return fields(parse(data))  # type: ignore[operator]
    except (ValueError, UnicodeDecodeError) as exc:
        return type(exc)


@pytest.mark.parametrize("body", [
    "", "0\t1.0\t0.5\n", "5\t1.0\tnan\n3\t1\t-inf\n5\t2\t1e-05\n", "-3\t1\t2\n", "-1\t1\t2\n-1\t1\t3\n-5\t1\t9\n",
    "1\t2\t-0.0\n2\t3\t0.0\n", "1\t2\tnan\n", "+1\t+2\t+3\n", "0\t1\t2\n0\t1\t7\n",
    # malformed, or unusual enough for the reference parser to decide
    "\t1\t2\n", "1\t2\n3\t4\t5\t6\n", "1\t2\t3", "1\t2\t3\nx", "\t2\t3\n4", "1\t2\t3\r\n", "1 \t2\t3\n",
    "1_0\t2\t3\n", "1e5\t2\t3\n", "1\t2\t3\n\n", "1\t2\tinfinity\n", "1\t2\t3\x1c\n", "1\t2\t\u0661\n", "1\t1.5.5\t3\n",
])
def test_the_fast_parser_reads_as_the_reference_one(body: str) -> None:
    data = (histories.TSV_HEADER + body).encode()
    assert outcome(histories.parse_history, data) == outcome(histories.parse_reference, data)
    assert outcome(partial(histories.parse_history, fast=False), data) == outcome(histories.parse_reference, data)


@given(st.text(alphabet="0123456789.-+einaf\t\n \r_x", max_size=30))
@settings(max_examples=500)
def test_the_fast_parser_never_reads_differently(body: str) -> None:
    data = (histories.TSV_HEADER + body).encode()
    assert outcome(histories.parse_history, data) == outcome(histories.parse_reference, data)
    assert outcome(partial(histories.parse_history, fast=False), data) == outcome(histories.parse_reference, data)


@given(st.lists(st.tuples(st.integers(-3, 10**6), st.floats(0, 2e9),
                          st.one_of(st.floats(), st.sampled_from([math.nan, math.inf, -0.0]))), max_size=20))
def test_the_fast_parser_reads_what_gitexp_writes(rows: list[tuple[int, float, float]]) -> None:
    series = Series()
    for step, time, value in rows:
        series.add(step, time, value)
    data = fmt.render_rows(series).encode()
    assert histories._parse_plain(data) is not None
    assert outcome(histories.parse_history, data) == outcome(histories.parse_reference, data)
    assert outcome(partial(histories.parse_history, fast=False), data) == outcome(histories.parse_reference, data)


def test_a_long_history_is_read_as_the_reference_reads_it() -> None:
    """Past NUMBERS_FROM rows msgspec reads the numbers (imported for them): every step, time and
    value as int() and float() read them, the summary as Series.add keeps it."""
    rows = histories.NUMBERS_FROM + 3
    body = "".join(f"{step}\t{1.7e9 + step / 7:.3f}\t{math.sin(step) * 10.0 ** (step % 40 - 20)!r}\n"
                   for step in range(-1, rows - 1))
    data = (histories.TSV_HEADER + body).encode()
    assert outcome(histories.parse_history, data) == outcome(histories.parse_reference, data)
    assert outcome(histories.parse_history, data.replace(b"\t0.0\n", b"\tnan\n")) == \
        outcome(histories.parse_reference, data.replace(b"\t0.0\n", b"\tnan\n"))


def long_run(name: str = "long") -> gitexp.Run:
    with gitexp.start_run(name=name, **QUIET) as run:
        for step in range(LONG):
            run.log_metric("loss", 1 / (step + 1), step=step)
        run.log_metric("acc", 0.5)
    return run


def cache_dir(repo: Path) -> Path:
    return repo / ".git" / histories.CACHE_DIR


def test_a_long_history_is_cached_by_its_blob(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = long_run()
    record = gitexp.get_run("long")
    first = record.history("loss")
    blob = git(repo, "rev-parse", f"{run.ref}:metrics/loss.tsv").strip()
    assert [p.name for p in cache_dir(repo).iterdir()] == [f"{blob}.marshal"]  # acc is too short to cache
    reference = histories.parse_reference(record.read("metrics/loss.tsv") or b"")
    assert fields(first) == fields(reference)

    def no_parsing(data: bytes) -> Series:
        raise AssertionError("the history was parsed again")

    monkeypatch.setattr(histories, "parse_history", no_parsing)
    again = gitexp.get_run("long").history("loss")
    assert fields(again) == fields(reference) and again.values is not first.values
    with pytest.raises(AssertionError, match="parsed again"):
        gitexp.get_run("long").history("acc")


def test_the_cache_never_serves_an_old_history(repo: Path) -> None:
    run = long_run()
    assert len(gitexp.get_run("long").history("loss").steps) == LONG
    with gitexp.start_run(resume=run.id, **QUIET) as again:
        again.log_metric("loss", 0.0)
    series = gitexp.get_run("long").history("loss")
    assert len(series.steps) == LONG + 1 and series.last == 0.0 and series.last_step == LONG
    assert len(list(cache_dir(repo).iterdir())) == 2  # the old blob's entry stays, for the old commit


def test_a_damaged_cache_entry_is_read_again_from_git(repo: Path) -> None:
    long_run()
    record = gitexp.get_run("long")
    expected = fields(record.history("loss"))
    (entry,) = cache_dir(repo).iterdir()
    whole = entry.read_bytes()
    for damage in (b"", b"\x00garbage", whole[:100]):
        entry.write_bytes(damage)
        assert fields(gitexp.get_run("long").history("loss")) == expected
        assert entry.read_bytes() == whole  # written again, whole


def test_a_corrupt_history_is_an_error(repo: Path) -> None:
    with pytest.raises(ValueError, match="not enough values"):  # the reference parser's error
        histories.parse_history(b"step\ttime\tvalue\n1\t2\n")
    run = long_run()
    record = gitexp.get_run("long")
    from gitexp.git.repo import Repo

    repo_ = Repo.discover()
    spec = dict(repo_.tree_entries(record.commit))
    spec["metrics"] = {"loss.tsv": b"step\ttime\tvalue\n0\t1\n"}
    commit = repo_.commit(repo_.write_tree(spec), [record.commit], "broken")
    git(repo, "update-ref", run.ref, commit)
    with pytest.raises(CorruptRunError, match=r"history of metric 'loss'.*malformed"):
        gitexp.get_run("long").history("loss")


def test_the_cache_stays_under_its_size(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("a", "b", "c"):
        long_run(name)
        gitexp.get_run(name).history("loss")
    sizes = sorted(p.stat().st_size for p in cache_dir(repo).iterdir())
    monkeypatch.setattr(histories, "MAX_BYTES", sizes[0] * 2)
    monkeypatch.setattr(histories, "_pruned", False)
    long_run("d")
    gitexp.get_run("d").history("loss")
    assert sum(p.stat().st_size for p in cache_dir(repo).iterdir()) <= histories.MAX_BYTES
    assert fields(gitexp.get_run("a").history("loss")) == fields(
        histories.parse_reference(gitexp.get_run("a").read("metrics/loss.tsv") or b""))
