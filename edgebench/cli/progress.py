"""A rich progress bar fed by the agent's events (time-based in performance mode,
sample-based in accuracy mode)."""

from __future__ import annotations

from types import TracebackType

from rich.progress import (
    BarColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from .render import stderr


class RunProgress:
    """One bar per run; `handle` is the device's event callback."""

    def __init__(self, label: str, enabled: bool = True) -> None:
        self.label = label
        self.enabled = enabled
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[detail]}"),
            TimeElapsedColumn(),
            console=stderr,
            transient=True,
            disable=not enabled,
        )
        self._task: TaskID | None = None

    def __enter__(self) -> RunProgress:
        self._progress.__enter__()
        self._task = self._progress.add_task(self.label, total=None, detail="starting")
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._progress.__exit__(kind, error, trace)

    def handle(self, event: dict) -> None:
        if self._task is None:
            return
        kind = event.get("event")
        if kind == "phase":
            self._progress.update(self._task, detail=str(event.get("phase")))
        elif kind == "progress":
            queries = int(event.get("queries", 0))
            expected_queries = int(event.get("expected_queries") or 0)
            if expected_queries:
                self._progress.update(
                    self._task,
                    total=expected_queries,
                    completed=queries,
                    detail=f"{queries}/{expected_queries} samples",
                )
            else:
                expected = float(event.get("expected_s") or 0) or None
                elapsed = float(event.get("elapsed_s", 0))
                completed = min(elapsed, expected) if expected else elapsed
                self._progress.update(
                    self._task, total=expected, completed=completed, detail=f"{queries:,} queries"
                )
