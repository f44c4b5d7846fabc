"""Waiting on a condition of the page, under the page's real CSP (no eval: Playwright's
wait_for_function is not available there)."""

from __future__ import annotations

import time
from typing import Any

from playwright.sync_api import Error as PlaywrightError


def until(page, predicate: str, arg: Any = None, timeout: float = 20.0) -> Any:  # type: ignore[no-untyped-def]
    """Evaluate ``predicate`` (a function of ``arg``) until it returns something true; return it.
    A page that is navigating meanwhile is asked again."""
    end = time.monotonic() + timeout
    while True:
        try:
            value = page.evaluate(predicate, arg)
            if value:
                return value
        except PlaywrightError:
            pass
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {predicate}")
        page.wait_for_timeout(
            50
        )  # the interval between two looks, not a pause to let things happen


class Quiet:
    """Count a page's requests in flight (from Playwright's side), to wait until the page has
    fetched all it asked for."""

    def __init__(self, page) -> None:  # type: ignore[no-untyped-def]
        self.page, self.open = page, 0
        page.on("request", self._start)
        page.on("requestfinished", self._end)
        page.on("requestfailed", self._end)

    def _start(self, _request) -> None:  # type: ignore[no-untyped-def]
        self.open += 1

    def _end(self, _request) -> None:  # type: ignore[no-untyped-def]
        self.open = max(0, self.open - 1)

    def wait(self, timeout: float = 20.0) -> None:
        """Wait until no request is in flight, the document and its images are loaded (an image
        that failed counts: its error event is due), and the page's queued tasks have run."""
        end = time.monotonic() + timeout
        while True:
            if self.open == 0 and self.page.evaluate(
                "() => document.readyState === 'complete'"
                " && Array.from(document.images).every((i) => i.complete)"
            ):
                # One frame and one task later, the events queued by those loads have fired.
                self.page.evaluate(
                    "() => new Promise((r) => requestAnimationFrame(() => setTimeout(r, 0)))"
                )
                if self.open == 0:
                    return
            if time.monotonic() > end:
                raise AssertionError(f"{self.open} requests still in flight")
            self.page.wait_for_timeout(50)  # the interval between two looks
