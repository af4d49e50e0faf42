"""Every test runs against real git in a temporary HOME, isolated from the user's config."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

GIT_ENV = {
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_AUTHOR_NAME": "Test Author",
    "GIT_AUTHOR_EMAIL": "author@example.com",
    "GIT_COMMITTER_NAME": "Test Committer",
    "GIT_COMMITTER_EMAIL": "committer@example.com",
    "GIT_TERMINAL_PROMPT": "0",
}


def pytest_configure(config: pytest.Config) -> None:
    # A shell starts a background job (`pytest &`, nohup) with SIGINT ignored, and the processes
    # the tests start would inherit that: Ctrl-C sent to them did nothing, and the tests of what
    # gitexp does on Ctrl-C waited until their timeouts. The tests' processes get Python's own.
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(autouse=True)
def isolated_git(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    for key, value in GIT_ENV.items():
        monkeypatch.setenv(key, value)
    for key in ("GITEXP_EXPERIMENT", "GITEXP_RUN_ID", "GITEXP_REPO", "GITEXP_PARAMS", "GITEXP_RUN_NAME", "GIT_DIR",
                "GIT_WORK_TREE"):
        monkeypatch.delenv(key, raising=False)
    from gitexp.git import repo as repo_mod

    repo_mod.set_config_search_path(str(home))
    yield home
    import gitexp

    gitexp.flush()  # queued notes belong to this test's repository, not to the next test's
    from gitexp.store import cachefile

    cachefile.wait()  # the caches written behind, too: into this test's folders, not after they are gone


def git(cwd: Path, *args: str, check: bool = True, input_text: str | None = None) -> str:
    """Run the real git command line in *cwd* and return its stdout."""
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False, input=input_text)
    if check and proc.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {proc.stderr}")
    return proc.stdout


@pytest.fixture
def empty_repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "repo"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    monkeypatch.chdir(path)
    return path


@pytest.fixture
def repo(empty_repo: Path) -> Path:
    """A repository with one commit holding a small training script."""
    (empty_repo / "train.py").write_text("print('training')\n")
    (empty_repo / ".gitignore").write_text("*.ckpt\n")
    git(empty_repo, "add", ".")
    git(empty_repo, "commit", "-q", "-m", "initial")
    return empty_repo


@pytest.fixture
def env_for_subprocess(isolated_git: Path) -> dict[str, str]:
    """The environment a child `git exp` or python process needs to stay isolated, importing the
    gitexp under test (this checkout), not whichever one is installed."""
    import gitexp

    env = dict(os.environ)
    env.update(GIT_ENV)
    env["HOME"] = str(isolated_git)
    source = str(Path(gitexp.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [source, env.get("PYTHONPATH")]))
    return env


@pytest.fixture
def gitexp_env(env_for_subprocess: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """env_for_subprocess for processes git starts (hooks running `git exp`): a `git-exp` first on PATH
    that runs this Python with the gitexp under test, whatever is installed (or being reinstalled)."""
    import shlex
    import sys


    env = dict(env_for_subprocess)  # its PYTHONPATH already leads to the gitexp under test
    bin_dir = tmp_path_factory.mktemp("bin")
    shim = bin_dir / "git-exp"
    shim.write_text(f"#!/bin/sh\nexec {shlex.quote(sys.executable)} -m gitexp \"$@\"\n")
    shim.chmod(0o755)
    env["PATH"] = os.pathsep.join([str(bin_dir), os.path.dirname(sys.executable), env.get("PATH", "")])
    return env
