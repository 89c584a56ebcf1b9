"""``facegate bench --soak MINUTES``: does the daemon leak over hours of work?

The real daemon (``facegate run`` as a child process, simulated GPIO, a private state dir)
replays a clip in a loop, with the clip's person enrolled so that every pass is a walk-up,
a grant, a relock and a cooldown, as a busy door sees them. Its resident memory and open
file descriptors are read from ``/proc/<pid>`` every ``interval`` seconds. The report is
the least-squares slope after a warm-up (the first fifth of the run: model arenas, caches
and the event log's first pages settle there), in MiB and descriptors per hour: a leak is a
slope, noise is not.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

#: the share of the samples treated as warm-up and left out of the slopes
WARMUP_SHARE = 0.2


@dataclass
class SoakSample:
    """One reading of the daemon: seconds since start, RSS in MiB, open descriptors."""

    seconds: float
    rss_mib: float
    fds: int


@dataclass
class SoakReport:
    samples: list[SoakSample] = field(default_factory=list)
    exit_code: int | None = None
    grants: int = 0

    def slope(self, attribute: str) -> float | None:
        """Least-squares slope per hour of ``attribute`` after the warm-up."""
        kept = self.samples[int(len(self.samples) * WARMUP_SHARE) :]
        if len(kept) < 3:
            return None
        hours = np.array([s.seconds for s in kept]) / 3600.0
        values = np.array([getattr(s, attribute) for s in kept], dtype=np.float64)
        return float(np.polyfit(hours, values, 1)[0])

    def as_dict(self) -> dict[str, Any]:
        return {
            "samples": [vars(s) for s in self.samples],
            "rss_mib_per_hour": self.slope("rss_mib"),
            "fds_per_hour": self.slope("fds"),
            "warmup_share": WARMUP_SHARE,
            "grants": self.grants,
            "exit_code": self.exit_code,
        }


def read_process(pid: int) -> tuple[float, int]:
    """(resident MiB, open descriptors) of ``pid`` from ``/proc``."""
    rss_kib = 0
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                rss_kib = int(line.split()[1])
                break
    return rss_kib / 1024.0, len(os.listdir(f"/proc/{pid}/fd"))


def soak(
    clip: Path,
    photo: Path,
    name: str,
    minutes: float,
    interval: float = 60.0,
    say: Callable[[str], None] = lambda _: None,
) -> SoakReport:
    """Run the daemon on ``clip`` in a loop for ``minutes``, sampling every ``interval`` s."""
    report = SoakReport()
    with tempfile.TemporaryDirectory(prefix="facegate-soak-") as tmp:
        state = Path(tmp)
        os.chmod(state, 0o700)
        config = state / "config.yaml"
        config.write_text(
            "camera:\n  type: replay\n  detect_width: 320\n  replay:\n"
            f"    path: {clip}\n    fps: 15\n    loop: true\n"
        )
        base = [sys.executable, "-m", "pi_facegate"]
        common = ["--config", str(config), "--state-dir", str(state)]
        subprocess.run(
            [*base, "enroll", name, str(photo), *common], check=True, capture_output=True
        )
        daemon = subprocess.Popen(
            [*base, "run", "--simulate-gpio", *common],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            _wait_until_started(daemon, state / "events.db")
            _sample(daemon, report, minutes * 60.0, interval, say)
        finally:
            daemon.send_signal(signal.SIGTERM)
            try:
                report.exit_code = daemon.wait(30)
            except subprocess.TimeoutExpired:
                daemon.kill()
                report.exit_code = daemon.wait()
        report.grants = _grants(state / "events.db")
    return report


def _wait_until_started(daemon, events: Path, timeout: float = 120.0) -> None:
    """Until the daemon logged ``started`` (models loaded, camera open): samples before
    that measure the interpreter starting up, not the door."""
    from pi_facegate.storage.events import EventLog

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if daemon.poll() is not None:
            raise RuntimeError(f"the daemon stopped at start (status {daemon.returncode})")
        if events.exists() and EventLog(events).query(kinds=["started"]):
            return
        time.sleep(0.2)
    raise RuntimeError(f"the daemon did not start within {timeout:.0f} s")


def _sample(daemon, report: SoakReport, seconds: float, interval: float, say) -> None:
    start = time.monotonic()
    while True:
        elapsed = time.monotonic() - start
        if daemon.poll() is not None:
            raise RuntimeError(
                f"the daemon stopped after {elapsed:.0f} s (status {daemon.returncode})"
            )
        rss, fds = read_process(daemon.pid)
        report.samples.append(SoakSample(round(elapsed, 1), round(rss, 2), fds))
        say(f"  {elapsed / 60:5.1f} min: RSS {rss:7.1f} MiB, {fds} open descriptors")
        if elapsed >= seconds:
            return
        time.sleep(min(interval, max(0.0, seconds - elapsed)))


def _grants(events: Path) -> int:
    from pi_facegate.storage.events import EventLog

    return sum(e.kind == "granted" for e in EventLog(events).query())
