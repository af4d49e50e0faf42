"""Secrets never reach a run's commit: not in an error's message or traceback (meta.yaml,
summary.json), not in a recorded environment variable, the remote URL, the command line or the
output, and an untracked .env (or key file) is not put in the code snapshot."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import gitexp
from gitexp.tracking.redact import MASK, is_secret_file, mask_text
from tests.conftest import git

QUIET = {"system_metrics_interval": 0, "capture_env": False}
PASSWORD = "Pa55w0rdXYZ"
URL = f"postgres://user:{PASSWORD}@db.example.com/prod"
HF = "hf_" + "aBcDeFgHiJkLmNoPqRsTuVwXyZ012345"
GHP = "ghp_" + "0123456789abcdefghijABCDEFGHIJ012345"

pytestmark = pytest.mark.faults


def everything(record: gitexp.RunRecord) -> bytes:
    """Every blob of the run's commit but code/ (the user's own files), concatenated."""
    out = []
    for path in git(Path.cwd(), "ls-tree", "-r", "--name-only", record.commit).split():
        if not path.startswith("code/"):
            out.append(git(Path.cwd(), "cat-file", "-p", f"{record.commit}:{path}").encode())
    return b"\n".join(out)


@pytest.mark.parametrize("secret", [URL, HF, GHP])
def test_an_exception_message_and_traceback_are_masked(repo: Path, secret: str) -> None:
    with pytest.raises(RuntimeError), gitexp.start_run(name="boom", **QUIET):
        raise RuntimeError(f"cannot connect with {secret}")
    record = gitexp.get_run("boom")
    error = record.meta["error"]
    assert record.status == "FAILED" and error["type"] == "RuntimeError"
    assert secret not in error["message"] and MASK in error["message"]
    assert secret not in error["traceback"] and "RuntimeError: cannot connect with" in error["traceback"]
    assert secret.encode() not in everything(record)  # meta.yaml and summary.json alike
    if secret == URL:
        assert error["message"] == f"cannot connect with postgres://user:{MASK}@db.example.com/prod"


def test_git_exp_run_masks_the_childs_error_and_output(repo: Path, env_for_subprocess: dict[str, str]) -> None:
    script = (f"import gitexp\nprint('using {URL}', flush=True)\nwith gitexp.start_run():\n"
              f"    raise ValueError('token {HF} was refused')\n")
    proc = subprocess.run([sys.executable, "-m", "gitexp", "run", "--name", "child", "--", sys.executable, "-c",
                           script], cwd=repo, env=env_for_subprocess, capture_output=True, timeout=120)
    assert proc.returncode == 1
    record = gitexp.get_run("child")
    assert record.status == "FAILED" and record.meta["error"]["type"] == "ValueError"
    blob = everything(record)
    assert PASSWORD.encode() not in blob and HF.encode() not in blob
    assert f"postgres://user:{MASK}@db.example.com/prod".encode() in (record.read("output.log") or b"")


def test_a_recorded_variable_keeps_no_url_password(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    git(repo, "config", "exp.envVariables", "DATABASE_URL,HUB_ID")
    monkeypatch.setenv("DATABASE_URL", URL)
    monkeypatch.setenv("HUB_ID", HF)
    with gitexp.start_run(name="env", system_metrics_interval=0, capture_env=True):
        pass
    record = gitexp.get_run("env")
    assert record.env["variables"]["DATABASE_URL"] == f"postgres://user:{MASK}@db.example.com/prod"
    assert record.env["variables"]["HUB_ID"] == MASK
    assert PASSWORD.encode() not in everything(record) and HF.encode() not in everything(record)


def test_the_remote_url_and_the_command_line_keep_no_credentials(repo: Path) -> None:
    git(repo, "remote", "add", "origin", f"https://bob:{PASSWORD}@example.com/r.git?access_token={GHP}")
    with gitexp.start_run(name="cmd", command=["train.py", "--db", URL, "--hub", HF], **QUIET):
        pass
    record = gitexp.get_run("cmd")
    assert record.meta["git"]["remote"] == f"https://example.com/r.git?access_token={MASK}"
    assert record.meta["command"] == ["train.py", "--db", f"postgres://user:{MASK}@db.example.com/prod",
                                      "--hub", MASK]
    assert PASSWORD.encode() not in everything(record) and GHP.encode() not in everything(record)


@pytest.mark.parametrize(("text", "expected"), [
    (f"login {HF} ok", f"login {MASK} ok"),
    (f"{GHP}", MASK),
    ("github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz", MASK),
    ("key sk-proj-abcdefghijklmnopqrstuvwxyz12345678.", f"key {MASK}."),
    ("aws AKIAIOSFODNN7EXAMPLE here", f"aws {MASK} here"),
    ("slack xoxb-123456789012-1234567890123-abcdefghijkl", f"slack {MASK}"),
    ("gitlab glpat-abcdefghij1234567890", f"gitlab {MASK}"),
    (f"redis://:{PASSWORD}@cache:6379/0", f"redis://:{MASK}@cache:6379/0"),
    # Look-alikes that are not tokens are left alone.
    ("pip install scikit-learn sk-learn; task-abcdefghijklmnopqrstuvwxyz", None),
    ("AKIA is a prefix; hf_short and ghp_x are not tokens", None),
])
def test_mask_text_masks_well_known_token_shapes(text: str, expected: str | None) -> None:
    assert mask_text(text, environ={}) == (text if expected is None else expected)
    assert mask_text(mask_text(text, environ={}), environ={}) == mask_text(text, environ={})


@pytest.mark.parametrize(("path", "secret"), [
    (".env", True), ("config/.env.production", True), (".env.example", False), (".env.sample", False),
    ("certs/server.pem", True), ("tls.key", True), ("id_rsa", True), ("id_rsa.pub", False), (".netrc", True),
    ("credentials.json", True), ("client_secret_123.apps.json", True), (".aws/credentials", True),
    ("train.py", False), ("environment.yml", False), ("keys.py", False),
])
def test_is_secret_file(path: str, secret: bool) -> None:
    assert is_secret_file(path) is secret


def test_untracked_secret_files_stay_out_of_the_snapshot(repo: Path) -> None:
    (repo / "tracked.pem").write_text("a public test certificate, committed on purpose\n")
    git(repo, "add", "tracked.pem")
    git(repo, "commit", "-q", "-m", "test cert")
    (repo / ".env").write_text(f"DATABASE_URL={URL}\n")
    (repo / "keys").mkdir()
    (repo / "keys" / "id_ed25519").write_text("-----BEGIN OPENSSH PRIVATE KEY-----\n")
    (repo / ".env.example").write_text("DATABASE_URL=\n")
    (repo / "notes.txt").write_text("untracked, kept\n")
    two = r"2 untracked file\(s\) that look like secrets .*\.env, keys/id_ed25519"
    with pytest.warns(RuntimeWarning, match=two), gitexp.start_run(name="dotenv", **QUIET):
        pass
    record = gitexp.get_run("dotenv")
    code = set(git(repo, "ls-tree", "-r", "--name-only", f"{record.commit}:code").split())
    assert code == {".gitignore", "train.py", "tracked.pem", ".env.example", "notes.txt"}
    assert record.meta["code"]["skipped"] == [".env", "keys/id_ed25519"]
    assert record.meta["git"]["dirty"] is True
    assert PASSWORD.encode() not in everything(record)  # code.patch included
    # Only the secret file untracked: the snapshot is the commit's own tree, and the run clean.
    (repo / "notes.txt").unlink()
    (repo / ".env.example").unlink()
    with pytest.warns(RuntimeWarning, match="look like secrets"), gitexp.start_run(name="clean", **QUIET):
        pass
    clean = gitexp.get_run("clean")
    assert clean.meta["git"]["dirty"] is False
    assert clean.meta["code"]["tree"] == git(repo, "rev-parse", "HEAD^{tree}").strip()
    # A staged one is git's already: it stays.
    git(repo, "add", ".env")
    one = r"1 untracked file\(s\) .*: keys/id_ed25519;"
    with pytest.warns(RuntimeWarning, match=one), gitexp.start_run(name="staged", **QUIET):
        pass
    assert ".env" in git(repo, "ls-tree", "--name-only", f"{gitexp.get_run('staged').commit}:code").split()
