"""Progress for the waits outside training loops (decoding a folder, reading many pictures): a rich bar on a
terminal, a plain line every few seconds anywhere else (a log file would fill with redrawn bars). On
stderr, so that results printed on stdout (`predict`'s) stay clean when piped."""

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
)

LINE_EVERY_S = 5.0
# Below this many items a wait is too short to be worth a bar.
SHOWN_FROM = 1000


@contextmanager
def progress(description: str, total: int, unit: str = "pictures") -> Iterator[Callable[[int], None]]:
    """A function to call with the number of items just done; shows nothing for fewer than ``SHOWN_FROM`` items."""
    if total < SHOWN_FROM:
        yield lambda done: None
        return
    if sys.stderr.isatty():
        columns = (TextColumn(description), BarColumn(), MofNCompleteColumn(), TextColumn(unit), TimeRemainingColumn())
        with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
            task = bar.add_task(description, total=total)
            yield lambda done: bar.advance(task, done)
        return
    state = {"done": 0, "shown": time.monotonic()}

    def advance(done: int) -> None:
        state["done"] += done
        now = time.monotonic()
        if now - state["shown"] >= LINE_EVERY_S or state["done"] == total:
            print(f"{description}: {state['done']:,} of {total:,} {unit}", file=sys.stderr, flush=True)
            state["shown"] = now

    yield advance
