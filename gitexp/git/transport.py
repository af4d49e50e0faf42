"""Running the user's own `git` and `git lfs`, so their credential helpers and ssh setup apply.

Progress goes to stderr only when stderr is a terminal; otherwise git's output is captured and
shown only when something fails.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from gitexp.errors import RemoteError, StorageError
from gitexp.git import shelf
from gitexp.git.repo import Entry, Repo

LFS_INSTALL = ("git-lfs is not installed, so {what}. Install it (Debian/Ubuntu: `sudo apt-get install git-lfs`, "
               "Fedora: `sudo dnf install git-lfs`, macOS: `brew install git-lfs`, Windows: it comes with Git for "
               "Windows; others: https://git-lfs.com) and run the command again. Runs and artifacts under "
               "exp.lfsThreshold work without it")


def interactive() -> bool:
    return sys.stderr.isatty()


def _cwd(repo: Repo) -> Path:
    return repo.workdir or repo.gitdir


def run_git(repo: Repo, args: list[str], stdin: str | None = None, progress: bool = False,
            output_is_progress: bool = False) -> subprocess.CompletedProcess:
    """`git ARGS` in *repo*: stdout captured; stderr shown live when *progress* and a terminal, else captured.

    *output_is_progress*: the command (git-lfs) writes its progress meter to stdout, which then
    goes to our stderr too, since nothing reads it.
    """
    live = progress and interactive()
    stdout = sys.stderr.fileno() if live and output_is_progress else subprocess.PIPE
    try:
        return subprocess.run(["git", *args], cwd=_cwd(repo), input=stdin, text=True, encoding="utf-8",
                              errors="replace", stdout=stdout, stderr=None if live else subprocess.PIPE,
                              check=False)
    except OSError as exc:
        raise RemoteError(f"cannot run git ({exc}); is git installed and on PATH?") from exc


_LISTED = re.compile(r"([0-9a-f]{40}|[0-9a-f]{64})\t(refs/[^\t]+)\Z")


@dataclass
class RefComparison:
    """A remote's refs under a prefix beside the local refs of the same names."""

    differing: dict[str, str]  # ref -> the remote's object id, where it is not the local one (or not here)
    here: dict[str, str]  # ref -> object id of every local ref under the prefix
    same: list[str]  # refs equal on both sides
    named: dict[str, str]  # ref -> the remote's object id of the refs asked for by name


def compare_refs(repo: Repo, remote: str, prefix: str, named: tuple[str, ...] = ()) -> RefComparison:
    """*remote*'s refs under *prefix* (and those *named*) from one `git ls-remote`, beside one
    `git for-each-ref` of the local ones, the two run side by side.

    Nothing is written: what to fetch is decided from this. Lines equal on both sides (the
    same ref at the same object, most of them at 100,000 runs) are told apart as whole lines
    by a set difference; only the others are parsed. Those are the remote's words (untrusted):
    a line that is not an object id and a ref under *prefix* or *named* is left out. ls-remote
    asks the remote for all its refs and keeps these: git has no way to ask for a prefix there.
    """
    with ThreadPoolExecutor(1) as pool:
        # For-each-ref in a thread of its own: its output fills the pipe while ls-remote waits on the remote.
        listed_here = pool.submit(git_bytes, repo, ["for-each-ref", "--format=%(objectname)%09%(refname)", prefix])
        proc = run_git(repo, ["ls-remote", "--refs", remote, f"{prefix}*", *named])
        here_lines = listed_here.result().decode("utf-8", "surrogateescape").splitlines()
    here_lines += _shelved_lines(repo, prefix, here_lines)
    if proc.returncode:
        raise failure(proc, f"`git ls-remote {remote}`")
    theirs = set((proc.stdout or "").splitlines())
    other = theirs.difference(here_lines)
    differing, asked = {}, {}
    for line in other:
        match = _LISTED.match(line)
        if match and match.group(2).startswith(prefix):
            differing[match.group(2)] = match.group(1)
        elif match and match.group(2) in named:
            asked[match.group(2)] = match.group(1)
    # Every local line is "<object id>\t<ref>" with ids of one length: slices, the cheapest split.
    cut = here_lines[0].find("\t") + 1 if here_lines else 0
    here = {line[cut:]: line[:cut - 1] for line in here_lines}
    return RefComparison(differing, here, [line[cut:] for line in theirs.difference(other)], asked)


