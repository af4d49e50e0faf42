"""The system clock stepping back (NTP, a VM resumed, a hand-set date) while runs live: a
duration is never negative, and a run id's date and time are always its meta.start."""

from __future__ import annotations

import calendar
import time
from pathlib import Path

import pytest

import gitexp
from gitexp.store import isotime

QUIET = {"system_metrics_interval": 0, "capture_env": False}

pytestmark = pytest.mark.faults


def id_time(run_id: str) -> str:
    """The ISO time a run id encodes."""
    day = time.strptime(run_id[:8], "%Y%m%d")
    ms = int(run_id[9:16], 16)
    return isotime.iso(calendar.timegm(day) + ms / 1000)


def test_a_clock_stepping_back_gives_no_negative_duration_nor_an_id_off_its_start(
        repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = time.time
    with gitexp.start_run(name="before", **QUIET) as before:
        monkeypatch.setattr(time, "time", lambda: real() - 3600)  # the clock steps back an hour
    after = gitexp.start_run(name="after", **QUIET)
    after.end()
    one = gitexp.get_run(before.id)
    two = gitexp.get_run(after.id)
    assert 0 <= one.meta["duration"] < 60 and 0 <= two.meta["duration"] < 60
    for record in (one, two):
        assert id_time(record.id) == record.meta["start"], record.id
    assert isotime.parse_iso(two.meta["start"]) < isotime.parse_iso(one.meta["start"])  # the clock's word


def test_ids_within_a_process_still_increase_through_a_small_step_back(monkeypatch: pytest.MonkeyPatch) -> None:
    from gitexp.store import names

    real = time.time
    first = [names.new_run_id_at() for _ in range(5)]
    monkeypatch.setattr(time, "time", lambda: real() - 0.5)
    second = [names.new_run_id_at() for _ in range(5)]
    ids = [i for i, _ in first + second]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    for run_id, started in first + second:
        assert id_time(run_id) == isotime.iso(started)
