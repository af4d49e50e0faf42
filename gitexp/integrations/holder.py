"""The run an integration logs into: the one it was given, else the active run, else a run it
starts itself on first use and ends when training ends; logging after that (an evaluation after
fit) resumes that run on its ref rather than start another."""

from __future__ import annotations

from typing import Any

from gitexp.tracking.liverun import Run
from gitexp.tracking.run import active_run, start_run


class RunHolder:
    def __init__(self, run: Run | None = None, **start: Any) -> None:
        """run: the run to log into; *start*: start_run's arguments for a run of its own."""
        self._given = run
        self._start = {key: value for key, value in start.items() if value is not None}
        self._run: Run | None = None
        self.owned = False
        self.last: Run | None = None  # the run logged into last, ended or not
        self._owned_last = False

    @property
    def started(self) -> bool:
        return self._run is not None

    def get(self, **more: Any) -> Run:
        """The run, started with start_run(**start, **more) if there is none to log into."""
        if self._run is not None and not self._run.ended:
            return self._run
        if self._given is not None:
            self._run, self.owned = self._given, False
        elif (current := active_run()) is not None and not current.ended:
            self._run, self.owned = current, False
        elif self.last is not None and self.last.ended and self.last.id and self._owned_last:
            self._run, self.owned = start_run(resume=self.last.id, **more), True
        else:
            self._run, self.owned = start_run(**{**self._start, **more}), True
        self.last, self._owned_last = self._run, self.owned
        return self._run

    def end(self, status: str = "FINISHED", error: BaseException | None = None) -> None:
        """End the run if this holder started it (a run given or found is its owner's to end)."""
        run, self._run = self._run, None
        if run is not None and self.owned and not run.ended:
            run.end(status, error)
        self.owned = False
