from __future__ import annotations

import time

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from gitexp.tracking.redact import (
    MASK,
    Masker,
    filter_environ,
    is_secret_name,
    mask_argv,
    mask_text,
    strip_url_credentials,
)


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("API_KEY", True),
        ("github_token", True),
        ("--db-password", True),
        ("MY_PASSWD", True),
        ("aws_secret_access_key", True),
        ("GOOGLE_APPLICATION_CREDENTIALS", True),
        ("Authorization", True),
        ("keyboard", True),  # substring rule, intended
        ("lr", False),
        ("CUDA_VISIBLE_DEVICES", False),
        ("TOKENIZERS_PARALLELISM", False),  # known harmless, recorded by env capture
        ("--tokenizers-parallelism", False),
    ],
)
def test_is_secret_name(name: str, secret: bool) -> None:
    assert is_secret_name(name) is secret


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--api-key", "abc123"], ["--api-key", MASK]),
        (["--api_key", "abc123"], ["--api_key", MASK]),
        (["--token=abc123"], [f"--token={MASK}"]),
        (["-p", "password=hunter2"], ["-p", f"password={MASK}"]),
        (["password=hunter2"], [f"password={MASK}"]),
        (["API_KEY=xyz"], [f"API_KEY={MASK}"]),
        (["model.api_key=xyz"], [f"model.api_key={MASK}"]),
        (["--keyboard", "x"], ["--keyboard", MASK]),
        (["--lr", "0.1", "--epochs=3"], ["--lr", "0.1", "--epochs=3"]),
        (["--use-auth", "--lr", "0.1"], ["--use-auth", "--lr", "0.1"]),
        (["train.py", "--token"], ["train.py", "--token"]),
        (["--token="], ["--token="]),
        (["--secret", "-5"], ["--secret", "-5"]),
        (["https://user:pass@host/x"], [f"https://user:{MASK}@host/x"]),
        (["--url=https://user:pass@host/x"], [f"--url=https://user:{MASK}@host/x"]),
        (["--url", "https://h/x?token=abc&n=1"], ["--url", f"https://h/x?token={MASK}&n=1"]),
        (["-H", "Authorization: Bearer abc"], ["-H", f"Authorization: Bearer {MASK}"]),
        (["bash", "-c", "train --token abc --lr 1"], ["bash", "-c", f"train --token {MASK} --lr 1"]),
    ],
)
def test_mask_argv(argv: list[str], expected: list[str]) -> None:
    assert mask_argv(argv) == expected


def test_mask_argv_does_not_modify_input() -> None:
    argv = ["--token", "abc"]
    mask_argv(argv)
    assert argv == ["--token", "abc"]


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://user:pass@github.com/x/y.git", "https://github.com/x/y.git"),
        ("https://ghp_abc123@github.com/x/y.git", "https://github.com/x/y.git"),
        ("http://u:p@ss@host:8080/x", "http://host:8080/x"),
        ("ssh://git:pw@host/x.git", "ssh://host/x.git"),
        ("ssh://git@host/x.git", "ssh://git@host/x.git"),
        ("git@github.com:x/y.git", "git@github.com:x/y.git"),
        ("https://github.com/x/y.git", "https://github.com/x/y.git"),
        ("/local/path/repo", "/local/path/repo"),
        ("https://host/path@v1", "https://host/path@v1"),
    ],
)
def test_strip_url_credentials(url: str, expected: str) -> None:
    assert strip_url_credentials(url) == expected


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("step 10 loss=0.25 lr: 0.001", "step 10 loss=0.25 lr: 0.001"),
        ("connecting with password=hunter2 now", f"connecting with password={MASK} now"),
        ("api_key: abc123", f"api_key: {MASK}"),
        ('{"api_key": "abc def", "lr": 0.1}', f'{{"api_key": "{MASK}", "lr": 0.1}}'),
        ("run --api-key abc123 --lr 0.1", f"run --api-key {MASK} --lr 0.1"),
        ("run --use-auth --lr 0.1", "run --use-auth --lr 0.1"),
        ("Authorization: Bearer eyJhbGci.x.y", f"Authorization: Bearer {MASK}"),
        ("clone https://bob:s3cret@host/r.git done", f"clone https://bob:{MASK}@host/r.git done"),
        ("clone https://ghp_tok@github.com/r.git", f"clone https://{MASK}@github.com/r.git"),
        ("fetch https://oauth2:glpat-x@gitlab.com/r", f"fetch https://oauth2:{MASK}@gitlab.com/r"),
        ("GET /x?token=abc&page=2", f"GET /x?token={MASK}&page=2"),
        ("auth:\n  user: bob", "auth:\n  user: bob"),
        ("TOKENIZERS_PARALLELISM=false", "TOKENIZERS_PARALLELISM=false"),
    ],
)
def test_mask_text_patterns(line: str, expected: str) -> None:
    assert mask_text(line, environ={}) == expected


