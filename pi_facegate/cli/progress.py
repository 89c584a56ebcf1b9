"""A one-line progress bar on stderr for the long measuring commands (``eval``).

The bar is tqdm's (rate, elapsed and remaining time, a terminal's width), behind the small
interface the commands use, so that a command never deals with tqdm's options itself.
"""

from __future__ import annotations

import sys

from tqdm import tqdm


class Progress:
    """A one-line progress bar on stderr (silent when not a terminal or --quiet).

    :param total: how many steps make the whole job
    :param label: what is being done, shown before the bar
    :param enabled: False for ``--quiet``; a stderr that is not a terminal (a pipe, the
        journal, a test's capture) never gets a bar either, so logs are not filled with
        carriage returns
    """

    def __init__(self, total: int, label: str, enabled: bool) -> None:
        self.total, self.label, self.done = total, label, 0
        self.enabled = enabled and sys.stderr.isatty()
        self._bar = (
            tqdm(total=total, desc=label, file=sys.stderr, unit="", dynamic_ncols=True, leave=True)
            if self.enabled
            else None
        )

    def step(self) -> None:
        """One step done; the bar closes (ends its line) at the last."""
        self.done += 1
        if self._bar is None:
            return
        self._bar.update(1)
        if self.done >= self.total:
            self.close()

    def close(self) -> None:
        """End the bar's line (also when a job stops early); idempotent."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
