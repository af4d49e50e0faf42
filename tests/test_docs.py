"""The documentation covers every command and option the CLI has, and the reference in docs/cli.md and
the man page docs/git-exp.1 is exactly what gitexp/cli/reference.py writes from the parsers."""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from gitexp.cli import reference
from gitexp.cli.main import build_parser

ROOT = Path(__file__).resolve().parent.parent
CLI_MD = ROOT / "docs" / "cli.md"
MAN = ROOT / "docs" / "git-exp.1"
FIX = f"run `{reference.REGENERATE}` to write the option lists of docs/cli.md and docs/git-exp.1 from the parsers"


def subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def options(parser: argparse.ArgumentParser, words: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], str]]:
    """(subcommand words, option string) of every option of *parser* and of its nested subcommands
    (`hooks install --auto-run`), (words, name) of every positional argument (its metavar, or each
    of its choices) and of each nested subcommand."""
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield words, name
                yield from options(sub, (*words, name))
        elif not action.option_strings:
            if isinstance(action.metavar, str) or action.choices is None:
                yield words, action.metavar or action.dest.upper()
            else:
                yield from ((words, str(choice)) for choice in action.choices)
        for option in action.option_strings:
            yield words, option


def md_section(command: str) -> str:
    text = CLI_MD.read_text()
    if not command:
        return text.split("\n## ", 1)[0]
    return text.split(f"\n## git exp {command}\n", 1)[1].split("\n## ", 1)[0]


def man_section(command: str) -> str:
    text = MAN.read_text().replace("\\%", "")  # roff's "do not hyphenate this word"
    head = "\n.SH OPTIONS\n" if not command else f'\n.SS "git exp {command}"\n'
    return re.split(r"\n\.S[HS] ", text.split(head, 1)[1], maxsplit=1)[0]


def test_every_command_has_a_section_in_cli_md_and_the_man_page() -> None:
    documented = set(re.findall(r"^## git exp (\S+)", CLI_MD.read_text(), re.MULTILINE))
    assert documented == set(subcommands())
    in_man = re.findall(r'^\.SS "git exp (\S+)"', MAN.read_text(), re.MULTILINE)
    assert sorted(in_man) == sorted(subcommands()), "docs/git-exp.1 needs one .SS section per command"


def test_the_reference_files_are_what_the_generator_writes() -> None:
    for path, text in reference.regenerate().items():
        assert path.read_text(encoding="utf-8") == text, f"{path.name} is out of date with the parsers: {FIX}"


@pytest.mark.parametrize("command", ["", *sorted(subcommands())])
def test_every_option_and_argument_of_every_command_is_in_both_files(command: str) -> None:
    if command:
        found = list(options(subcommands()[command]))
    else:  # the options of `git exp` itself, such as --version
        found = [((), option) for action in build_parser()._actions if not isinstance(action, argparse._HelpAction)
                 for option in action.option_strings]
    assert found or command == "recover"
    md, man = md_section(command), man_section(command)
    for words, option in found:
        name = " ".join(["git exp", command, *words, option]).replace("  ", " ")
        assert f"`{option}" in md, f"`{name}` is not in docs/cli.md: {FIX}"
        assert option.replace("-", "\\-") in man, f"`{name}` is not in docs/git-exp.1: {FIX}"


def test_every_option_and_argument_has_help_text() -> None:
    def walk(parser: argparse.ArgumentParser, words: tuple[str, ...]) -> Iterator[str]:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    yield from walk(sub, (*words, name))
            elif not action.help:
                yield f"{' '.join(words)} {'/'.join(action.option_strings) or action.dest}"

    assert list(walk(build_parser(), ("git exp",))) == [], "give these add_argument() calls a help= string"


def test_the_reference_does_not_depend_on_the_terminal_width(monkeypatch: pytest.MonkeyPatch) -> None:
    # argparse wraps its own help at $COLUMNS; the reference never uses that text.
    texts = []
    for columns in ("30", "300"):
        monkeypatch.setenv("COLUMNS", columns)
        texts.append(reference.regenerate(tree=reference.command_tree(build_parser())))
    assert texts[0] == texts[1]


def test_python_m_check_says_the_files_are_current() -> None:
    proc = subprocess.run([sys.executable, "-m", "gitexp.cli.reference", "--check"], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, env={**os.environ, "COLUMNS": "40"})
    assert (proc.returncode, proc.stderr) == (0, ""), f"{proc.stderr}{FIX}"


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    for name in reference.FILES:
        shutil.copy(ROOT / "docs" / name, tmp_path / name)
    return tmp_path


