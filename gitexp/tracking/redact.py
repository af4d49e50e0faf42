"""Keep secrets out of everything gitexp records: argv, captured output, URLs, environment."""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Iterable, Mapping

SECRET_WORDS = ("TOKEN", "SECRET", "PASSWORD", "PASSWD", "KEY", "CREDENTIAL", "AUTH")
MASK = "****"

# Exact names that contain a secret word but are well-known harmless settings; without this the
# substring rule would drop TOKENIZERS_PARALLELISM, which env capture is meant to record.
_NOT_SECRET = frozenset({"TOKENIZERS_PARALLELISM"})

# Shorter environment values would mask common words like "true" or "en_US" all over the output.
MIN_ENV_SECRET_LENGTH = 6

_WORDS = "|".join(SECRET_WORDS)
_NAME_CHARS = r"[A-Za-z0-9_.\-]"
# Only the start of a run of name characters is tried, the lookahead requires a secret word inside the
# run and the possessive "++" never gives characters back: together they keep matching linear, where
# "[..]*WORD[..]*" took 20 s on a 30 kB line of "keykeykey...".
_SECRET_NAME = rf"(?<!{_NAME_CHARS})(?={_NAME_CHARS}*?(?:{_WORDS})){_NAME_CHARS}++"
# A value is a quoted string or a bare word; an already masked value is left alone so masking twice is
# harmless, and an opening brace is structure (a nested mapping), not a secret.
_VALUE = r"(?P<value>(?!\*{4})(?![{\[])(?:\"[^\"\n]*\"|'[^'\n]*'|[^\s\"'&,;]+))"
# name=value, name: value, "name": "value", --name=value; "Authorization: Bearer x" masks the x.
_ASSIGN_RE = re.compile(
    rf"(?P<name>{_SECRET_NAME})(?P<sep>[\"']?[ \t]*[=:][ \t]*)"
    rf"(?P<scheme>(?:bearer|basic|token|digest)[ \t]+)?{_VALUE}",
    re.IGNORECASE,
)
# --name value inside free text; a value starting with "-" is the next option, not a value.
_OPTION_RE = re.compile(
    rf"(?<!\w)(?P<name>(?=-){_SECRET_NAME})(?P<sep>[ \t]+)(?P<scheme>)(?!-){_VALUE}",
    re.IGNORECASE,
)
# The greedy userinfo backtracks to the last "@" of the authority, so an unencoded "@" in a password
# does not leak the rest of the password.
_URL_RE = re.compile(r"(?<![A-Za-z0-9+.\-])(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*+://)(?P<userinfo>[^\s/?#]+)@")
_URL_START_RE = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<userinfo>[^/?#]*)@")
# Credentials with a well-known shape, masked wherever they appear, whatever name (if any) they are
# given: Hugging Face, GitHub (classic and fine-grained), OpenAI/Anthropic (sk-...), Stripe, AWS
# access key ids, Slack, GitLab, Google API keys, npm and PyPI tokens. Whole tokens only, so
# "sk-learn" or a word that happens to contain "ghp_" is left alone.
_TOKEN_RE = re.compile(
    r"(?<![A-Za-z0-9_\-])(?:"
    r"hf_[A-Za-z0-9]{30,}"
    r"|gh[pousr]_[A-Za-z0-9]{30,}"
    r"|github_pat_[A-Za-z0-9_]{30,}"
    r"|sk-[A-Za-z0-9_\-]{20,}"
    r"|[sr]k_(?:live|test)_[A-Za-z0-9]{20,}"
    r"|(?:AKIA|ASIA)[0-9A-Z]{16}"
    r"|xox[abposr]-[A-Za-z0-9\-]{10,}"
    r"|glpat-[A-Za-z0-9_\-]{20,}"
    r"|AIza[0-9A-Za-z_\-]{35}"
    r"|npm_[A-Za-z0-9]{36}"
    r"|pypi-[A-Za-z0-9_\-]{50,}"
    r")(?![A-Za-z0-9_\-])"
)
_ARG_OPTION_RE = re.compile(rf"-{{1,2}}{_NAME_CHARS}+")
_ARG_ASSIGN_RE = re.compile(rf"(?P<name>-{{0,2}}{_NAME_CHARS}+)=(?P<value>.*)", re.DOTALL)


def is_secret_name(name: str) -> bool:
    """True when *name* (an option, key or variable name) looks like it holds a secret."""
    upper = name.lstrip("-").upper()
    if upper.replace("-", "_") in _NOT_SECRET:
        return False
    return any(word in upper for word in SECRET_WORDS)


# Log lines repeat the same few names; caching keeps the per-line cost down.
_is_secret_cached = functools.lru_cache(maxsize=4096)(is_secret_name)


def _secret_env_values(environ: Mapping[str, str]) -> tuple[str, ...]:
    # Only the values of secret-named variables are fetched: os.environ decodes each one it yields,
    # and every run's command line is masked (half the cost of this call, for 40 variables).
    values = {v for k in environ if _is_secret_cached(k) and len(v := environ.get(k, "")) >= MIN_ENV_SECRET_LENGTH}
    return tuple(sorted(values))


def _mask_pair(match: re.Match[str]) -> str:
    if not _is_secret_cached(match["name"]):
        return match[0]
    value = match["value"]
    masked = value[0] + MASK + value[0] if value[0] in "\"'" else MASK
    return f"{match['name']}{match['sep']}{match['scheme'] or ''}{masked}"


def _mask_url(match: re.Match[str]) -> str:
    scheme, userinfo = match["scheme"], match["userinfo"]
    if ":" in userinfo:
        return f"{scheme}{userinfo.split(':', 1)[0]}:{MASK}@"
    if scheme.lower() in ("http://", "https://"):
        # A lone http(s) userinfo is how access tokens are usually embedded (https://ghp_x@github.com).
        return f"{scheme}{MASK}@"
    return match[0]


class Masker:
    """Compiled masking state; build one per capture and call .text() on every line."""

    def __init__(
        self, environ: Mapping[str, str] | None = None, *, extra_secrets: Iterable[str] = ()
    ) -> None:
        values = set(_secret_env_values(os.environ if environ is None else environ))
        values.update(s for s in extra_secrets if s)
        # Longest first so a secret containing another secret is masked whole.
        self.secret_values: tuple[str, ...] = tuple(sorted(values, key=lambda v: (-len(v), v)))
        self._values_re = (
            re.compile("|".join(re.escape(v) for v in self.secret_values)) if self.secret_values else None
        )

    def text(self, text: str) -> str:
        """Mask secrets in free text (program output, an error message, one argument)."""
        # Cheap substring checks first: nearly every line of training output has nothing to mask.
        if self._values_re is not None and any(v in text for v in self.secret_values):
            text = self._values_re.sub(MASK, text)
        if "://" in text:
            text = _URL_RE.sub(_mask_url, text)
        text = _TOKEN_RE.sub(MASK, text)
        upper = text.upper()
        # Plain substring tests are several times faster than a case-insensitive regex search.
        if any(word in upper for word in SECRET_WORDS):
            text = _OPTION_RE.sub(_mask_pair, text)
            text = _ASSIGN_RE.sub(_mask_pair, text)
        return text

    def argv(self, argv: Iterable[str]) -> list[str]:
        """Mask a command line argument by argument; the result has the same length."""
        out: list[str] = []
        value_expected = False
        for arg in argv:
            if value_expected and not arg.startswith("-"):
                out.append(MASK)
                value_expected = False
                continue
            value_expected = False
            if _ARG_OPTION_RE.fullmatch(arg) and _is_secret_cached(arg):
                value_expected = True
                out.append(arg)
                continue
            match = _ARG_ASSIGN_RE.fullmatch(arg)
            if match and match["value"] and _is_secret_cached(match["name"]):
                out.append(f"{match['name']}={MASK}")
                continue
            out.append(self.text(arg))
        return out


@functools.lru_cache(maxsize=8)
def _masker_for(secret_values: tuple[str, ...]) -> Masker:
    return Masker({}, extra_secrets=secret_values)


def _default_masker(environ: Mapping[str, str] | None) -> Masker:
    # Keyed by the current secret values, so a changed environment is picked up without recompiling
    # the patterns on every call.
    return _masker_for(_secret_env_values(os.environ if environ is None else environ))


def mask_argv(argv: list[str]) -> list[str]:
    """Mask secret option values, name=value pairs and URL passwords in a command line."""
    return _default_masker(None).argv(argv)


def mask_text(text: str, environ: Mapping[str, str] | None = None) -> str:
    """Mask secrets in captured output, including values of secret-named environment variables."""
    return _default_masker(environ).text(text)


def strip_url_credentials(url: str) -> str:
    """Remove user:password@ (and a bare token@ from http(s) URLs) so a remote URL can be recorded."""
    match = _URL_START_RE.match(url)
    if match is None:
        return url
    scheme, userinfo = match["scheme"], match["userinfo"]
    # ssh://git@host names the login user, which is not a secret and is needed to reproduce the remote.
    if "ssh" in scheme.lower() and ":" not in userinfo:
        return url
    return scheme + url[match.end() :]


# Files that hold credentials by convention. An untracked one is left out of a run's code snapshot
# (a tracked one is in git already, so it stays): see launch.git_state.
_SECRET_FILE_NAMES = frozenset({
    ".env", ".netrc", "_netrc", ".pgpass", ".git-credentials", ".pypirc", ".htpasswd", ".npmrc",
    "id_rsa", "id_dsa", "id_ecdsa", "id_ed25519", "credentials.json",
})
_SECRET_FILE_SUFFIXES = (".pem", ".key", ".p12", ".pfx")
# .env.example and the like are the templates projects share on purpose.
_ENV_TEMPLATE_SUFFIXES = (".example", ".sample", ".template", ".dist")


def is_secret_file(path: str) -> bool:
    """True for a path whose name says it holds credentials: .env and .env.* (not .env.example,
    .sample, .template, .dist), *.pem, *.key, *.p12, *.pfx, SSH private keys (id_rsa, id_ed25519...),
    .netrc, .pgpass, .git-credentials, .pypirc, .npmrc, .htpasswd, credentials.json,
    client_secret*.json, .aws/credentials."""
    name = path.rsplit("/", 1)[-1].lower()
    if name in _SECRET_FILE_NAMES or name.endswith(_SECRET_FILE_SUFFIXES):
        return True
    if name.startswith(".env."):
        return not name.endswith(_ENV_TEMPLATE_SUFFIXES)
    if name.startswith("client_secret") and name.endswith(".json"):
        return True
    return path == ".aws/credentials" or path.endswith("/.aws/credentials")


def filter_environ(environ: Mapping[str, str], names: Iterable[str]) -> dict[str, str]:
    """The selected variables that are set, never one with a secret-looking name; the values are
    masked as output is (a DATABASE_URL keeps its user and host, not its password; tokens go)."""
    chosen = [name for name in names if name in environ and not is_secret_name(name)]
    if not chosen:
        return {}
    masker = _default_masker(environ)
    return {name: masker.text(environ[name]) for name in chosen}
