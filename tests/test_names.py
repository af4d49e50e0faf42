"""Experiment names, run ids and metric/param keys: what is accepted, what is refused and why."""

from __future__ import annotations

import itertools
import re
import subprocess
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from gitexp.errors import InvalidNameError
from gitexp.store.names import (
    HANDLE_LEN,
    check_experiment,
    check_key,
    could_be_handle,
    handles,
    handles_after,
    handles_before,
    handles_of,
    handles_reference,
    key_to_path,
    new_run_id,
    path_to_key,
    random_part,
)
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


# -- handles ------------------------------------------------------------------------------------


def named_by(text: str, ids: list[str]) -> set[str]:
    """The ids that *text* names by the start of an id or of a handle, as runs.resolve reads it."""
    lowered = text.lower()
    return {i for i in ids if i.startswith(text) or (could_be_handle(text) and random_part(i).startswith(lowered))}


def test_a_handle_is_7_characters_of_the_random_part() -> None:
    ids = [new_run_id(now=1_790_000_000.0) for _ in range(50)]  # one millisecond: ids alike but for the end
    shown = handles(ids)
    for run_id in set(ids):
        assert shown[run_id] == run_id[16:23] or len(shown[run_id]) > HANDLE_LEN
    assert handles([]) == {}


def test_handles_grow_like_abbreviated_hashes() -> None:
    a, b, c = "20260101-0000001abcdef01", "20261231-7000000abcdef02", "20260101-0000001fedcba98"
    assert handles([a, b, c]) == {a: "abcdef01", b: "abcdef02", c: "fedcba9"}
    # The same 8 random digits (another machine's run, in another millisecond): the full id.
    twin = "20270101-0000005abcdef01"
    assert handles([a, twin]) == {a: a, twin: twin}
    assert handles(["not-a-run-id"]) == {"not-a-run-id": "not-a-run-id"}


def test_a_handle_of_digits_never_starts_an_id() -> None:
    # "2026010" would also be the start of the ids of 2026-01-0x: the handle grows past it, and past
    # the whole date to the full id.
    date_like, other = "20260101-00000012026010a", "20260105-0000002777777ff"
    assert handles([date_like, other]) == {date_like: "2026010a", other: "777777f"}
    whole_date = "20260105-000000320260105"
    assert handles([whole_date, other])[whole_date] == whole_date
    digits = "20260101-00000014096123f"  # digits, but no id starts with them
    assert handles([digits, other])[digits] == "4096123"


# Random parts made to collide: stems that runs share, some of them the start of a date of these ids.
@given(st.lists(st.tuples(st.sampled_from(["20200202", "20202020", "20220220"]),
                          st.text(alphabet="0a", min_size=7, max_size=7),
                          st.sampled_from(["2020020", "2020202", "2222222", "a0a0a0a", "0a0a0a0"]),
                          st.sampled_from("02a")), max_size=12))
def test_every_handle_names_its_run_alone(parts: list[tuple[str, str, str, str]]) -> None:
    ids = [f"{date}-{time}{stem}{last}" for date, time, stem, last in parts]
    shown = handles(ids)
    assert set(shown) == set(ids)
    for run_id, handle in shown.items():
        assert named_by(handle, ids) == {run_id}, handle
        assert handle == run_id or (could_be_handle(handle) and len(handle) >= HANDLE_LEN)


_DIGITS = st.sampled_from(["0", "1", "2", "9", "a", "f"])  # few digits: handles collide, and some are all digits
# Run ids whose random parts collide, handles of digits that start an id, and ids of other forms.
_IDS = st.lists(st.one_of(
    st.builds(lambda date, rand: f"2026{date}-{rand}", st.sampled_from(["0101", "1202", "1231"]),
              st.text(_DIGITS, min_size=15, max_size=15)),
    st.builds(lambda date, tail: f"2026{date}-0000000{tail}", st.sampled_from(["0101", "1202"]),
              st.sampled_from(["2026120a", "20261202", "2026120f", "abcdef01", "abcdef02", "99999999"])),
    st.sampled_from(["not-a-run-id", "20261202-0000000abcdef01\n20261202-0000000abcdef02", ""])), max_size=40)


@settings(max_examples=300, deadline=None)
@given(ids=_IDS)
def test_handles_of_a_whole_list_are_the_reference_ones(ids: list[str]) -> None:
    """handles() works a list at a time; handles_reference() a run at a time: they must agree, on
    colliding random parts, handles of digits that start an id, duplicates and ids of other forms."""
    assert handles(ids) == handles_reference(ids)


@settings(max_examples=300, deadline=None)
@given(wanted=st.lists(st.integers(0, 39), max_size=4), ids=_IDS)
def test_the_handles_of_a_few_runs_are_those_a_whole_listing_gives(wanted: list[int], ids: list[str]) -> None:
    """handles_of() looks only at the ids alike the wanted ones (and at every id's date, for handles of
    digits): what it answers must be what handles() of every id answers for them."""
    chosen = [ids[k % len(ids)] for k in wanted] if ids else []
    assert handles_of(chosen, ids) == {i: handles(ids)[i] for i in chosen}


@settings(max_examples=1000, deadline=None)
@given(before=_IDS, gone=st.lists(st.integers(0, 39), max_size=5), made=_IDS)
# A handle grown past a date ("2026120a" while 20261202-... is an id) shrinks when that id goes.
@example(before=["20260101-00000002026120a", "20261202-000000000000000"], gone=[1], made=[])
def test_handles_after_a_change_are_those_of_every_id(before: list[str], gone: list[int], made: list[str]) -> None:
    """handles_after() works out again only the handles a change can touch: it must answer what
    handles() of every id answers, whatever came (colliding, of digits, of another date) or went."""
    before = list(dict.fromkeys(before))
    removed = {before[k % len(before)] for k in gone} if before else set()
    added = [i for i in dict.fromkeys(made) if i not in before]
    every = [i for i in before if i not in removed] + added
    assert handles_after(handles(before), every, removed | set(added)) == handles(every)


@settings(max_examples=1000, deadline=None)
@given(before=_IDS, made=_IDS)
@example(before=["20261202-0000000abcdef01"], made=["20261202-1000000abcdef02"])  # a collision: both grow
@example(before=["20260101-00000002026120a", "20261202-000000000000000"], made=["20261202-100000002026120b"])
def test_handles_before_newer_ids_are_those_of_every_id(before: list[str], made: list[str]) -> None:
    """handles_before() works out again only the handles of ids alike the added ones: where it
    answers, it must be what handles() of every id answers, in the added-then-kept order."""
    added = [i for i in dict.fromkeys(made) if i not in before]
    every = [*added, *before]
    found = handles_before(before, [handles(before)[i] for i in before], added)
    if found is not None:
        assert found == [handles(every)[i] for i in every]


def test_handles_before_answers_for_a_sweeps_new_runs() -> None:
    """The case it is for: new runs of a day the kept ones have, one colliding with a kept run."""
    kept = [f"20261202-{k:07x}{k * 7919:08x}" for k in range(200, 0, -1)]
    added = ["20261202-fffffff" + kept[5][16:23] + "f", "20261202-ffffffe0000ffff"]
    found = handles_before(kept, [handles(kept)[i] for i in kept], added)
    every = [*added, *kept]
    assert found == [handles(every)[i] for i in every]
    assert len(found[0]) == len(found[2 + 5]) == 8  # the two that start alike grew a digit each
    assert handles_before(kept, [handles(kept)[i] for i in kept], ["20261203-0000000abcdef99"]) is None  # a new date
