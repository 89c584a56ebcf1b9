"""A one-line progress bar on stderr for the long measuring commands (``eval``)."""

from __future__ import annotations

import sys
import time


class Progress:
    """A one-line progress bar on stderr (silent when not a terminal or --quiet)."""

    def __init__(self, total: int, label: str, enabled: bool) -> None:
        self.total, self.label, self.done = total, label, 0
        self.enabled = enabled and sys.stderr.isatty()
        self.start = time.monotonic()

    def step(self) -> None:
        self.done += 1
        if self.enabled and (self.done == self.total or self.done % 5 == 0):
            frac = self.done / max(self.total, 1)
            bar = "#" * int(30 * frac)
            rate = self.done / max(time.monotonic() - self.start, 1e-9)
            sys.stderr.write(f"\r{self.label} [{bar:30}] {self.done}/{self.total} {rate:.1f}/s")
            if self.done == self.total:
                sys.stderr.write("\n")
            sys.stderr.flush()
