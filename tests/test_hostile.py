"""Hostile or damaged runs: anything fetched from a remote is untrusted.

Each run here is made with git plumbing (hash-object, mktree, commit-tree, update-ref) from a real
gitexp run, as a remote could hand it over, and every check is what a user of `git exp` sees: the
exit code, one warning naming the damaged run, the other runs still there, no traceback, and no
terminal control character of run data on the terminal.
"""

from __future__ import annotations

import json
import re
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

import gitexp
from gitexp.cli.main import main
from gitexp.store import codec as fmt
from tests.conftest import git

pytestmark = pytest.mark.faults

QUIET = {"system_metrics_interval": 0}
BAD = "20261202-3000000aaaaaaaa"  # the id of the crafted run
OTHER_BAD = "20261202-3100000bbbbbbbb"
# Sets the terminal's title, rings its bell, clears its screen.
ESCAPES = "\x1b]0;pwned\x07\x1b[2J"
CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # what must not reach the terminal (\t, \n may)
# Nine levels of nine aliases: about a kilobyte of YAML, 9**9 strings once expanded.
BOMB_LEVELS = "".join(f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]\n" for i in range(1, 9))
BOMB_BASE = "l0: &l0 [" + ", ".join(["lol"] * 9) + "]\n"
MEMORY_LIMIT = 1536 * 2**20  # a regression expands the bomb past this and dies, rather than passing


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def plumbing(repo: Path, *args: str, data: bytes | str = b"") -> str:
    """A git plumbing command fed *data*; its output without the trailing newline."""
    raw = data.encode() if isinstance(data, str) else data
    return subprocess.run(["git", *args], cwd=repo, input=raw, capture_output=True, check=True).stdout.decode().strip()


def blob(repo: Path, data: bytes | str) -> str:
    return plumbing(repo, "hash-object", "-w", "--stdin", data=data)


def tree(repo: Path, entries: dict[str, tuple[str, str]]) -> str:
    """A tree of name -> (mode, object id), names as they are (newlines included)."""
    listing = "".join(f"{mode} {'tree' if mode == '040000' else 'blob'} {oid}\t{name}\0"
                      for name, (mode, oid) in entries.items())
    return plumbing(repo, "mktree", "-z", data=listing)


def good_runs(repo: Path) -> str:
    """Runs alpha and beta (experiment x, param lr, metric loss); returns alpha's ref."""
    for name, lr in (("alpha", 0.1), ("beta", 0.2)):
        with gitexp.start_run(name=name, experiment="x", params={"lr": lr}, **QUIET) as run:
            run.log_metric("loss", lr * 2)
            if name == "alpha":
                ref = run.ref
    return ref


def craft(repo: Path, base_ref: str, run_id: str = BAD, files: dict[str, str] | None = None,
          meta: dict[str, Any] | None = None, keep_summary: bool = False, trees: dict[str, str] | None = None) -> str:
    """A run commit on refs/experiments/x/<run_id>: *base_ref*'s tree with meta.yaml naming the new run
    (and *meta* merged in), *files* (text) and *trees* (tree ids) replacing entries, and without
    summary.json unless *keep_summary*."""
    source = plumbing(repo, "rev-parse", base_ref)
    entries: dict[str, tuple[str, str]] = {}
    for line in plumbing(repo, "ls-tree", source).splitlines():
        info, name = line.split("\t")
        mode, _, oid = info.split()
        entries[name] = (mode, oid)
    document = yaml.safe_load(plumbing(repo, "show", f"{source}:meta.yaml"))
    document.update({"id": run_id, "name": "damaged", **(meta or {})})
    if not keep_summary:
        entries.pop("summary.json", None)
    for name, content in {"meta.yaml": yaml.safe_dump(document), **(files or {})}.items():
        entries[name] = ("100644", blob(repo, content))
    entries.update((name, ("040000", oid)) for name, oid in (trees or {}).items())
    commit = plumbing(repo, "commit-tree", tree(repo, entries), "-p", source, "-m", "crafted")
    git(repo, "update-ref", f"refs/experiments/x/{run_id}", commit)
    return commit


