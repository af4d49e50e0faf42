"""The documentation covers every command and option the CLI has (sqlite-utils style)."""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from gitexp.cli.main import build_parser

ROOT = Path(__file__).resolve().parent.parent


def subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_every_command_has_a_section_in_cli_md() -> None:
    text = (ROOT / "docs" / "cli.md").read_text()
    documented = set(re.findall(r"^## git exp (\S+)", text, re.MULTILINE))
    assert documented == set(subcommands())


@pytest.mark.parametrize("command", sorted(subcommands()))
def test_every_option_is_documented(command: str) -> None:
    text = (ROOT / "docs" / "cli.md").read_text()
    section = text.split(f"## git exp {command}\n", 1)[1].split("\n## ", 1)[0]
    for action in subcommands()[command]._actions:
        longs = [o for o in action.option_strings if o.startswith("--") and o != "--help"]
        if longs:
            assert any(o in section for o in longs), f"{longs} of `git exp {command}` is not in docs/cli.md"


def test_man_page_names_every_command() -> None:
    text = (ROOT / "docs" / "git-exp.1").read_text()
    for command in subcommands():
        assert f".B git exp {command}" in text and f".B {command}\n" in text


@pytest.mark.skipif(shutil.which("man") is None, reason="man is not installed")
def test_man_page_renders() -> None:
    out = subprocess.run(["man", "-l", str(ROOT / "docs" / "git-exp.1")], capture_output=True, text=True,
                         env={"MANWIDTH": "80", "PATH": "/usr/bin:/bin", "MANPAGER": "cat", "PAGER": "cat"})
    assert out.returncode == 0 and "track machine-learning experiments" in out.stdout
