"""Distributed jobs (gitexp/tracking/ranks.py): one run per job, owned by rank 0; the other ranks
write nothing unless per-rank metrics are chosen, which then land in rank 0's run."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import gitexp
from gitexp.tracking import ranks

DIST_VARIABLES = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "NODE_RANK", "GROUP_RANK", "MASTER_ADDR",
                  "MASTER_PORT", "TORCHELASTIC_RUN_ID")


@pytest.fixture(autouse=True)
def no_job(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in DIST_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def test_the_rank_comes_from_rank_else_from_the_local_rank_and_node(monkeypatch: pytest.MonkeyPatch) -> None:
    assert ranks.rank() == 0 and ranks.world_size() == 1 and ranks.job_key() is None
    for name, value in {"LOCAL_RANK": "1", "NODE_RANK": "1", "LOCAL_WORLD_SIZE": "4"}.items():
        monkeypatch.setenv(name, value)
    assert ranks.rank() == 5 and not ranks.on_first_node()  # Lightning's launcher sets no RANK
    for name, value in {"RANK": "3", "NODE_RANK": "0", "LOCAL_RANK": "3", "MASTER_PORT": "29500"}.items():
        monkeypatch.setenv(name, value)
    assert ranks.rank() == 3 and ranks.on_first_node() and ranks.job_key() is not None


def test_a_rank_other_than_0_writes_nothing_and_its_logging_does_not_fail(repo: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RANK", "1")
    with gitexp.start_run(experiment="ddp", params={"lr": 0.1}) as run:
        assert run.params == {} and run.name == "" and run.experiment == "ddp"
        run.log_metric("loss", 0.5)
        run.log_metrics({"acc": 0.9}, step=3)
        run.log_params({"batch": 8})
        run.set_tag("rank", "1")
        assert gitexp.active_run() is run
        gitexp.log_metric("loss", 0.4)  # the module-level verbs act on it too
    assert run.status == "RUNNING" and run.id == ""
    assert not (repo / ".git" / "gitexp").exists() and gitexp.load_runs() == []
    with gitexp.start_run(experiment="ddp", rank=0) as owned:  # a framework's rank wins over RANK
        owned.log_metric("loss", 0.3)
    assert [r.id for r in gitexp.load_runs()] == [owned.id]


def test_per_rank_metrics_of_a_rank_off_rank_0s_machine_are_warned_of_and_not_recorded(
        repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RANK", "5")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("MASTER_PORT", "29500")
    with pytest.warns(RuntimeWarning, match="rank 5 runs on another machine than rank 0"), \
            gitexp.start_run(per_rank=True) as run:
        run.log_metric("loss", 0.5)
    assert not (repo / ".git" / "gitexp").exists()


DDP_SCRIPT = """
import sys

import torch
import torch.distributed as dist

import gitexp

dist.init_process_group("gloo")
rank = dist.get_rank()
torch.manual_seed(0)
model = torch.nn.parallel.DistributedDataParallel(torch.nn.Linear(4, 1))
optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
torch.manual_seed(rank)  # each rank its own data, so their losses differ
for per_rank in (False, True):
    with gitexp.start_run(experiment="ddp", name=f"per-rank-{per_rank}", params={"lr": 0.05},
                          per_rank=per_rank) as run:
        for step in range(6):
            x = torch.randn(8, 4)
            loss = torch.nn.functional.mse_loss(model(x), x.sum(1, keepdim=True))
            optimizer.zero_grad()
            loss.backward()  # DDP's all-reduce keeps the ranks in step
            optimizer.step()
            run.log_metric("loss", loss.item(), step=step)
            with open(f"losses.{rank}", "a") as out:
                out.write(f"{per_rank} {step} {loss.item()!r}\\n")
dist.destroy_process_group()
"""


def test_a_torchrun_ddp_job_is_one_run_with_every_rank_0_value_and_with_per_rank_both_ranks(
        repo: Path, env_for_subprocess: dict[str, str]) -> None:
    pytest.importorskip("torch", reason="the DDP job needs PyTorch (pip install -e '.[test-integrations]')")
    (repo / "ddp.py").write_text(textwrap.dedent(DDP_SCRIPT))
    env = {k: v for k, v in env_for_subprocess.items() if k not in DIST_VARIABLES}
    env["OMP_NUM_THREADS"] = "1"
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           "ddp.py"], cwd=repo, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    logged: dict[tuple[int, bool], list[tuple[int, float]]] = {}
    for rank in (0, 1):
        for line in (repo / f"losses.{rank}").read_text().splitlines():
            per_rank, step, value = line.split()
            logged.setdefault((rank, per_rank == "True"), []).append((int(step), float(value)))
    runs = {r.name: r for r in gitexp.load_runs(experiment="ddp")}
    assert sorted(runs) == ["per-rank-False", "per-rank-True"]  # one run per start_run of the job, not per rank
    plain, both = runs["per-rank-False"], runs["per-rank-True"]
    assert plain.status == both.status == "FINISHED" and plain.params == {"lr": 0.05}
    assert [k for k in plain.metrics if not k.startswith("system/")] == ["loss"]

    def series(record: gitexp.RunRecord, key: str) -> list[tuple[int, float]]:
        history = record.history(key)
        return list(zip(history.steps, history.values, strict=True))

    assert series(plain, "loss") == logged[(0, False)]
    assert series(both, "loss") == logged[(0, True)]
    assert series(both, "rank1/loss") == logged[(1, True)]
    assert logged[(1, True)] != logged[(0, True)]
    assert not list((repo / ".git" / "gitexp" / "ranks").glob("*/*"))  # the rendezvous files are gone
