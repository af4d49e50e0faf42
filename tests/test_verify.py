"""Signed runs (an ssh key made here) and `git exp verify` catching rewritten, altered or broken runs."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

import gitexp
from gitexp.cli.main import main
from tests.conftest import git

QUIET = {"system_metrics_interval": 0, "capture_env": False}
EMAIL = "committer@example.com"  # GIT_COMMITTER_EMAIL of the test environment

needs_ssh_keygen = pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="ssh-keygen is not installed")


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def ssh_key(folder: Path, name: str) -> Path:
    key = folder / name
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(key)], check=True)
    return key


def sign_with_ssh(repo: Path, tmp_path: Path) -> Path:
    key = ssh_key(tmp_path, "signing-key")
    signers = tmp_path / "allowed_signers"
    signers.write_text(f"{EMAIL} {(tmp_path / 'signing-key.pub').read_text()}")
    for key_name, value in (("gpg.format", "ssh"), ("user.signingKey", f"{key}.pub"),
                            ("gpg.ssh.allowedSignersFile", str(signers)), ("exp.sign", "true")):
        git(repo, "config", key_name, value)
    return key


def finished(name: str, **metrics: float) -> gitexp.RunRecord:
    with gitexp.start_run(name=name, **QUIET) as run:
        run.log_metrics(metrics)
    return gitexp.get_run(run.id)


def rewrite(repo: Path, record: gitexp.RunRecord, old: str, new: str, parent: str) -> str:
    """A copy of the run's tip with metrics.yaml edited, on *parent*; moved to with plain git."""
    tip = record.commit
    text = git(repo, "cat-file", "-p", f"{tip}:metrics.yaml").replace(old, new)
    blob = subprocess.run(["git", "hash-object", "-w", "--stdin"], cwd=repo, input=text, capture_output=True,
                          text=True, check=True).stdout.strip()
    listing = "".join(line.replace(line.split()[2], blob) + "\n" if line.endswith("\tmetrics.yaml") else line + "\n"
                      for line in git(repo, "ls-tree", tip).splitlines())
    tree = subprocess.run(["git", "mktree"], cwd=repo, input=listing, capture_output=True, text=True,
                          check=True).stdout.strip()
    message = git(repo, "log", "-1", "--format=%B", tip)
    forged = subprocess.run(["git", "commit-tree", tree, "-p", parent], cwd=repo, input=message,
                            capture_output=True, text=True, check=True).stdout.strip()
    git(repo, "update-ref", record.ref, forged, tip)
    return forged