def point_run_ref_at(repo: Path, kind: str, base_ref: str, run_id: str = BAD) -> None:
    """Make refs/experiments/x/<run_id> point at a blob, a tree or an annotated tag of a run commit."""
    target = {"blob": lambda: blob(repo, "not a run"),
              "tree": lambda: plumbing(repo, "rev-parse", f"{base_ref}^{{tree}}"),
              "tag": lambda: plumbing(repo, "mktag", data=f"object {plumbing(repo, 'rev-parse', base_ref)}\n"
                                      "type commit\ntag t\ntagger T <t@example.com> 0 +0000\n\nt\n")}[kind]()
    git(repo, "update-ref", f"refs/experiments/x/{run_id}", target)


def warning_lines(err: str, run_id: str) -> list[str]:
    return [line for line in err.splitlines() if run_id in line]


def assert_clean(out: str, err: str) -> None:
    assert "Traceback" not in err and "this is a bug in gitexp" not in err, err


# Damaged run documents: each makes the crafted run unusable for a listing.
DAMAGES: dict[str, dict[str, Any]] = {
    "metrics.yaml of the wrong shape": {"files": {"metrics.yaml": "n: 5\n"}, "says": "metrics.yaml maps 'n' to 5"},
    "summary.json and metrics.yaml of the wrong shape": {
        "files": {"metrics.yaml": "n: 5\n"}, "summary": {"n": 5}, "says": "metrics.yaml maps 'n' to 5"},
    "meta.git a string": {"meta": {"git": "main"}, "says": "git is 'main'"},
    "meta.tags a list": {"meta": {"tags": ["a"]}, "says": "tags is ['a']"},
    "meta.start a number": {"meta": {"start": 7}, "says": "start is 7"},
    "meta.duration text": {"meta": {"duration": "long"}, "says": "duration is 'long'"},
    "meta.command text": {"meta": {"command": "rm -rf /"}, "says": "command is 'rm -rf /'"},
    "meta.status a list": {"meta": {"status": ["X"]}, "says": "status is ['X']"},
    "meta.code a string": {"meta": {"code": "c"}, "says": "code is 'c'"},
    "a metric's last value text": {"files": {"metrics.yaml": "loss: {last: abc, step: 0, min: 0.1, max: 0.1, "
                                                             "count: 1}\n"}, "says": "loss.last is 'abc'"},
    "params.yaml a list": {"files": {"params.yaml": "- 1\n"}, "says": "params.yaml should be a mapping"},
    # Well-formed YAML whose safe constructors raise ValueError: it crashed every listing.
    "a date of month 13": {"files": {"params.yaml": "day: 2026-13-45\n"},
                           "says": "cannot be read: month must be in 1..12"},
    "an integer of 5,000 digits": {"files": {"metrics.yaml": "loss: {last: 1" + "0" * 5000 + "}\n"},
                                   "says": "cannot be read: Exceeds the limit (4300 digits)"},
    # Integers past what the views take (JSON and YAML integers have no bound): OverflowError crashed them.
    "a duration of 401 digits": {"meta": {"duration": 10 ** 400}, "says": "duration is 1000"},
    "a metric's last value of 401 digits": {"files": {"metrics.yaml": f"loss: {{last: {10 ** 400}}}\n"},
                                            "says": "loss.last is 1000"},
    "a step past 64 bits": {"files": {"metrics.yaml": f"loss: {{last: 1.0, step: {2 ** 64}}}\n"},
                            "says": "loss.step is 18446744073709551616"},
    "a float tag on text": {"files": {"params.yaml": "lr: !!float abc\n"},
                            "says": "cannot be read: could not convert string to float"},
}


def craft_damage(repo: Path, base_ref: str, damage: dict[str, Any], run_id: str = BAD) -> None:
    files = dict(damage.get("files", {}))
    if "summary" in damage:  # an index that says the same wrong thing
        meta = yaml.safe_load(plumbing(repo, "show", f"{base_ref}:meta.yaml"))
        files["summary.json"] = json.dumps({"meta": {**meta, "id": run_id, "name": "damaged"}, "params": {},
                                            "metrics": damage["summary"]})
    craft(repo, base_ref, run_id, files, damage.get("meta"), keep_summary="summary" in damage)


# -- item 6: one bad run breaks nothing else ------------------------------------------------------


