"""Rich progress bars for long loops; silent when stderr is not a terminal (DVC logs, CI)."""

from __future__ import annotations

import contextlib
import sys
from typing import Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

console = Console(stderr=True)


@contextlib.contextmanager
def progress_bar(description: str, total: int) -> Iterator[callable]:
    """Yield an `advance(n)` callable for a bar of `total` steps."""
    if not sys.stderr.isatty():
        yield lambda n=1: None
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n=1: bar.advance(task, n)


def log(message: str) -> None:
    # Messages carry user text (class names, file names): never read it as rich markup.
    console.print(message, highlight=False, markup=False)
