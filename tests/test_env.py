from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator
from importlib import metadata

import pytest
import yaml

from gitexp.errors import InvalidNameError
from gitexp.tracking import env, gpu


@pytest.fixture(autouse=True)
def fresh_capture() -> Iterator[None]:
    env._reset()
    gpu._reset()
    yield
    env._reset()
    gpu._reset()


def test_real_capture() -> None:
    captured = env.capture_env()
    major, minor, micro = sys.version_info[:3]
    assert captured["python"]["version"] == f"{major}.{minor}.{micro}"
    assert captured["python"]["executable"] == sys.executable
    assert captured["packages"]["pytest"] == metadata.version("pytest")
    assert captured["packages"]["pyyaml"] == metadata.version("PyYAML")
    assert captured["gpu"] == {"count": len(gpu.gpu_info()), "devices": gpu.gpu_info()}
    assert captured["cpu"]["cores_logical"] >= 1
    assert captured["memory_total_mb"] > 0
    assert captured["os"]["kernel"] == captured["os"]["release"]
    assert isinstance(captured["host"], str)
    assert list(captured) == sorted(captured)


def test_no_gpu_on_this_machine() -> None:
    pynvml = pytest.importorskip("pynvml")
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        assert env.capture_env()["gpu"] == {"count": 0, "devices": []}
    else:
        pytest.skip("this machine has an NVIDIA driver")


def test_package_names_are_normalised_and_sorted() -> None:
    packages = env.capture_env()["packages"]
    assert list(packages) == sorted(packages)
    assert all(re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", name) for name in packages)


def test_selected_variables_recorded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "4")
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")
    monkeypatch.setenv("GITEXP_TEST_SETTING", "on")
    monkeypatch.delenv("NCCL_DEBUG", raising=False)
    variables = env.capture_env(["GITEXP_TEST_SETTING", "GITEXP_TEST_UNSET"])["variables"]
    assert variables["OMP_NUM_THREADS"] == "4"
    assert variables["TOKENIZERS_PARALLELISM"] == "false"
    assert variables["GITEXP_TEST_SETTING"] == "on"
    assert "NCCL_DEBUG" not in variables
    assert "GITEXP_TEST_UNSET" not in variables
    assert "GITEXP_TEST_SETTING" not in env.capture_env()["variables"]


def test_secret_variables_never_recorded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_API_TOKEN", "tok-0123456789")
    monkeypatch.setenv("DB_PASSWORD", "pw-0123456789")
    captured = env.capture_env(["MY_API_TOKEN", "DB_PASSWORD", "LANG"])
    assert "MY_API_TOKEN" not in captured["variables"]
    assert "DB_PASSWORD" not in captured["variables"]
    data = env.env_yaml(captured)
    assert b"tok-0123456789" not in data
    assert b"pw-0123456789" not in data


def test_conda_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONDA_DEFAULT_ENV", "research")
    assert env.capture_env()["conda_env"] == "research"
    monkeypatch.delenv("CONDA_DEFAULT_ENV")
    assert env.capture_env()["conda_env"] is None


def test_identical_environments_give_identical_bytes() -> None:
    first = env.env_yaml(env.capture_env())
    env._reset()
    gpu._reset()
    assert env.env_yaml(env.capture_env()) == first


def test_prefetch_then_capture_matches_direct_capture() -> None:
    direct = env.capture_env()
    env._reset()
    env.prefetch()
    env.prefetch()
    assert env.capture_env() == direct


def test_result_is_a_copy() -> None:
    captured = env.capture_env()
    captured["packages"].clear()
    assert env.capture_env()["packages"]


def test_round_trips_through_yaml() -> None:
    captured = env.capture_env(["LANG"])
    assert yaml.safe_load(env.env_yaml(captured)) == captured


def test_capture_without_pynvml(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)
    captured = env.capture_env()
    assert captured["gpu"] == {"count": 0, "devices": []}
    assert captured["packages"]


@pytest.mark.parametrize(
    ("raw", "names"),
    [
        (None, []),
        ("", []),
        ("WANDB_MODE", ["WANDB_MODE"]),
        (" A, B,,C , A ", ["A", "B", "C"]),
        ("A B", ["A", "B"]),
    ],
)
def test_parse_variable_list(raw: str | None, names: list[str]) -> None:
    assert env.parse_variable_list(raw) == names


def test_parse_variable_list_rejects_bad_names() -> None:
    with pytest.raises(InvalidNameError, match=r"exp\.envVariables"):
        env.parse_variable_list("GOOD,BAD-NAME")


def test_ready_reports_whether_capture_would_block() -> None:
    assert not env.ready()
    env.capture_env()
    assert env.ready()


def test_a_process_forked_during_the_capture_gets_it_finished(repo, env_for_subprocess, tmp_path) -> None:
    # The capture's thread imports modules; a module lock it held at fork time would stay held in
    # the child forever, and the child's first import of that module would hang (a forked
    # DataLoader or multiprocessing worker starting a run did). So fork waits for the capture.
    import subprocess
    import textwrap

    # 400 more installed packages to list make sure the capture is still running at the fork.
    site = tmp_path / "site"
    for k in range(400):
        info = site / f"pkg{k}-1.0.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: pkg{k}\nVersion: 1.0\n")
    env_for_subprocess = {**env_for_subprocess, "PYTHONPATH": os.pathsep.join(
        [str(site), *filter(None, [env_for_subprocess.get("PYTHONPATH")])])}

    script = textwrap.dedent("""
        import os, gitexp
        from gitexp.tracking import env
        run = gitexp.start_run(system_metrics_interval=0)  # starts the capture in a thread
        pending = not env.ready()
        pid = os.fork()
        if pid == 0:
            os._exit(0 if env.ready() else 3)
        _, status = os.waitpid(pid, 0)
        run.end()
        print(pending, os.waitstatus_to_exitcode(status))
    """)
    proc = subprocess.run([sys.executable, "-c", script], cwd=repo, env=env_for_subprocess, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    pending, child = proc.stdout.split()
    assert child == "0", "the child was forked while the capture was still running"
    assert pending == "True", "the capture finished before the fork: this test checked nothing; make it slower"