def test_mask_text_is_idempotent_on_masked_output() -> None:
    once = mask_text("password=x https://u:p@h/ --token abc", environ={})
    assert mask_text(once, environ={}) == once


def test_mask_text_masks_secret_environment_values() -> None:
    environ = {"HF_TOKEN": "hf_abcdefghij", "SHORT_KEY": "abc", "HOME": "/home/someone"}
    line = "downloading with hf_abcdefghij from /home/someone (abc)"
    assert mask_text(line, environ=environ) == f"downloading with {MASK} from /home/someone (abc)"


def test_mask_text_default_environ_follows_changes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_SERVICE_SECRET", "first-secret-value")
    assert mask_text("x first-secret-value y") == f"x {MASK} y"
    monkeypatch.setenv("MY_SERVICE_SECRET", "second-secret-value")
    assert mask_text("x second-secret-value y") == f"x {MASK} y"
    assert mask_argv(["second-secret-value"]) == [MASK]


def test_masker_extra_secrets_and_longest_first() -> None:
    masker = Masker({"DB_PASSWORD": "abcdef"}, extra_secrets=["abcdefgh"])
    assert masker.text("1 abcdefgh 2 abcdef 3") == f"1 {MASK} 2 {MASK} 3"


def test_masker_is_fast_enough_for_every_output_line() -> None:
    masker = Masker({"WANDB_API_KEY": "0123456789abcdef"})
    lines = [f"epoch 3 step {i} loss=0.{i} acc: 0.9 lr 1e-4 | 12.5 it/s" for i in range(20000)]
    start = time.perf_counter()
    for line in lines:
        masker.text(line)
    # Generous bound; typically ~20 ms. It catches an accidental per-line regex compile.
    assert time.perf_counter() - start < 1.0


def test_filter_environ_drops_secret_names() -> None:
    environ = {"LANG": "C.UTF-8", "MY_API_TOKEN": "x", "OMP_NUM_THREADS": "4"}
    selected = filter_environ(environ, ["LANG", "MY_API_TOKEN", "OMP_NUM_THREADS", "UNSET"])
    assert selected == {"LANG": "C.UTF-8", "OMP_NUM_THREADS": "4"}


_arg = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=12)
_secret = st.text(st.sampled_from("ABCDEFGHJKMNPQRSTUVWXYZ0123456789_/+"), min_size=6, max_size=24)


@given(
    before=st.lists(_arg, max_size=6),
    after=st.lists(_arg, max_size=6),
    secret=_secret,
    joined=st.booleans(),
)
def test_token_value_never_survives(before: list[str], after: list[str], secret: str, joined: bool) -> None:
    assume(not any(secret in a for a in before + after))
    argv = [*before, f"--token={secret}", *after] if joined else [*before, "--token", secret, *after]
    masked = mask_argv(argv)
    assert len(masked) == len(argv)
    assert not any(secret in a for a in masked)