def fetch_objects(repo: Repo, remote: str, oids: list[str], negotiation_tips: list[str] | None = None) -> None:
    """Fetch the commits (or other objects) *oids* of *remote* and all they reach; no ref is written.

    Wanting ids rather than refs lets git skip its own ref listing (protocol v2) and its writing
    of a remote-tracking ref per run, which costs more than the objects at thousands of runs.
    *negotiation_tips*: the local refs whose history git offers the remote as common ground
    (`--negotiation-tip`); None offers every ref, as git does by default.
    """
    if not oids:
        return
    tips = [f"--negotiation-tip={tip}" for tip in negotiation_tips or ()]
    proc = run_git(repo, ["fetch", "--no-tags", "--no-write-fetch-head", "--recurse-submodules=no", *tips,
                          "--stdin", remote], stdin="".join(f"{oid}\n" for oid in oids), progress=True)
    if proc.returncode:
        raise failure(proc, f"`git fetch {remote}` of {len(oids)} object(s)")


def _shelved_lines(repo: Repo, prefix: str, here_lines: list[str]) -> list[str]:
    """for-each-ref's lines ("<id>\t<ref>") of the shelved runs under *prefix* no ref overrides."""
    shelved = shelf.read(Path(repo.commondir))
    if not shelved:
        return []
    own = {line.partition("\t")[2] for line in here_lines}
    return [f"{oid}\t{ref}" for ref, oid in shelved.items() if ref.startswith(prefix) and ref not in own]


def local_refs(repo: Repo, prefixes: tuple[str, ...], shelved: bool = True) -> dict[str, str]:
    """ref -> object id of the local refs under *prefixes*, from one `git for-each-ref` (which reads
    packed refs far faster than a ref-by-ref walk of all refs), and the shelved runs among them
    (shelf.py) unless not *shelved*."""
    out = git_bytes(repo, ["for-each-ref", "--format=%(objectname) %(refname)", *prefixes])
    refs = {}
    for line in out.decode("utf-8", "surrogateescape").splitlines():
        oid, _, name = line.partition(" ")
        refs[name] = oid
    if shelved:
        for prefix in prefixes:
            refs = shelf.with_shelved(Path(repo.commondir), prefix, refs)
    return refs


def failure(proc: subprocess.CompletedProcess, what: str) -> RemoteError:
    detail = (proc.stderr or "").strip() or (proc.stdout or "").strip() or "(git said nothing; see above)"
    lines = detail.splitlines()
    return RemoteError(f"{what} failed (git exit code {proc.returncode}):\n  " + "\n  ".join(lines[-15:]))


def add_remote_hint(name: str) -> str:
    """How to make *name* a remote: as its name, or (a URL or a path, which gitexp does not push to
    directly: fetched runs are tracked per remote) as its URL."""
    if any(c in name for c in "/\\:") or name.startswith("."):
        return f"`git remote add NAME {name}` adds it as remote NAME"
    return f"`git remote add {name} URL` adds it"


def resolve_remote(repo: Repo, name: str | None) -> str:
    """*name* if it is a configured remote; by default the current branch's remote, else origin."""
    names = repo.remote_names()
    if name:
        if name not in names:
            known = ", ".join(names) or "none"
            raise RemoteError(f"no remote named {name!r} (this repository has: {known}); {add_remote_hint(name)}")
        return name
    branch = repo.head().branch
    configured = repo.config(f"branch.{branch}.remote") if branch else None
    if configured and configured in names:
        return configured
    if "origin" in names:
        return "origin"
    if not names:
        raise RemoteError("this repository has no remote to share runs through; add one with "
                          "`git remote add origin URL`")
    raise RemoteError(f"the current branch has no remote and there is no 'origin'; name one of: {', '.join(names)}")


def lfs_available() -> bool:
    return shutil.which("git-lfs") is not None


