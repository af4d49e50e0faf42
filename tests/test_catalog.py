"""The UI's snapshots of the runs (gitexp/ui/catalog.py): shared while nothing changed, read again when it did."""

from __future__ import annotations

from pathlib import Path

import gitexp
from gitexp.cli.main import main
from gitexp.ui.catalog import Catalog

QUIET = {"system_metrics_interval": 0}


def test_a_snapshot_is_kept_while_the_runs_are_as_it_read_them(repo: Path) -> None:
    for name in ("a", "b"):
        with gitexp.start_run(name=name, **QUIET) as run:
            run.log_metric("loss", 1.0)
    catalog = Catalog(ttl=0)  # past its time at once: only the refs and the journals tell
    first = catalog.snapshot()
    assert catalog.snapshot() is first, "read again though no run changed"
    with gitexp.start_run(name="c", **QUIET):
        pass
    made = catalog.snapshot()
    assert made is not first and sorted(r.name for r in made.records) == ["a", "b", "c"]
    assert catalog.snapshot() is made
    assert main(["rm", "a"]) == 0  # its ref moves to the removed runs'
    removed = catalog.snapshot()
    assert removed is not made and sorted(r.name for r in removed.records) == ["b", "c"]


def test_while_a_run_is_live_every_snapshot_is_read_anew(repo: Path) -> None:
    """A live run's values change in its journal, not its ref: the refs cannot tell."""
    catalog = Catalog(ttl=0)
    with gitexp.start_run(name="live", **QUIET) as run:
        run.log_metric("loss", 1.0, step=0)
        before = catalog.snapshot()
        run.log_metric("loss", 0.5, step=1)
        run.checkpoint()
        after = catalog.snapshot()
        assert after is not before
        assert after.run(run.id).metrics["loss"]["last"] == 0.5
    assert catalog.snapshot().run(run.id).status == "FINISHED"
