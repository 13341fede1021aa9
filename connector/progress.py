"""A progress display on a terminal (rich), and nothing at all for cron."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol


class Ticker(Protocol):
    """Advances a progress display by some records."""

    def __call__(self, advance: int = 1, *, description: str | None = None) -> None: ...


ENABLED = True  # the CLI turns it off for --quiet and --json


def _noop(advance: int = 1, *, description: str | None = None) -> None:
    return None


@contextmanager
def progress(description: str, total: int | None = None) -> Iterator[Ticker]:
    """A live bar on stderr when it is a terminal; a no-op otherwise."""
    if not (ENABLED and sys.stderr.isatty()):
        yield _noop
        return
    # Imported here: a job without a terminal (cron) never pays for loading rich.
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    columns = [
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    ]
    with Progress(*columns, transient=True) as bar:
        task = bar.add_task(description, total=total)

        def tick(advance: int = 1, *, description: str | None = None) -> None:
            if description is None:
                bar.advance(task, advance)
            else:
                bar.update(task, advance=advance, description=description)

        yield tick