@pytest.mark.parametrize("kind", ["blob", "tree", "tag"])
def test_a_run_ref_at_a_blob_tree_or_tag_is_left_out_with_one_warning(
        repo: Path, capsys: pytest.CaptureFixture[str], kind: str) -> None:
    point_run_ref_at(repo, kind, good_runs(repo))
    code, out, err = cli(capsys, "ls")
    assert_clean(out, err)
    assert code == 0 and "alpha" in out and "beta" in out and BAD[:13] not in out
    (warning,) = warning_lines(err, BAD)
    what = "an annotated tag" if kind == "tag" else f"a {kind}"
    assert warning.startswith("git exp: warning:") and f"points at {what}" in warning
    code, out, err = cli(capsys, "show", BAD)
    assert_clean(out, err)
    assert code == 1 and f"run {BAD}" in err and "not at a commit" in err


@pytest.mark.parametrize("damage", DAMAGES.values(), ids=DAMAGES.keys())
def test_a_damaged_run_is_left_out_of_every_command_over_runs(
        repo: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path, damage: dict[str, Any]) -> None:
    craft_damage(repo, good_runs(repo), damage)
    for args in (["ls"], ["ls", "-f", "csv"], ["ls", "-w", "params.lr > 0"], ["compare"], ["best", "loss"],
                 ["diff", "alpha", "beta"], ["report", "-o", str(tmp_path / "r.html")],
                 ["plot", "loss", "-o", str(tmp_path / "p.png")], ["notes", "rebuild"], ["log", "alpha"]):
        code, out, err = cli(capsys, *args)
        assert_clean(out, err)
        assert code == 0, (args, err)
        (warning,) = warning_lines(err, BAD)  # one warning per run and command
        assert "damaged" in warning and damage["says"] in warning, (args, warning)
    code, out, _ = cli(capsys, "ls")
    assert "alpha" in out and "beta" in out


def test_a_param_of_401_digits_is_kept_and_breaks_no_chart(repo: Path, capsys: pytest.CaptureFixture[str],
                                                            tmp_path: Path) -> None:
    # gitexp stores any integer a script logs; float() of one past a float's range raised OverflowError.
    craft(repo, good_runs(repo), files={"params.yaml": f"lr: {10 ** 400}\n"})
    for args in (["ls", "-w", "params.lr > 0", "-s", "-params.lr"], ["compare"], ["show", BAD], ["diff", "alpha", BAD],
                 ["report", "-o", str(tmp_path / "r.html")], ["verify"],
                 ["plot", "--scatter", "params.lr", "loss", "-o", str(tmp_path / "s.png")],
                 ["plot", "--parallel", "params.lr", "loss", "-o", str(tmp_path / "p.png")],
                 ["plot", "--bar", "params.lr", "-o", str(tmp_path / "b.png")]):
        code, out, err = cli(capsys, *args)
        assert_clean(out, err)
        assert code == 0 and not warning_lines(err, BAD), (args, err)
    assert str(10 ** 400) in cli(capsys, "ls", "-f", "csv")[1]


@pytest.mark.parametrize("damage", DAMAGES.values(), ids=DAMAGES.keys())
def test_a_command_aimed_at_a_damaged_run_says_what_is_wrong(
        repo: Path, capsys: pytest.CaptureFixture[str], damage: dict[str, Any]) -> None:
    craft_damage(repo, good_runs(repo), damage)
    for args in (["show", BAD[:13]], ["diff", "alpha", BAD], ["artifacts", BAD]):
        code, out, err = cli(capsys, *args)
        assert_clean(out, err)
        assert code == 1 and f"error: run {BAD} (refs/experiments/x/{BAD}) is damaged" in err, (args, err)
        assert damage["says"] in err


