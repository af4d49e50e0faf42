"""MlflowException: what the drop-in raises where MLflow raises, so `except MlflowException` still works."""

from __future__ import annotations

from gitexp.errors import GitexpError


class MlflowException(GitexpError):
    """An MLflow API call that gitexp cannot carry out; the message says why and what to do."""

    def __init__(self, message: str, error_code: str = "INVALID_PARAMETER_VALUE") -> None:
        super().__init__(message)
        self.message = message
        self.error_code = error_code


class RestException(MlflowException):
    """MLflow raises this for server-side errors; kept so that scripts catching it import cleanly."""
