"""Where a request's time goes, for the ``Server-Timing`` header of tile responses.

``Phases`` sums the time of named phases; ``gc_seconds()`` is the time this process has spent
in Python's garbage collector so far (every thread's), so that a request can tell how much of
its time the collector took.
"""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager


class Phases:
    """Seconds spent in named phases of one request."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - started)

    def add(self, name: str, seconds: float) -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds

    def header(self) -> str:
        """The phases as a ``Server-Timing`` value (milliseconds)."""
        return ", ".join(f"{name};dur={s * 1000:.1f}" for name, s in self.seconds.items())


class _Collector:
    """Time spent in the garbage collector, summed by a ``gc.callbacks`` hook."""

    def __init__(self) -> None:
        self.total = 0.0
        self.started: float | None = None
        self.lock = threading.Lock()
        self.installed = False

    def __call__(self, phase: str, info: dict) -> None:
        if phase == "start":
            self.started = time.perf_counter()
        elif self.started is not None:
            self.total += time.perf_counter() - self.started
            self.started = None

    def install(self) -> None:
        with self.lock:
            if not self.installed:
                gc.callbacks.append(self)
                self.installed = True


COLLECTOR = _Collector()


def gc_seconds() -> float:
    """Seconds this process has spent collecting garbage since the hook was installed."""
    COLLECTOR.install()
    return COLLECTOR.total
