"""Options shared by commands (gitexp/cli/options.py): --sort takes descending keys of every field."""

from __future__ import annotations

import argparse

import pytest

from gitexp.cli.options import add_sort
from gitexp.store.fields import FIELDS, PREFIXES


def parser() -> argparse.ArgumentParser:
    made = argparse.ArgumentParser(prog="git exp ls")
    add_sort(made, "sort keys")
    made.add_argument("--all", action="store_true")
    return made


@pytest.mark.parametrize("key", [*(f"-{field}" for field in FIELDS), *(f"-{prefix}.x" for prefix in PREFIXES),
                                 "-`odd key`", "-duration,name", "-metrics.acc,-start"])
def test_a_descending_key_of_any_field_is_a_value(key: str) -> None:
    assert parser().parse_args(["--sort", key]).sort == key


def test_options_are_still_options(capsys: pytest.CaptureFixture[str]) -> None:
    assert parser().parse_args(["--sort", "name", "--all"]).all
    with pytest.raises(SystemExit):
        parser().parse_args(["--sort", "-bogus"])  # neither a field nor an option: argparse says so
    assert "expected one argument" in capsys.readouterr().err