@needs_ssh_keygen
def test_runs_are_signed_with_the_users_ssh_key(repo: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    sign_with_ssh(repo, tmp_path)
    record = finished("signed", acc=0.9)
    commits = git(repo, "rev-list", record.ref, f"^{record.base_commit}").split()
    assert len(commits) == 2
    for commit in commits:  # git itself checks every commit of the run
        proc = subprocess.run(["git", "verify-commit", commit], cwd=repo, capture_output=True, text=True)
        assert proc.returncode == 0 and f'Good "git" signature for {EMAIL}' in proc.stderr
    assert "gpgsig -----BEGIN SSH SIGNATURE-----" in git(repo, "cat-file", "-p", record.commit)
    code, _, err = cli(capsys, "verify")
    assert code == 0 and "verified 1 run(s): no problems" in err


@needs_ssh_keygen
def test_a_tampered_signed_run_is_reported(repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sign_with_ssh(repo, tmp_path)
    record = finished("honest", acc=0.9)
    other = finished("untouched", acc=0.1)
    forged = rewrite(repo, record, "last: 0.9", "last: 0.99", parent=f"{record.commit}~1")
    code, out, err = cli(capsys, "verify")
    assert code == 1 and "verified 2 run(s): 4 problem(s) in 1 run(s)" in err
    problems = [line for line in out.splitlines() if line.startswith(f"{record.id} default/honest: ")]
    assert len(problems) == 4 and other.id not in out
    rewritten = next(p for p in problems if "rewritten" in p)
    assert f"from {record.commit[:12]} to {forged[:12]}" in rewritten and "metric acc last 0.9 -> 0.99" in rewritten
    assert any("is not signed, though the run's first commit" in p for p in problems)
    assert any("metrics.yaml says acc last=0.99" in p and "history has last=0.9" in p for p in problems)
    assert any("summary.json does not match" in p for p in problems)
    assert cli(capsys, "verify", "untouched")[0] == 0


@needs_ssh_keygen
def test_a_signature_from_an_unknown_key_fails(repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sign_with_ssh(repo, tmp_path)
    record = finished("signed")
    stranger = ssh_key(tmp_path, "stranger")
    (tmp_path / "allowed_signers").write_text(f"{EMAIL} {Path(f'{stranger}.pub').read_text()}")
    code, out, _ = cli(capsys, "verify", record.id)
    assert code == 1 and f"the signature of commit {record.commit[:12]} does not verify" in out


@pytest.mark.skipif(shutil.which("gpg") is None, reason="gpg is not installed")
def test_runs_are_signed_with_openpgp_by_default(repo: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    home = Path(tempfile.mkdtemp(prefix="gpg-", dir="/tmp"))  # short: gpg-agent's socket path is limited
    monkeypatch.setenv("GNUPGHOME", str(home))
    try:
        subprocess.run(["gpg", "--batch", "--passphrase", "", "--quick-gen-key", f"Test Committer <{EMAIL}>",
                        "ed25519", "sign", "never"], check=True, capture_output=True)
        git(repo, "config", "exp.sign", "true")  # gpg.format unset: openpgp, the committer's key
        record = finished("gpg-signed", acc=0.5)
        proc = subprocess.run(["git", "verify-commit", record.commit], cwd=repo, capture_output=True, text=True)
        assert proc.returncode == 0 and "Good signature" in proc.stderr
        assert cli(capsys, "verify")[0] == 0
    finally:
        subprocess.run(["gpgconf", "--kill", "gpg-agent"], capture_output=True, check=False)
        shutil.rmtree(home, ignore_errors=True)


def test_signing_failure_is_a_clear_error_and_loses_nothing(repo: Path, tmp_path: Path) -> None:
    git(repo, "config", "exp.sign", "true")
    git(repo, "config", "gpg.format", "ssh")
    git(repo, "config", "user.signingKey", str(tmp_path / "no-such-key.pub"))
    with pytest.raises(gitexp.GitexpError, match=r"cannot sign the run commit.*exp.sign false"):
        gitexp.start_run(name="unsigned", **QUIET)
    assert git(repo, "for-each-ref", "refs/experiments/") == ""


def test_verify_accepts_what_gitexp_itself_does(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    removed = finished("removed-and-back", acc=0.5)
    assert cli(capsys, "rm", removed.id)[0] == 0
    assert cli(capsys, "rm", "--undo")[0] == 0
    resumed = finished("resumed", loss=1.0)
    with gitexp.start_run(resume=resumed.id, **QUIET) as run:
        run.log_metric("loss", 0.5)
    with gitexp.start_run(fork=resumed.id, name="forked", **QUIET):
        pass
    with gitexp.start_run(name="live", **QUIET):
        assert cli(capsys, "verify")[0] == 0
    code, _, err = cli(capsys, "verify")
    assert code == 0 and "verified 4 run(s): no problems" in err


EDGE_VALUES = {"nan": float("nan"), "inf": float("inf"), "ninf": float("-inf"), "negzero": -0.0, "huge": 1e308,
               "tiny": 5e-324, "big_int": 2**62, "ünïcode/ключ": 1.5}


def test_verify_accepts_every_value_gitexp_stores(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with gitexp.start_run(name="edges", params={**EDGE_VALUES, "nested": {"nan": float("nan")}}, **QUIET) as run:
        for step in range(3):  # a history, not only one value: min, max and last then differ in kind
            run.log_metrics({key: float(value) for key, value in EDGE_VALUES.items()}, step=step)
        run.log_metric("nan", 1.0, step=3)  # NaN then a number: the summary's min/max skip the NaN
    code, out, err = cli(capsys, "verify")
    assert code == 0 and "verified 1 run(s): no problems" in err, out + err


def test_verify_reports_changes_after_the_end_and_broken_trees(repo: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    appended = finished("appended", acc=0.5)
    rewrite(repo, appended, "last: 0.5", "last: 0.8", parent=appended.commit)  # a fast-forward, but after the end
    broken = finished("broken", acc=0.5)
    blob = subprocess.run(["git", "hash-object", "-w", "--stdin"], cwd=repo, input="acc: [unclosed\n",
                          capture_output=True, text=True, check=True).stdout.strip()
    listing = git(repo, "ls-tree", broken.commit).replace(
        next(line.split()[2] for line in git(repo, "ls-tree", broken.commit).splitlines()
             if line.endswith("\tmetrics.yaml")), blob)
    tree = subprocess.run(["git", "mktree"], cwd=repo, input=listing, capture_output=True, text=True,
                          check=True).stdout.strip()
    bad = git(repo, "commit-tree", tree, "-p", broken.commit, "-m", "broken").strip()
    ref_file = repo / ".git" / broken.ref
    ref_file.write_text(bad + "\n")  # moved behind git's back: no reflog entry either
    code, out, _ = cli(capsys, "verify")
    assert code == 1
    assert f"{appended.id} default/appended: commit" in out and "changed the run after it had finished" in out
    assert "metric acc last 0.5 -> 0.8" in out
    assert f"{broken.id} default/broken: metrics.yaml of commit {bad[:12]} is not valid YAML" in out
    assert "moved without a log entry" in out