def require_lfs(what: str) -> None:
    if not lfs_available():
        raise RemoteError(LFS_INSTALL.format(what=what))


def lfs_fetch(repo: Repo, remote: str, pointers: dict[str, str]) -> None:
    """Download the LFS objects *pointers* (oid -> pointer blob) from *remote* into the local store.

    `git lfs fetch` takes commits, not object ids: it gets a commit (referenced by no ref)
    whose tree holds exactly these pointers, so nothing else (such as LFS files of the code
    snapshot) is downloaded.
    """
    if not pointers:
        return
    require_lfs(f"the content of {len(pointers)} LFS artifact(s) cannot be fetched from {remote}")
    tree = repo.write_tree({oid: Entry(blob) for oid, blob in pointers.items()})
    commit = repo.commit(tree, [], f"gitexp: {len(pointers)} LFS object(s) to fetch\n")
    proc = run_git(repo, ["lfs", "fetch", "--include=", "--exclude=", remote, commit], progress=True,
                   output_is_progress=True)
    if proc.returncode:
        raise lfs_failure(repo, remote, proc, f"`git lfs fetch {remote}` of {len(pointers)} artifact(s)")


def lfs_push(repo: Repo, remote: str, oids: list[str]) -> None:
    """Upload the LFS objects *oids* (all present locally) to *remote*'s LFS storage."""
    if not oids:
        return
    require_lfs(f"{len(oids)} LFS artifact(s) cannot be pushed to {remote}")
    # Ids as arguments rather than --stdin, with which git-lfs shows no progress; in batches
    # that keep the command line far below the system's limit.
    for start in range(0, len(oids), 1000):
        batch = oids[start:start + 1000]
        proc = run_git(repo, ["lfs", "push", "--object-id", remote, *batch], progress=True, output_is_progress=True)
        if proc.returncode:
            raise lfs_failure(repo, remote, proc, f"`git lfs push --object-id {remote}` of {len(batch)} object(s)",
                              push=True)


def lfs_failure(repo: Repo, remote: str, proc: subprocess.CompletedProcess, what: str,
                push: bool = False) -> RemoteError:
    """git-lfs's error, after git's own when git cannot reach *remote* either.

    A remote whose URL is wrong, whose repository does not exist or that refuses access fails
    git-lfs first (LFS objects go before refs), with words such as "batch request: missing
    protocol" or "EOF" that do not say so. One `git ls-remote`, made only once LFS has failed,
    tells the two cases apart: of the push URL when pushing, as `git push` would use it.
    """
    lfs_error = failure(proc, what)
    url = (push and repo.config(f"remote.{remote}.pushurl")) or repo.config(f"remote.{remote}.url") or remote
    probe = run_git(repo, ["ls-remote", url if push else remote, "HEAD"])
    if probe.returncode == 0:
        return lfs_error
    said = [line for line in (probe.stderr or "").splitlines() if line.strip()] or ["(git said nothing)"]
    shown = re.sub(r"(://[^/@:]*):[^/@]*@", r"\1:***@", url)  # a password written into the URL stays off screen
    return RemoteError(
        f"cannot reach remote {remote!r} at {shown}: `git ls-remote` failed (git exit code {probe.returncode}):\n  "
        + "\n  ".join(said[-15:]) + f"\ncheck that the repository exists there and that you can read it "
        f"(`git remote set-url {'--push ' if url != repo.config(f'remote.{remote}.url') else ''}{remote} URL` "
        f"points the remote elsewhere)\ngit-lfs failed too: {lfs_error}")


def git_bytes(repo: Repo, args: list[str], stdin: bytes = b"") -> bytes:
    """stdout of a local `git ARGS` (binary), or a StorageError with git's message."""
    try:
        proc = subprocess.run(["git", *args], cwd=_cwd(repo), input=stdin, capture_output=True, check=False)
    except OSError as exc:
        raise StorageError(f"cannot run git ({exc}); is git installed and on PATH?") from exc
    if proc.returncode:
        message = proc.stderr.decode(errors="replace").strip()
        raise StorageError(f"`git {' '.join(args[:3])}` failed (exit code {proc.returncode}): {message}")
    return proc.stdout