def test_verify_lists_every_damaged_run_and_checks_all_the_others(
        repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    alpha = good_runs(repo)
    point_run_ref_at(repo, "blob", alpha)
    craft_damage(repo, alpha, DAMAGES["meta.git a string"], OTHER_BAD)
    code, out, err = cli(capsys, "verify")
    assert_clean(out, err)
    assert code == 1 and "verified 4 run(s)" in err and "in 2 run(s)" in err
    assert any(line.startswith(BAD) and "points at a blob" in line for line in out.splitlines())
    assert any(line.startswith(OTHER_BAD) and "git is 'main'" in line for line in out.splitlines())
    code, out, err = cli(capsys, "verify", OTHER_BAD[:13])  # named: checked, though listings leave it out
    assert_clean(out, err)
    assert code == 1 and out.startswith(OTHER_BAD) and "verified 1 run(s)" in err


def test_an_env_yaml_of_the_wrong_shape_is_ignored_with_a_warning(
        repo: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    craft(repo, good_runs(repo), files={"env.yaml": "variables: [1, 2]\npython: 3\n"})
    for args in (["show", BAD], ["compare"], ["diff", "alpha", BAD], ["report", "-o", str(tmp_path / "r.html")],
                 ["ls", "-w", "env.python = '3.11'"]):
        code, out, err = cli(capsys, *args)
        assert_clean(out, err)
        assert code == 0, (args, err)
        (warning,) = warning_lines(err, BAD)
        assert "ignoring the environment" in warning and "env.yaml" in warning
    code, out, err = cli(capsys, "verify")
    assert code == 1 and f"{BAD} x/damaged: env.yaml: python is 3" in out


def test_verify_reports_a_damaged_env_yaml_in_every_run_that_shares_its_blob(
        repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # verify checks each env.yaml blob once (a machine's runs share theirs): the second run with the
    # same damaged blob is reported all the same, and the sound runs between them are not.
    alpha = good_runs(repo)
    damaged = {"env.yaml": "variables: [1, 2]\npython: 3\n"}
    craft(repo, alpha, files=damaged)
    craft(repo, alpha, OTHER_BAD, files=damaged)
    assert plumbing(repo, "rev-parse", f"refs/experiments/x/{BAD}:env.yaml") == \
        plumbing(repo, "rev-parse", f"refs/experiments/x/{OTHER_BAD}:env.yaml")
    code, out, err = cli(capsys, "verify")
    assert code == 1 and "verified 4 run(s): 2 problem(s) in 2 run(s)" in err
    for run_id in (BAD, OTHER_BAD):
        assert f"{run_id} x/damaged: env.yaml: python is 3" in out
    assert "alpha" not in out and "beta" not in out


def test_verify_in_several_processes_finds_what_one_finds(repo: Path) -> None:
    # (100,000 runs are checked by a process per 2,000, up to the CPUs: each worker a share, in order.)
    from gitexp.git.repo import Repo
    from gitexp.ops.verify import verify_runs

    alpha = good_runs(repo)
    craft(repo, alpha, files={"env.yaml": "variables: [1, 2]\npython: 3\n"})
    craft_damage(repo, alpha, DAMAGES["meta.git a string"], OTHER_BAD)
    handle = Repo.discover(repo)
    refs = sorted(handle.refs("refs/experiments/").items())
    alone = verify_runs(handle, refs, processes=1)
    assert len(alone) == 2 and {label.split()[0] for label, _ in alone} == {BAD, OTHER_BAD}
    assert verify_runs(handle, refs, processes=3) == alone


def test_fetch_ignores_a_remotes_run_refs_and_notes_that_are_not_commits(
        repo: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    alpha = good_runs(repo)
    point_run_ref_at(repo, "blob", alpha)
    point_run_ref_at(repo, "tree", alpha, OTHER_BAD)
    git(repo, "update-ref", "refs/notes/experiments", blob(repo, "not notes"))
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(repo), str(clone))
    monkeypatch.chdir(clone)
    code, out, err = cli(capsys, "fetch", "origin")
    assert_clean(out, err)
    assert code == 0 and "2 new" in out and "notes ignored" in out and "points at a blob" in out
    assert "ignored 2 ref(s)" in err
    assert git(clone, "for-each-ref", "--format=%(objecttype)", "refs/experiments/").split() == ["commit"] * 2
    code, out, err = cli(capsys, "ls")
    assert code == 0 and "alpha" in out and err == ""


def test_a_notes_ref_at_a_blob_is_ignored_then_written_again(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good_runs(repo)
    gitexp.flush()  # the runs' notes are written: a pending write would replace the blob at once
    git(repo, "update-ref", "refs/notes/experiments", blob(repo, "not notes"))
    code, out, err = cli(capsys, "log")
    assert_clean(out, err)
    assert code == 0 and "initial" in out and "refs/notes/experiments: it points at a blob" in err
    code, out, err = cli(capsys, "notes", "rebuild")
    assert_clean(out, err)
    assert code == 0 and git(repo, "cat-file", "-t", "refs/notes/experiments").strip() == "commit"
    code, out, err = cli(capsys, "log")
    assert code == 0 and "x/alpha FINISHED" in out and err == ""


# -- item 7: YAML aliases are refused -------------------------------------------------------------


def limited_cli(repo: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """`git exp ARGS` in a process that cannot grow past MEMORY_LIMIT: an expanded bomb kills it."""
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))

    return subprocess.run([sys.executable, "-m", "gitexp", *args], cwd=repo, env=env, capture_output=True,
                          text=True, preexec_fn=limit, timeout=600, check=False)


def bomb(top: str) -> str:
    """The nine levels of aliases under the mapping key *top*, so that a reader walking *top* expands them."""
    levels = BOMB_BASE + BOMB_LEVELS
    indented = "".join(f"  {line}\n" for line in levels.splitlines())
    return f"{top}:\n{indented}"


@pytest.mark.parametrize(("name", "top", "commands"), [
    ("params.yaml", "model", [["ls"], ["report", "-o", "r.html"], ["compare"], ["verify"]]),
    ("env.yaml", "packages", [["diff", "alpha", BAD], ["show", BAD], ["compare"], ["verify"]]),
    ("inputs.yaml", "data", [["diff", "alpha", BAD], ["show", BAD], ["ls", "-w", "inputs.data.sha256 = 'x'"],
                             ["verify"]]),
])
def test_a_yaml_alias_bomb_is_refused_naming_its_file(repo: Path, gitexp_env: dict[str, str], name: str,
                                                      top: str, commands: list[list[str]]) -> None:
    craft(repo, good_runs(repo), files={name: bomb(top)})
    for args in commands:
        proc = limited_cli(repo, gitexp_env, *args)
        assert "Traceback" not in proc.stderr and "MemoryError" not in proc.stderr, (args, proc.stderr[-2000:])
        assert proc.returncode == (1 if args == ["verify"] else 0), (args, proc.stderr[-2000:])
        said = warning_lines(proc.stdout if args == ["verify"] else proc.stderr, BAD)
        assert len(said) == 1, (args, proc.stdout, proc.stderr)
        said = said[0]
        assert name in said and "anchor or alias" in said, (args, said)


def test_gitexp_never_writes_yaml_anchors(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shared = [1, 2]
    # A key that is not text leaves the document to PyYAML, which anchors an object met twice.
    document = {"a": shared, "b": shared, 3: "three"}
    text = fmt.dump_yaml(document)
    assert b"&" not in text and b"*" not in text
    assert fmt.load_yaml(text, "params.yaml") == document


# -- item 8: no terminal escapes from run data ----------------------------------------------------


def evil_run(repo: Path) -> str:
    base = good_runs(repo)
    craft(repo, base, meta={"name": f"evil{ESCAPES}\nFAKE FINISHED", "tags": {f"tag{ESCAPES}": ESCAPES},
                            "description": f"first line\nsecond {ESCAPES}", "status": f"FINISHED\n{ESCAPES}",
                            "git": {**yaml.safe_load(plumbing(repo, "show", f"{base}:meta.yaml"))["git"],
                                    "branch": f"main{ESCAPES}"}},
          files={"params.yaml": yaml.safe_dump({"p": ESCAPES, f"k{ESCAPES}": 1, "lr": 0.5})})
    return base


def test_run_data_reaches_the_terminal_with_control_characters_escaped(
        repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    evil_run(repo)
    commands = [["ls"], ["ls", "-a"], ["ls", "-f", "md"], ["ls", "-f", "csv"], ["ls", "-c", "tags.t,params.p"],
                ["show", BAD], ["compare"], ["compare", "-f", "csv"], ["diff", "alpha", BAD], ["best", "loss", "--min"],
                ["log", BAD], ["verify"], ["notes", "rebuild"], ["log"]]
    for args in commands:
        code, out, err = cli(capsys, *args)
        assert_clean(out, err)
        assert code == (1 if args == ["verify"] else 0), (args, out, err)  # verify: its status is unknown
        assert CONTROL.search(out) is None and CONTROL.search(err) is None, (args, out, err)
        if "csv" not in args:  # a csv cell may hold lines (quoted); no other view breaks a name into two
            assert not any(line.lstrip().startswith("FAKE") for line in out.splitlines()), (args, out)
    _, out, _ = cli(capsys, "show", BAD)
    assert "\\x1b]0;pwned\\x07\\x1b[2J" in out  # visible, not acted on
    assert out.splitlines()[0].endswith("evil\\x1b]0;pwned\\x07\\x1b[2J\\nFAKE FINISHED")  # one line
    description = out[out.index("description"):].splitlines()
    assert description[0].endswith("first line") and description[1].strip() == "second \\x1b]0;pwned\\x07\\x1b[2J"
    assert description[1].startswith(" " * 12)  # indented under the first line: it cannot pose as a field


def note_lines(repo: Path, commit: str = "HEAD") -> list[str]:
    return git(repo, "notes", "--ref", "experiments", "show", commit).splitlines()


def test_note_lines_never_carry_control_characters_of_run_data(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    evil_run(repo)
    code, _, _ = cli(capsys, "notes", "rebuild")
    assert code == 0
    lines = note_lines(repo)
    assert len(lines) == 3 and all(re.match(r"\d{8}-[0-9a-f]{15} x/", line) for line in lines), lines
    assert all(CONTROL.search(line) is None for line in lines)
    # Lines are in run-id order, and ids follow the time of day: the crafted run's is not always last.
    evil = f"{BAD} x/evil\\x1b]0;pwned\\x07\\x1b[2J FAKE FINISHED FINISHED \\x1b]0;pwned\\x07\\x1b[2J"
    assert any(evil in line for line in lines), lines


def test_notes_merged_from_a_remote_lose_their_control_characters(
        repo: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    good_runs(repo)
    gitexp.flush()
    head = git(repo, "rev-parse", "HEAD").strip()
    # A remote's notes whose line hides a second one behind a carriage return and clears the screen.
    hostile = f"{BAD} x/fake FINISHED acc=1\r{OTHER_BAD} x/{ESCAPES}hidden FINISHED\n"
    notes_tree = tree(repo, {head: ("100644", blob(repo, hostile))})
    theirs = plumbing(repo, "commit-tree", notes_tree, "-m", "their notes")
    code, out, err = cli(capsys, "notes", "merge", theirs)
    assert_clean(out, err)
    assert code == 0
    lines = note_lines(repo)
    assert all(CONTROL.search(line) is None for line in lines), lines
    assert f"{OTHER_BAD} x/\\x1b]0;pwned\\x07\\x1b[2Jhidden FINISHED" in lines
    shown = git(repo, "log", "--notes=experiments", "-1")
    assert "\x1b" not in shown and "\r" not in shown
    code, out, err = cli(capsys, "log")
    assert code == 0 and CONTROL.search(out) is None


# -- item 13a: verify applies the artifact name rule of `git exp get` ----------------------------


@pytest.mark.parametrize("path", [("..", "x"), (".git", "x"), ("a\nb",)], ids=["dotdot", "dotgit", "newline"])
def test_verify_refuses_the_artifact_names_get_refuses(repo: Path, capsys: pytest.CaptureFixture[str],
                                                       tmp_path: Path, path: tuple[str, ...]) -> None:
    node = ("100644", blob(repo, "payload"))
    for name in reversed(path):
        node = ("040000", tree(repo, {name: node}))
    craft(repo, good_runs(repo), meta={"name": "loaded"}, trees={"artifacts": node[1]})
    code, out, err = cli(capsys, "verify", BAD)
    assert_clean(out, err)
    assert code == 1 and "invalid artifact path in the run" in out and CONTROL.search(out) is None
    code, out, err = cli(capsys, "get", BAD, "-o", str(tmp_path / "out"))
    assert code == 1 and "invalid artifact path in the run" in err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*"))
