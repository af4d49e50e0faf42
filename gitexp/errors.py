"""The one exception hierarchy of gitexp; the CLI turns it into exit codes."""

from __future__ import annotations


class GitexpError(Exception):
    """A problem the user can fix; its message says what happened and what to do."""

    exit_code = 1
    # What to say instead on the command line, where what to do differs (`git -C PATH exp`, not repo=PATH).
    cli_message: str | None = None


class NotARepositoryError(GitexpError):
    """No git repository where one was needed."""

    @classmethod
    def nowhere(cls, start: str) -> NotARepositoryError:
        """No repository at or above *start*: the message says what to do in Python, cli_message in a shell."""
        error = cls(f"not a git repository: {start}; gitexp stores runs in git, so run this inside a "
                    "repository (or `git init` one first, or pass repo=PATH)")
        error.cli_message = (f"not a git repository: {start}; gitexp stores runs in git: cd into a repository, "
                             "`git init` one here, or name one with `git -C PATH exp ...`")
        return error


class InvalidNameError(GitexpError, ValueError):
    """An experiment name, run name, param or metric key that cannot be stored."""


class InvalidValueError(GitexpError, ValueError):
    """A metric, param or tag value of the wrong type."""


class ParamConflictError(GitexpError, ValueError):
    """A param logged twice with two different values."""


class RunNotFoundError(GitexpError, LookupError):
    """No run matches the id prefix or name given."""


class AmbiguousRunError(GitexpError, LookupError):
    """Several runs match the id prefix or name given."""


class CorruptRunError(GitexpError):
    """A run's stored data cannot be parsed."""


class QueryError(GitexpError, ValueError):
    """A --where expression or sort key that cannot be parsed."""


class StorageError(GitexpError):
    """A git operation failed (I/O error, locked ref, lost race)."""


class ArtifactError(GitexpError, ValueError):
    """An artifact or input that cannot be logged or restored as asked (bad name, missing file)."""


class CorruptArtifactError(CorruptRunError):
    """Artifact content that does not match its recorded sha256, or a malformed LFS pointer."""


class RemoteError(GitexpError):
    """A transfer with a git remote or its LFS server failed, or a ref was rejected."""


class DamagedRunError(CorruptRunError):
    """A run gitexp cannot read (its ref is not a commit, or its files do not parse or have the wrong
    types): listings skip it with a warning, `git exp verify` lists it, a command aimed at it says this."""

    def __init__(self, run_id: str, ref: str, commit: str, problem: str) -> None:
        self.run_id, self.ref, self.commit, self.problem = run_id, ref, commit, problem
        self.hint = f"`git exp verify {run_id}` lists what is wrong with it, `git update-ref -d {ref}` deletes it"
        super().__init__(f"run {run_id} ({ref}) is damaged: {problem}; {self.hint}")