def test_a_stale_file_is_found_and_rewritten(docs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = (docs / "cli.md").read_text()
    (docs / "cli.md").write_text(text.replace("- `--only-changed`: only the rows", "- `--only-changed`: the rows"))
    assert reference.main(["--check", "--docs", str(docs)]) == 1
    err = capsys.readouterr().err
    assert "cli.md is out of date" in err and reference.REGENERATE in err
    assert reference.main(["--docs", str(docs)]) == 0
    assert (docs / "cli.md").read_text() == text
    assert reference.main(["--check", "--docs", str(docs)]) == 0


def test_a_command_without_a_block_is_an_error_that_says_what_to_add(docs: Path) -> None:
    man = (docs / "git-exp.1").read_text()
    start = man.index('.\\" BEGIN generated: git exp gc\n')
    end = man.index('.\\" END generated\n', start) + len('.\\" END generated\n')
    (docs / "git-exp.1").write_text(man[:start] + man[end:])
    with pytest.raises(reference.ReferenceDocsError, match=r"no block for git exp gc\..*BEGIN generated: git exp gc"):
        reference.regenerate(docs)
    (docs / "git-exp.1").write_text(man[:end - len('.\\" END generated\n')] + man[end:])
    with pytest.raises(reference.ReferenceDocsError, match=r"'git exp gc' has no `\.\\\" END generated` line"):
        reference.regenerate(docs)


def test_usage_and_option_lists_follow_the_parser() -> None:
    parser = argparse.ArgumentParser(prog="git exp")
    sub = parser.add_subparsers(metavar="COMMAND")
    p = sub.add_parser("demo", help="a command made up for the test")
    p.add_argument("target", metavar="RUN", help="one run")
    p.add_argument("more", nargs="*", metavar="RUN", help="more runs")
    p.add_argument("--out", "-o", required=True, metavar="FILE", help="where to write")
    p.add_argument("-p", "--param", action="append", metavar="KEY=VALUE", default=[], help="a param")
    p.add_argument("--format", choices=("text", "json"), default="text", help="output format")
    p.add_argument("--pair", nargs=2, metavar=("A", "B"), help="two values")
    either = p.add_mutually_exclusive_group()
    either.add_argument("--min", action="store_true", help="lowest")
    either.add_argument("--max", action="store_true", help="highest")
    p.add_argument("cmd", nargs=argparse.REMAINDER, metavar="-- COMMAND", help="what to run")
    tree = reference.command_tree(parser)
    (demo,) = tree.subcommands
    assert demo.usages() == [("git exp demo", ("RUN", "[RUN...]", "--out FILE",
                                               "[-p KEY=VALUE]...", "[--format text|json]", "[--pair A B]",
                                               "[--min | --max]", "-- COMMAND [ARGS...]"))]
    block = reference.markdown_block(demo)
    assert "- `--format text|json`: output format (default: text)" in block
    assert "- `-p KEY=VALUE`, `--param`: a param\n" in block
    roff = reference.roff_block(demo)
    assert "\\fB\\-\\-out\\fR \\fI\\%FILE\\fR, \\fB\\-o\\fR\nwhere to write" in roff
    p.add_argument("--silent")
    with pytest.raises(reference.ReferenceDocsError, match="--silent of `git exp demo` has no help text"):
        reference.command_tree(parser)


def test_man_page_is_a_man_page() -> None:
    text = MAN.read_text()
    assert text.startswith(".TH GIT-EXP 1 ")
    sections = re.findall(r"^\.SH (.+)$", text, re.MULTILINE)
    assert sections == ["NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "COMMANDS", "EXAMPLES", "CONFIGURATION",
                        "ENVIRONMENT", "FILES", "SEE ALSO"]
    known = {"TH", "SH", "SS", "TP", "PP", "B", "BR", "I", "IR", "RS", "RE", "br", "nf", "fi", "na", "ad", "in", "ti",
             '\\"'}
    for number, line in enumerate(text.split("\n"), 1):
        if line.startswith((".", "'")):
            assert line[1:].split(" ", 1)[0] in known, f"docs/git-exp.1:{number}: unknown request {line!r}"
    for begin, end in ((".RS", ".RE"), (".nf", ".fi"), (".na", ".ad")):
        assert text.count(f"\n{begin}\n") == text.count(f"\n{end}\n"), f"unbalanced {begin}/{end}"


@pytest.mark.skipif(shutil.which("groff") is None, reason="groff is not installed")
def test_man_page_is_valid_roff() -> None:
    out = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z", str(MAN)], capture_output=True, text=True)
    assert (out.returncode, out.stderr) == (0, "")


@pytest.mark.skipif(shutil.which("man") is None, reason="man is not installed")
def test_man_page_renders() -> None:
    out = subprocess.run(["man", "-l", str(MAN)], capture_output=True, text=True,
                         env={"MANWIDTH": "80", "PATH": "/usr/bin:/bin", "MANPAGER": "cat", "PAGER": "cat"})
    assert out.returncode == 0 and "track machine-learning experiments" in out.stdout
    assert "git exp hooks install [--auto-run CMD]" in out.stdout
