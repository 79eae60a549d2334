"""Progress of a static run: a rich bar with the rate and the time left, or nothing.

The runner reports through the :class:`Progress` protocol; :class:`RichProgress` draws one bar
(samples done of all samples, samples per second, how many came from the cache, ETA) on stderr
when it is a terminal (scripts and logs get no bar, and an error stays one line).
"""

from __future__ import annotations

from types import TracebackType
from typing import Protocol, Self

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.progress import Progress as _RichBar
from rich.text import Text

__all__ = ["NullProgress", "Progress", "RichProgress"]


class Progress(Protocol):
    """What the runner tells about its progress."""

    def start(self, total: int) -> None:
        """The run has ``total`` samples (done ones included)."""
        ...

    def advance(self, cached: bool) -> None:
        """One sample finished (``cached``: without a model call)."""
        ...

    def stop(self) -> None:
        """The run ended."""
        ...


class NullProgress:
    """Reports nothing."""

    def start(self, total: int) -> None:
        """Ignore the total."""

    def advance(self, cached: bool) -> None:
        """Ignore a finished sample."""

    def stop(self) -> None:
        """Nothing to stop."""


class _RateColumn(ProgressColumn):
    """Samples per second, over rich's recent window."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("-- samples/s" if speed is None else f"{speed:,.1f} samples/s")


class RichProgress:
    """One rich progress bar on stderr (a context manager, or start/stop)."""

    def __init__(self, description: str = "static run", *, console: Console | None = None) -> None:
        """Prepare the bar; it is drawn only when ``console`` (default: stderr) is a terminal."""
        console = console or Console(stderr=True)
        self._bar = _RichBar(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            _RateColumn(),
            TextColumn("{task.fields[cached]} cached"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console,
            transient=False,
            disable=not console.is_terminal,
        )
        self._description = description
        self._task: TaskID | None = None
        self._cached = 0

    def start(self, total: int) -> None:
        """Show the bar for ``total`` samples."""
        self._task = self._bar.add_task(self._description, total=total, cached=0)
        self._bar.start()

    def advance(self, cached: bool) -> None:
        """Count one finished sample."""
        if self._task is None:
            return
        self._cached += int(cached)
        self._bar.update(self._task, advance=1, cached=self._cached)

    def stop(self) -> None:
        """Draw the final state and release the terminal."""
        self._bar.stop()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
