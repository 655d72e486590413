"""Progress of long steps (tiling, object-oriented labelling, mapping).

Domain code takes a ``Progress`` callback and calls it with ``(done, total)`` as it goes; the
caller decides how to show it: ``LogProgress`` writes a line to a log (the Dagster run log) every
tenth of the way, ``BarProgress`` draws a tqdm bar (the command line).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from types import TracebackType

from tqdm import tqdm

#: Called with the units done so far and the total.
Progress = Callable[[int, int], None]


def no_progress(done: int, total: int) -> None:
    """The default: report nothing."""


def stage(progress: Progress, index: int, count: int) -> Progress:
    """The progress of stage ``index`` of ``count`` equal stages (e.g. two passes over the same
    windows) as a share of the whole: its ``(done, total)`` become ``(index x total + done, count x total)``."""
    def report(done: int, total: int) -> None:
        progress(index * total + done, count * total)
    return report


class LogProgress:
    """Writes ``what: done/total units (percent), rate, ETA`` to ``log`` each time another
    ``step`` of the total is done, and once at the end.

    Args:
        what: What is in progress, e.g. ``"mapping pit_a"``.
        log: Where lines go, e.g. ``context.log.info``.
        unit: What is counted, e.g. ``"windows"``.
        step: The fraction of the total between two lines.
        clock: Seconds, monotonic (a test passes its own).
    """

    def __init__(self, what: str, log: Callable[[str], None], unit: str, step: float = 0.1,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.what, self.log, self.unit, self.step, self.clock = what, log, unit, step, clock
        self.start = clock()
        self.next_fraction = step

    def __call__(self, done: int, total: int) -> None:
        fraction = done / total if total else 1.0
        if fraction < self.next_fraction and done < total:
            return
        while self.next_fraction <= fraction:
            self.next_fraction += self.step
        seconds = max(self.clock() - self.start, 1e-9)
        rate = done / seconds
        eta = (total - done) / rate if rate > 0 else float("inf")
        self.log(f"{self.what}: {done}/{total} {self.unit} ({100 * fraction:.0f} %), {rate:.1f} {self.unit}/s, "
                 + ("done" if done >= total else f"about {eta:.0f} s left"))


class BarProgress:
    """A tqdm progress bar driven by ``(done, total)`` calls; use it as a context manager."""

    def __init__(self, what: str, unit: str, disable: bool = False) -> None:
        self.bar = tqdm(desc=what, unit=f" {unit}", disable=disable, total=None)

    def __call__(self, done: int, total: int) -> None:
        if self.bar.total != total:
            self.bar.total = total
        self.bar.update(done - self.bar.n)

    def __enter__(self) -> BarProgress:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.bar.close()
