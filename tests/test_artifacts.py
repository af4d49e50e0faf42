"""Artifacts and inputs: logged, stored (blobs and Git LFS), listed, restored; checked with git and git-lfs."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

import gitexp
from gitexp.cli.main import main
from gitexp.errors import ArtifactError, CorruptArtifactError
from gitexp.git import lfs
from tests.conftest import git

ROOT = Path(__file__).resolve().parent.parent
QUIET = {"system_metrics_interval": 0, "capture_env": False}
THRESHOLD = 1024


@pytest.fixture
def lfs_repo(repo: Path) -> Path:
    git(repo, "config", "exp.lfsThreshold", str(THRESHOLD))
    return repo


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def lfs_objects(repo: Path) -> dict[str, bytes]:
    root = repo / ".git" / "lfs" / "objects"
    return {p.name: p.read_bytes() for p in root.rglob("*") if p.is_file()} if root.exists() else {}


def pointer(data: bytes) -> bytes:
    return (f"version https://git-lfs.github.com/spec/v1\noid sha256:{hashlib.sha256(data).hexdigest()}\n"
            f"size {len(data)}\n").encode()


def test_small_files_are_blobs_and_large_ones_lfs_pointers(lfs_repo: Path) -> None:
    small, big = b"accuracy 0.9\n", os.urandom(5000)
    write(lfs_repo / "out" / "small.txt", small)
    write(lfs_repo / "out" / "model.bin", big)
    with gitexp.start_run(name="a", **QUIET) as run:
        assert run.log_artifact(lfs_repo / "out" / "small.txt") == ["small.txt"]
        assert run.log_artifact(str(lfs_repo / "out" / "model.bin"), "models/model.bin") == ["models/model.bin"]
    ref = run.ref
    assert git(lfs_repo, "cat-file", "blob", f"{ref}:artifacts/small.txt").encode() == small
    assert git(lfs_repo, "cat-file", "blob", f"{ref}:artifacts/models/model.bin").encode() == pointer(big)
    assert lfs_objects(lfs_repo) == {hashlib.sha256(big).hexdigest(): big}
    oid = hashlib.sha256(big).hexdigest()
    assert (lfs_repo / ".git" / "lfs" / "objects" / oid[:2] / oid[2:4] / oid).is_file()
    # The standard tools see them: git-lfs lists the pointer, git's attributes route it through LFS.
    assert git(lfs_repo, "lfs", "ls-files", "--long", ref).split() == [oid, "-", "artifacts/models/model.bin"]
    assert git(lfs_repo, "show", f"{ref}:.gitattributes") == "/artifacts/** filter=lfs diff=lfs merge=lfs -text\n"

    [a, b] = gitexp.get_run("a").artifacts
    assert (a.path, a.size, a.sha256, a.lfs, a.present) == ("models/model.bin", 5000, oid, True, True)
    assert (b.path, b.size, b.sha256, b.lfs) == ("small.txt", len(small), hashlib.sha256(small).hexdigest(), False)


def test_identical_content_is_stored_once(lfs_repo: Path) -> None:
    data = os.urandom(20_000)
    write(lfs_repo / "a.bin", data)
    write(lfs_repo / "copy.bin", data)
    with gitexp.start_run(name="one", **QUIET) as run:
        run.log_artifact(lfs_repo / "a.bin")
        run.log_artifact(lfs_repo / "a.bin", "again.bin")
        run.log_artifact(lfs_repo / "copy.bin")
    with gitexp.start_run(name="two", **QUIET) as run:
        run.log_artifact(lfs_repo / "a.bin")
    assert list(lfs_objects(lfs_repo)) == [hashlib.sha256(data).hexdigest()]
    assert not list((lfs_repo / ".git" / "lfs" / "tmp").iterdir())


def test_a_pointer_looking_small_file_goes_to_lfs(lfs_repo: Path) -> None:
    # Otherwise its blob would read back as a pointer: the rule "small pointer-like blob = pointer" holds.
    fake = pointer(b"something else")
    write(lfs_repo / "fake.txt", fake)
    with gitexp.start_run(name="p", **QUIET) as run:
        run.log_artifact(lfs_repo / "fake.txt")
    [artifact] = gitexp.get_run("p").artifacts
    assert artifact.lfs and artifact.sha256 == hashlib.sha256(fake).hexdigest() and artifact.size == len(fake)


def test_log_artifacts_keeps_the_folder_structure(lfs_repo: Path) -> None:
    write(lfs_repo / "ckpt" / "config.json", b"{}")
    write(lfs_repo / "ckpt" / "weights" / "w.bin", os.urandom(3000))
    (lfs_repo / "ckpt" / "weights" / "run.sh").write_text("#!/bin/sh\n")
    (lfs_repo / "ckpt" / "weights" / "run.sh").chmod(0o755)
    os.symlink("config.json", lfs_repo / "ckpt" / "alias.json")  # inside the folder: followed
    with gitexp.start_run(name="d", **QUIET) as run:
        logged = run.log_artifacts(lfs_repo / "ckpt", prefix="checkpoint")
    assert sorted(logged) == ["checkpoint/alias.json", "checkpoint/config.json", "checkpoint/weights/run.sh",
                              "checkpoint/weights/w.bin"]
    tree = git(lfs_repo, "ls-tree", "-r", f"{run.ref}:artifacts")
    assert "100755 blob" in next(line for line in tree.splitlines() if line.endswith("run.sh"))


def test_a_symlink_out_of_the_folder_is_refused(lfs_repo: Path, tmp_path: Path) -> None:
    write(tmp_path / "secret", b"token")
    write(lfs_repo / "ckpt" / "ok.txt", b"ok")
    os.symlink(tmp_path / "secret", lfs_repo / "ckpt" / "leak")
    with gitexp.start_run(name="s", **QUIET) as run, \
            pytest.raises(ArtifactError, match=r"ckpt/leak is a symlink to .*secret, outside"):
        run.log_artifacts(lfs_repo / "ckpt")
    assert gitexp.get_run("s").artifacts == []


@pytest.mark.parametrize("name", ["../../x", "/etc/passwd", "a/../../b", "a//b", "./a", ".git/config", "a\\b",
                                  "line\nbreak", ""])
def test_bad_artifact_names_are_refused(lfs_repo: Path, name: str) -> None:
    write(lfs_repo / "f.txt", b"x")
    with gitexp.start_run(name="n", **QUIET) as run:
        with pytest.raises(ArtifactError, match="invalid artifact name") as info:
            run.log_artifact(lfs_repo / "f.txt", name)
        assert repr(name) in str(info.value)
        with pytest.raises(ArtifactError):
            run.log_text("x", name)
    assert gitexp.get_run("n").artifacts == []


def test_wrong_usage_raises_at_once(lfs_repo: Path) -> None:
    write(lfs_repo / "f.txt", b"x")
    with gitexp.start_run(name="u", **QUIET) as run:
        with pytest.raises(ArtifactError, match=r"'missing\.bin'"):
            run.log_artifact("missing.bin")
        run.log_artifact(lfs_repo / "f.txt", "model")
        with pytest.raises(ArtifactError, match="'model' to be a folder"):
            run.log_text("x", "model/readme.txt")
        with pytest.raises(ArtifactError, match=r"\.yaml, \.yml or \.json"):
            run.log_dict({}, "config.toml")
    with pytest.raises(gitexp.GitexpError, match="has ended"):
        run.log_text("late", "late.txt")


def test_an_io_error_warns_and_the_run_goes_on(lfs_repo: Path) -> None:
    write(lfs_repo / "big.bin", os.urandom(5000))
    (lfs_repo / ".git" / "lfs").write_text("not a folder")  # the store cannot be created
    with gitexp.start_run(name="io", **QUIET) as run:
        with pytest.warns(RuntimeWarning, match="could not store artifact 'big.bin'"):
            assert run.log_artifact(lfs_repo / "big.bin") == []
        run.log_metric("loss", 0.5)
        run.log_text("fine", "small.txt")
    record = gitexp.get_run("io")
    assert record.status == "FINISHED" and [a.path for a in record.artifacts] == ["small.txt"]


def test_text_dict_figure_and_model(lfs_repo: Path, tmp_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots()
    axes.plot([1, 2, 3])
    with gitexp.start_run(name="kinds", **QUIET) as run:
        run.log_text("héllo\n", "notes.txt")
        run.log_dict({"lr": 0.1, "layers": [1, 2]}, "config.yaml")
        run.log_dict({"lr": 0.1}, "config.json")
        for suffix in ("png", "svg", "pdf"):
            assert run.log_figure(figure, f"plots/loss.{suffix}") == f"plots/loss.{suffix}"
        assert run.log_model({"weights": list(range(1000))}, "model") == ["model/model.pkl", "model/model.yaml"]
    plt.close(figure)
    out = gitexp.download_artifacts("kinds", dst=tmp_path / "out")
    assert (out / "notes.txt").read_text(encoding="utf-8") == "héllo\n"
    assert yaml.safe_load((out / "config.yaml").read_text()) == {"layers": [1, 2], "lr": 0.1}
    assert json.loads((out / "config.json").read_text()) == {"lr": 0.1}
    assert (out / "plots" / "loss.png").read_bytes().startswith(b"\x89PNG")
    assert b"<svg" in (out / "plots" / "loss.svg").read_bytes()
    assert (out / "plots" / "loss.pdf").read_bytes().startswith(b"%PDF")
    assert pickle.loads((out / "model" / "model.pkl").read_bytes()) == {"weights": list(range(1000))}
    info = yaml.safe_load((out / "model" / "model.yaml").read_text())
    assert info["format"] == "pickle" and info["class"] == "builtins.dict"
    assert [a.lfs for a in gitexp.get_run("kinds").artifacts if a.path == "model/model.pkl"] == [True]


def test_module_level_functions_use_the_active_run(lfs_repo: Path) -> None:
    write(lfs_repo / "f.txt", b"x")
    run = gitexp.start_run(name="active", **QUIET)
    gitexp.log_artifact(lfs_repo / "f.txt")
    gitexp.log_text("t", "t.txt")
    gitexp.log_dict({"a": 1}, "d.json")
    gitexp.log_input(lfs_repo / "f.txt", name="data")
    gitexp.end_run()
    assert [a.path for a in gitexp.get_run(run.id).artifacts] == ["d.json", "f.txt", "t.txt"]


def test_artifacts_appear_in_the_next_checkpoint(lfs_repo: Path) -> None:
    write(lfs_repo / "big.bin", os.urandom(5000))
    run = gitexp.start_run(name="live", system_metrics_interval=0, capture_env=False)
    try:
        run.log_artifact(lfs_repo / "big.bin")
        # What the background thread does every exp.checkpointInterval, made now rather than
        # waited for (with the thread's own timing, a checkpoint it took just before the
        # artifact was logged would make this one wait).
        run.checkpoint()
        assert git(lfs_repo, "ls-tree", "--name-only", f"{run.ref}:artifacts") == "big.bin\n"
        assert gitexp.get_run("live").status == "RUNNING"
    finally:
        run.end()


def test_a_crashed_run_keeps_its_artifacts_and_inputs(lfs_repo: Path, env_for_subprocess: dict[str, str]) -> None:
    data = os.urandom(5000)
    write(lfs_repo / "big.bin", data)
    write(lfs_repo / "data" / "train.csv", b"x,y\n1,2\n")
    (lfs_repo / "crash.py").write_text(textwrap.dedent("""
        import os, signal, gitexp
        run = gitexp.start_run(name="doomed", checkpoint_interval=3600, system_metrics_interval=0)
        run.log_artifact("big.bin")
        run.log_text("note", "notes/n.txt")
        run.log_input("data", name="train")
        os.kill(os.getpid(), signal.SIGKILL)
    """))
    env = {**env_for_subprocess, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "crash.py"], cwd=lfs_repo, env=env, capture_output=True, text=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    record = gitexp.get_run("doomed")  # recovers it from the journal
    assert record.status == "CRASHED"
    assert {a.path: a.sha256 for a in record.artifacts} == {
        "big.bin": hashlib.sha256(data).hexdigest(), "notes/n.txt": hashlib.sha256(b"note").hexdigest()}
    inputs = yaml.safe_load(git(lfs_repo, "show", f"{record.ref}:inputs.yaml"))
    assert inputs["train"]["kind"] == "directory" and inputs["train"]["files"] == 1


def test_cli_lists_and_restores_byte_identical_files(lfs_repo: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    big, small = os.urandom(50_000), b"small\n"
    write(lfs_repo / "model.bin", big)
    write(lfs_repo / "log.txt", small)
    with gitexp.start_run(name="c", **QUIET) as run:
        run.log_artifact(lfs_repo / "model.bin", "m/model.bin")
        run.log_artifact(lfs_repo / "log.txt")
    code, out, _ = cli(capsys, "artifacts", "c")
    assert code == 0
    assert out.splitlines()[1].split() == ["log.txt", "6", "B", "git", "yes", hashlib.sha256(small).hexdigest()]
    assert out.splitlines()[2].split() == ["m/model.bin", "48.8", "KiB", "lfs", "yes", hashlib.sha256(big).hexdigest()]
    code, out, _ = cli(capsys, "artifacts", "c", "--format", "json")
    assert [a["path"] for a in json.loads(out)] == ["log.txt", "m/model.bin"]

    code, out, err = cli(capsys, "get", run.id, "-o", str(tmp_path / "all"))
    assert (code, err) == (0, "") and out.startswith("restored 2 file(s)")
    assert (tmp_path / "all" / "m" / "model.bin").read_bytes() == big
    assert (tmp_path / "all" / "log.txt").read_bytes() == small
    code, out, _ = cli(capsys, "get", run.id, "m", "--output", str(tmp_path / "some"))
    assert code == 0 and sorted(p.name for p in (tmp_path / "some").rglob("*")) == ["m", "model.bin"]
    code, _, err = cli(capsys, "get", run.id, "nope.txt")
    assert code == 1 and "no artifact 'nope.txt'" in err and "m/model.bin" in err


def test_restore_never_overwrites_or_follows_symlinks(lfs_repo: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    write(lfs_repo / "x.txt", b"new")
    with gitexp.start_run(name="r", **QUIET) as run:
        run.log_artifact(lfs_repo / "x.txt", "sub/x.txt")
    target, outside = tmp_path / "target", tmp_path / "outside"
    outside.mkdir()
    target.mkdir()
    os.symlink(outside, target / "sub")
    code, _, err = cli(capsys, "get", "r", "-o", str(target))
    assert code == 1 and "symlink" in err and list(outside.iterdir()) == []

    (target / "sub").unlink()
    write(target / "sub" / "x.txt", b"mine")
    code, _, err = cli(capsys, "get", "r", "-o", str(target))
    assert code == 1 and "exists and differs" in err and (target / "sub" / "x.txt").read_bytes() == b"mine"
    assert cli(capsys, "get", "r", "-o", str(target), "--force")[0] == 0
    assert (target / "sub" / "x.txt").read_bytes() == b"new"


def test_a_tampered_lfs_object_is_detected(lfs_repo: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    data = os.urandom(5000)
    write(lfs_repo / "model.bin", data)
    with gitexp.start_run(name="t", **QUIET) as run:
        run.log_artifact(lfs_repo / "model.bin")
    oid = hashlib.sha256(data).hexdigest()
    stored = lfs_repo / ".git" / "lfs" / "objects" / oid[:2] / oid[2:4] / oid
    stored.chmod(0o644)
    # Same size, other content: the first byte flipped (an "X" put there changed nothing when the
    # random first byte was "X" already, one run in 256).
    stored.write_bytes(bytes([data[0] ^ 0xFF]) + data[1:])
    code, _, err = cli(capsys, "get", "t", "-o", str(tmp_path / "out"))
    assert code == 1 and "changed or damaged" in err and oid in err
    assert not (tmp_path / "out" / "model.bin").exists()
    assert list((tmp_path / "out").iterdir()) == []  # not even a temporary file is left


def _commit_with_artifact(repo: Path, ref: str, name: str, blob_data: bytes) -> str:
    """A new commit of the run *ref* whose artifacts/ holds one blob, made with plain git."""
    blob = subprocess.run(["git", "hash-object", "-w", "--stdin"], cwd=repo, input=blob_data,
                          capture_output=True, check=True).stdout.decode().strip()
    artifacts = subprocess.run(["git", "mktree"], cwd=repo, input=f"100644 blob {blob}\t{name}\n".encode(),
                               capture_output=True, check=True).stdout.decode().strip()
    entries = [line for line in git(repo, "ls-tree", ref).splitlines() if not line.endswith("\tartifacts")]
    listing = "".join(f"{line}\n" for line in [*entries, f"040000 tree {artifacts}\tartifacts"])
    tree = subprocess.run(["git", "mktree"], cwd=repo, input=listing.encode(), capture_output=True,
                          check=True).stdout.decode().strip()
    commit = git(repo, "commit-tree", tree, "-p", ref, "-m", "tampered").strip()
    git(repo, "update-ref", ref, commit)
    return commit


@pytest.mark.parametrize("bad", [
    b"version https://git-lfs.github.com/spec/v1\noid sha256:" + b"A" * 64 + b"\nsize 10\n",
    b"version https://git-lfs.github.com/spec/v1\noid sha256:" + b"a" * 63 + b"\nsize 10\n",
    b"version https://git-lfs.github.com/spec/v1\noid sha256:../../../../etc/passwd\nsize 10\n",
    b"version https://git-lfs.github.com/spec/v1\noid sha256:" + b"a" * 64 + b"\nsize -1\n",
    b"version https://git-lfs.github.com/spec/v1\noid sha256:" + b"a" * 64 + b"\nsize 99999999999999999999\n",
    b"version https://git-lfs.github.com/spec/v2\noid sha256:" + b"a" * 64 + b"\nsize 10\n",
])
def test_a_malformed_pointer_is_refused(lfs_repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                        bad: bytes) -> None:
    with gitexp.start_run(name="m", **QUIET) as run:
        run.log_text("x", "placeholder.txt")
    _commit_with_artifact(lfs_repo, run.ref, "model.bin", bad)
    with pytest.raises(CorruptArtifactError, match="malformed Git LFS pointer"):
        lfs.parse_pointer(bad, "artifacts/model.bin")
    code, out, _ = cli(capsys, "artifacts", "m")
    assert code == 0 and "INVALID" in out
    code, _, err = cli(capsys, "get", "m", "-o", str(tmp_path / "out"))
    assert code == 1 and "artifacts/model.bin is a malformed Git LFS pointer" in err
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


def test_pointer_format_is_exactly_spec_v1() -> None:
    good = lfs.Pointer("a" * 64, 12)
    assert good.encode() == b"version https://git-lfs.github.com/spec/v1\noid sha256:" + b"a" * 64 + b"\nsize 12\n"
    assert lfs.parse_pointer(good.encode(), "x") == good
    for bad in (good.encode()[:-1], good.encode() + b"ext-0-foo sha256:" + b"b" * 64 + b"\n",
                good.encode().replace(b"size 12", b"size 012"), b"  " + good.encode()):
        with pytest.raises(CorruptArtifactError):
            lfs.parse_pointer(bad, "x")


def test_untrusted_tree_names_cannot_escape(lfs_repo: Path, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    with gitexp.start_run(name="evil", **QUIET) as run:
        run.log_text("x", "placeholder.txt")
    _commit_with_artifact(lfs_repo, run.ref, ".git", b"gotcha")
    code, _, err = cli(capsys, "get", "evil", "-o", str(tmp_path / "out"))
    assert code == 1 and "invalid artifact path in the run '.git'" in err


def test_log_input_hashes_files_and_folders(lfs_repo: Path) -> None:
    write(lfs_repo / "data" / "train.csv", b"x,y\n1,2\n")
    write(lfs_repo / "data" / "sub" / "labels.txt", b"cat\n")
    write(lfs_repo / "data" / "b.txt", b"b\n")
    with gitexp.start_run(name="in", **QUIET) as run:
        folder = run.log_input(lfs_repo / "data", name="train", source="s3://bucket/train")
        single = run.log_input(str(lfs_repo / "data" / "train.csv"))
        copied = run.log_input(lfs_repo / "data" / "b.txt", name="b", copy=True)
    shell = subprocess.run("find -L . -type f -printf '%P\\0' | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum",
                           shell=True, cwd=lfs_repo / "data", capture_output=True, text=True, check=True)
    assert folder == {"kind": "directory", "sha256": shell.stdout.split()[0], "size": 14, "files": 3,
                      "source": "s3://bucket/train"}
    assert single == {"kind": "file", "sha256": hashlib.sha256(b"x,y\n1,2\n").hexdigest(), "size": 8,
                      "source": str((lfs_repo / "data" / "train.csv").resolve())}
    assert copied is not None and copied["artifact"] == "inputs/b"
    inputs = yaml.safe_load(git(lfs_repo, "show", f"{run.ref}:inputs.yaml"))
    assert inputs == {"train": folder, "train.csv": single, "b": copied}
    assert [a.path for a in gitexp.get_run("in").artifacts] == ["inputs/b"]


def test_log_input_of_a_hugging_face_dataset(lfs_repo: Path) -> None:
    if os.environ.get("CI"):
        import datasets  # in CI the test extra is installed: a missing package is a failure
    else:
        datasets = pytest.importorskip("datasets", reason="in the test extra: pip install -e '.[test]'")
    splits = datasets.DatasetDict({"train": datasets.Dataset.from_dict({"x": [1, 2, 3]}),
                                   "test": datasets.Dataset.from_dict({"x": [4]})})
    with gitexp.start_run(name="hf", **QUIET) as run:
        one = run.log_input(splits["train"], name="train")
        both = run.log_input(splits, name="all", source="hub://org/data")
    assert one == {"kind": "hf-dataset", "fingerprint": splits["train"]._fingerprint, "num_rows": 3}
    assert both is not None and both["source"] == "hub://org/data"
    assert both["splits"]["test"]["fingerprint"] == splits["test"]._fingerprint
    inputs = yaml.safe_load(git(lfs_repo, "show", f"{run.ref}:inputs.yaml"))
    assert inputs["train"]["fingerprint"] == splits["train"]._fingerprint


def test_gc_removes_only_unreferenced_lfs_objects(lfs_repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    git(lfs_repo, "config", "exp.gcGrace", "0")
    keep, drop, branch_data = os.urandom(3000), os.urandom(4000), os.urandom(5000)
    write(lfs_repo / "keep.bin", keep)
    write(lfs_repo / "drop.bin", drop)
    with gitexp.start_run(name="keep", **QUIET) as run:
        run.log_artifact(lfs_repo / "keep.bin")
    with gitexp.start_run(name="drop", **QUIET) as run:
        run.log_artifact(lfs_repo / "drop.bin")
    # The user's own git-lfs file on a branch: reachable, so never collected.
    oid = hashlib.sha256(branch_data).hexdigest()
    write(lfs_repo / ".git" / "lfs" / "objects" / oid[:2] / oid[2:4] / oid, branch_data)
    write(lfs_repo / "dataset.bin", pointer(branch_data))
    git(lfs_repo, "add", "dataset.bin")
    git(lfs_repo, "commit", "-q", "-m", "add dataset pointer")
    assert cli(capsys, "rm", "drop")[0] == 0
    code, out, _ = cli(capsys, "gc", "--dry-run")
    assert code == 0 and out.splitlines()[-1] == "would delete 1 unreferenced LFS object(s), 3.9 KiB"
    assert len(lfs_objects(lfs_repo)) == 3
    code, out, _ = cli(capsys, "gc")
    assert code == 0 and out.splitlines()[-1] == "deleted 1 unreferenced LFS object(s), 3.9 KiB"
    assert sorted(lfs_objects(lfs_repo)) == sorted([hashlib.sha256(keep).hexdigest(), oid])
    assert cli(capsys, "gc") == (0, "", "")


def test_only_a_read_only_file_is_hard_linked(lfs_repo: Path) -> None:
    # A writable file may be rewritten in place later (torch.save to the same path), which would
    # change a hard-linked store object too: it is copied. A read-only one is linked, costing no bytes.
    writable, frozen = write(lfs_repo / "w.bin", os.urandom(3000)), write(lfs_repo / "r.bin", os.urandom(3000))
    frozen.chmod(0o444)
    with gitexp.start_run(name="links", **QUIET) as run:
        run.log_artifact(writable)
        run.log_artifact(frozen)
    store = lfs_repo / ".git" / "lfs" / "objects"
    by_inode = {p.stat().st_ino for p in store.rglob("*") if p.is_file()}
    assert frozen.stat().st_ino in by_inode and writable.stat().st_ino not in by_inode
