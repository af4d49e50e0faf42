"""Experiment names, run ids and metric/param keys: what is accepted, what is refused and why."""

from __future__ import annotations

import itertools
import re
import subprocess
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gitexp.errors import InvalidNameError
from gitexp.store.names import check_experiment, check_key, key_to_path, new_run_id, path_to_key
from tests.conftest import git

RUN_ID = re.compile(r"^\d{8}-[0-9a-f]{15}$")


@pytest.mark.parametrize("name", ["cnn", "team/cnn-v2", "a.b", "x_1/y-2/z"])
def test_check_experiment_accepts_names_git_accepts(name: str, tmp_path: Path) -> None:
    assert check_experiment(name) == name
    git(tmp_path, "check-ref-format", f"refs/experiments/{name}/20260101-000000000000000")


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("", "non-empty"),
        ("a..b", "'..'"),
        ("a b", "' '"),
        ("x.lock", "'.lock'"),
        (".hidden", "starts with '.'"),
        ("a/", "empty path component"),
        ("a~1", "'~'"),
        ("a:b", "':'"),
    ],
)
def test_check_experiment_refuses_with_value_and_reason(name: str, reason: str, tmp_path: Path) -> None:
    with pytest.raises(InvalidNameError) as info:
        check_experiment(name)
    message = str(info.value)
    assert repr(name) in message
    assert reason in message
    assert "\n" not in message
    # The refusal agrees with git itself: such a name would not make a valid ref.
    proc = subprocess.run(["git", "check-ref-format", f"refs/experiments/{name}/x"], cwd=tmp_path,
                          capture_output=True)
    assert proc.returncode != 0


def test_check_experiment_refuses_a_run_id_as_last_component() -> None:
    with pytest.raises(InvalidNameError, match="looks like a run id"):
        check_experiment("cnn/20260101-0123456789abcde")


def test_new_run_id_format() -> None:
    assert RUN_ID.match(new_run_id())
    assert new_run_id(now=0.0).startswith("19700101-0000000")
    # 2026-01-01 12:00:00.5 UTC is 43_200_500 ms into the day.
    assert new_run_id(now=1_767_268_800.5).startswith(f"20260101-{43_200_500:07x}")


def test_new_run_ids_strictly_increase_within_a_process() -> None:
    ids = [new_run_id() for _ in range(1000)]
    assert all(RUN_ID.match(i) for i in ids)
    assert all(a < b for a, b in itertools.pairwise(ids))


def test_new_run_ids_are_unique() -> None:
    ids = [new_run_id() for _ in range(10_000)]
    assert len(set(ids)) == len(ids)


_component = st.text(
    alphabet=st.one_of(st.sampled_from(list(". %:<>|?*\"\\~#+-_aA")), st.characters()),
    min_size=1, max_size=12,
).filter(lambda s: "/" not in s and s.isprintable())


@given(st.lists(_component, min_size=1, max_size=4))
def test_key_path_round_trip(parts: list[str]) -> None:
    key = "/".join(parts)
    path = key_to_path(key)
    assert path_to_key(path) == key
    components = path.split("/")
    assert len(components) == len(parts)
    for component in components:
        assert component not in (".", "..")
        assert not component.startswith(".")
        assert not component.endswith((".", " "))
        assert not set(component) & set('<>:"\\|?*\x00')


@pytest.mark.parametrize(("key", "path"), [("val/acc", "val/acc"), ("loss", "loss"), (".x", "%2Ex"),
                                           ("a:b", "a%3Ab"), ("100%", "100%25"), ("..", "%2E%2E")])
def test_key_to_path_examples(key: str, path: str) -> None:
    assert key_to_path(key) == path
    assert path_to_key(path) == key


@pytest.mark.parametrize("key", ["loss", "val/acc", "train/loss/epoch", "élan ü", "a b"])
def test_check_key_accepts(key: str) -> None:
    assert check_key(key) == key


@pytest.mark.parametrize(
    ("key", "needle"),
    [
        (1, "not int"),
        (None, "not NoneType"),
        (b"loss", "not bytes"),
        ("", "printable"),
        ("a\tb", "printable"),
        ("a\nb", "printable"),
        ("a//b", "no empty part"),
        ("/a", "no empty part"),
        ("a/", "no empty part"),
    ],
)
def test_check_key_refuses(key: object, needle: str) -> None:
    with pytest.raises(InvalidNameError) as info:
        check_key(key, "param")
    assert needle in str(info.value)
    assert "param key" in str(info.value)
