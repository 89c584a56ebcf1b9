"""The fault suite's tools: start the daemon, read what it left behind, judge it.

The daemon runs as ``facegate run --simulate-gpio`` in its own process through
``door_probe.py`` (``facegate run`` plus a record of every level the simulated relay pin
took, and a way to press the enrolment button); :class:`Daemon` starts it, talks to it and
reads its event log, stderr and pin record. Three proofs follow every fault
(``conftest.py`` says which):

1. **the door** (:func:`door_verdict`): the relay pin was energised only for a genuine grant
   (an ``unlocked`` event with reason ``face`` for an enrolled person, next to its
   ``granted`` event), as often as the test expects, and it is locked at the end;
2. **the data** (:func:`gallery_snapshot`, :func:`events_snapshot`, :func:`data_verdict`):
   the gallery's people and embeddings and the event log's earlier events are all still
   there, byte for byte, and both files pass SQLite's ``integrity_check``;
3. **a clear message** (:func:`assert_clear`): the daemon's stderr (what the journal gets)
   names the problem and holds no Python traceback.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pi_facegate.storage.events import EventLog

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
PROBE = HERE / "door_probe.py"
WAIT = 90.0  # seconds an awaited event may take on a slow, busy 2-core machine
LIN = "Lin-Manuel Miranda"
RELAY = "GPIO17"  # door.relay.pin of the default config, active high, fail-secure


def _sibling(relative: str, name: str):
    """A helper module of another test folder, loaded by path (``tests/`` is no package)."""
    spec = importlib.util.spec_from_file_location(name, HERE.parent / relative)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# the daemon tests' own helpers: Lin-Manuel Miranda's close-up frames, the NOTIFY_SOCKET
_daemon_conftest = _sibling("daemon/conftest.py", "faults_daemon_conftest")
_daemon_tests = _sibling("daemon/test_daemon.py", "faults_daemon_tests")
hamilton_frames = _daemon_conftest.hamilton_frames
NotifyListener = _daemon_tests.NotifyListener


def replay_config(state: Path, frames: Path, extra: str = "", fps: float = 20) -> Path:
    """``state/config.yaml``: ``frames`` replayed in a loop at ``fps`` as the camera."""
    path = state / "config.yaml"
    path.write_text(
        f"camera:\n  type: replay\n  detect_width: 320\n  replay:\n    path: {frames}\n"
        f"    fps: {fps:g}\n    loop: true\n{extra}"
    )
    return path


# --------------------------------------------------------------------------- processes


def environment(**extra: str) -> dict[str, str]:
    """This environment without a NOTIFY_SOCKET, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC")}
    env.update(extra)
    return env


def facegate(state: Path, *words: str, timeout: float = WAIT) -> subprocess.CompletedProcess:
    """``facegate WORDS... --config state/config.yaml --state-dir state`` as a process."""
    command = [sys.executable, "-m", "pi_facegate", *words]
    command += ["--config", str(state / "config.yaml"), "--state-dir", str(state)]
    return subprocess.run(
        command, capture_output=True, text=True, timeout=timeout, env=environment(), cwd=REPO
    )


class Daemon:
    """``facegate run --simulate-gpio`` on ``state`` as its own process (``door_probe.py``).

    stderr goes to ``state/../daemon-N.err`` (a file, so a chatty daemon never blocks on a
    full pipe); the simulated pins' levels to ``state/../pins-N.log``.
    """

    count = 0

    def __init__(self, state: Path, notify: NotifyListener | None = None) -> None:
        Daemon.count += 1
        self.state = state
        self.events_db = state / "events.db"
        self.stderr_path = state.parent / f"daemon-{Daemon.count}.err"
        self.pins_path = state.parent / f"pins-{Daemon.count}.log"
        extra = {"FACEGATE_PROBE_PINS": str(self.pins_path)}
        if notify is not None:
            extra["NOTIFY_SOCKET"] = str(notify.path)
        command = [sys.executable, str(PROBE), "run", "--simulate-gpio"]
        command += ["--config", str(state / "config.yaml"), "--state-dir", str(state)]
        self._stderr = open(self.stderr_path, "w")  # noqa: SIM115 - closed in wait()
        self.proc = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=self._stderr,
            text=True,
            env=environment(**extra),
            cwd=REPO,
        )
        self.started_at = time.time()

    # -- talking to it
    def press(self, pin: int) -> None:
        """Press and release the button on GPIO ``pin`` (the enrolment button)."""
        self.proc.stdin.write(f"press {pin}\n")
        self.proc.stdin.flush()

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def wait(self, timeout: float = WAIT) -> int:
        try:
            return self.proc.wait(timeout)
        finally:
            if self.proc.poll() is not None:
                self._stderr.close()
                if self.proc.stdin:
                    self.proc.stdin.close()

    def stop(self, timeout: float = WAIT) -> int:
        """SIGTERM, as ``systemctl stop`` does; the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.wait(timeout)

    def kill(self) -> None:
        """Leave nothing running (teardown)."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.wait()

    # -- what it left behind
    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def events(self) -> list:
        """Every event in the log, oldest first (read-only, as ``facegate events``)."""
        if not self.events_db.exists():
            return []
        with EventLog(self.events_db) as log:
            return log.query()

    def wait_for(
        self,
        kind: str,
        where: Callable[[Any], bool] = lambda e: True,
        since: float = 0.0,
        timeout: float = WAIT,
    ):
        """The first ``kind`` event from ``since`` (epoch seconds) on that fits ``where``."""
        deadline = time.monotonic() + timeout
        while True:
            ended = self.proc.poll() is not None or time.monotonic() > deadline
            for event in self.events():
                if event.kind == kind and event.time >= since and where(event):
                    return event
            if ended:
                break
            time.sleep(0.1)
        raise AssertionError(
            f"no {kind!r} event (daemon exit status {self.proc.poll()}); events: "
            f"{[e.kind for e in self.events()]}; stderr tail:\n{self.stderr[-2000:]}"
        )

    def relay(self) -> list[tuple[float, bool]]:
        """``(unix time, energised)`` for every change of the relay pin, in order."""
        return relay_states(self.pins_path)


class TimedListener(NotifyListener):
    """The daemon tests' NOTIFY_SOCKET, read all the time by a thread of its own.

    A datagram socket's receive queue is short (``net.unix.max_dgram_qlen``, 10 by default)
    and the daemon drops what does not fit, so nothing here waits for the test to read:
    every line is taken at once and remembered with the time it came.
    """

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.timed: list[tuple[float, str]] = []
        self._changed = threading.Condition()
        self._closing = False
        self.sock.settimeout(0.2)
        self._thread = threading.Thread(target=self._serve, name="notify", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._closing:
            try:
                data = self.sock.recv(4096).decode()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._changed:
                now = time.time()
                for line in data.splitlines():
                    self.received.append(line)
                    self.timed.append((now, line))
                self._changed.notify_all()

    def wait_for(self, line: str, timeout: float = WAIT) -> None:
        with self._changed:
            if not self._changed.wait_for(lambda: line in self.received, timeout):
                raise AssertionError(f"no {line!r} from the daemon; got {self.received[-20:]}")

    def last(self, line: str) -> float | None:
        """When ``line`` last came, or None."""
        with self._changed:
            times = [t for t, text in self.timed if text == line]
        return times[-1] if times else None

    def close(self) -> None:
        self._closing = True
        self._thread.join(5)
        super().close()


# --------------------------------------------------------------------------- the proofs


def relay_states(pins_log: Path, pin: str = RELAY) -> list[tuple[float, bool]]:
    """The relay's ``(time, energised)`` changes from a ``door_probe`` pin record."""
    states: list[tuple[float, bool]] = []
    if not pins_log.exists():
        return states
    for line in pins_log.read_text().splitlines():
        stamp, name, function, level = line.split()
        if name != pin:
            continue
        energised = function == "output" and level == "1"
        if not states or states[-1][1] != energised:
            states.append((float(stamp), energised))
    return states


def door_verdict(
    relay: list[tuple[float, bool]],
    events: list,
    enrolled: set[str],
    grants: int | None = None,
    locked_at_end: bool = True,
    may_be_untouched: bool = False,
) -> str:
    """Proof 1: every time the relay was energised, an enrolled person had been granted.

    Each energised edge must have its ``unlocked`` event (reason ``face``, an enrolled
    person, within a second) and that person's ``granted`` event; there must be as many
    edges as first unlocks (an ``extended`` unlock prolongs a pulse, it is no new edge);
    with ``grants``, exactly that many; with ``locked_at_end``, the last level is locked.
    With ``may_be_untouched`` a daemon that refused to start before it set up the door (no
    record of the relay pin at all) passes too. Returns the table's door cell.
    """
    if may_be_untouched and not relay:
        assert not [e for e in events if e.kind in ("unlocked", "granted")]
        return "locked: the relay was never driven (refused before the door was set up)"
    assert relay, "the relay pin was never set up: no record of the door"
    assert relay[0][1] is False, "the relay came up energised"
    edges = [t for t, energised in relay if energised]
    unlocks = [e for e in events if e.kind == "unlocked" and not e.detail.get("extended")]
    granted = [e for e in events if e.kind == "granted"]
    assert len(edges) == len(unlocks), (edges, [(u.time, u.person) for u in unlocks])
    for edge, unlock in zip(edges, unlocks, strict=True):
        assert abs(unlock.time - edge) < 1.0, (edge, unlock)
        assert unlock.detail.get("reason") == "face" and unlock.person in enrolled, unlock
        assert any(g.person == unlock.person and abs(g.time - unlock.time) < 1.0 for g in granted)
    if grants is not None:
        assert len(edges) == grants, f"{len(edges)} pulses, expected {grants}"
    if locked_at_end:
        assert relay[-1][1] is False, "the relay was left energised"
    who = ", ".join(sorted({u.person for u in unlocks}))
    n = len(edges)
    pulses = {0: "0 pulses", 1: f"1 pulse for a grant of {who}"}.get(
        n, f"{n} pulses, each for a grant of {who}"
    )
    return f"locked ({pulses})" if locked_at_end else pulses


def assert_clear(stderr: str, *needles: str) -> str:
    """Proof 3: stderr names the problem (each of ``needles``) and holds no traceback.

    Returns the first line that holds the first needle (for the table)."""
    assert "Traceback" not in stderr, "a Python traceback in stderr:\n" + stderr[-4000:]
    for needle in needles:
        assert needle in stderr, f"{needle!r} not in stderr:\n{stderr[-3000:]}"
    if not needles:
        return ""
    line = next(line for line in stderr.splitlines() if needles[0] in line)
    return line.split(": ", 1)[-1] if " pi_facegate." in line else line


def _ro(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True)


def integrity(path: Path) -> str:
    with _ro(path) as conn:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]


def gallery_snapshot(path: Path) -> dict[str, tuple]:
    """Proof 2, the gallery: ``{name: (enabled, pending, (embedding bytes, ...))}``.

    Read-only, after ``integrity_check``; no person may lack embeddings and no embedding
    may lack its person (one transaction per change, even under ``kill -9``).
    """
    assert integrity(path) == "ok"
    conn = _ro(path)
    try:
        people = conn.execute("SELECT id, name, enabled, pending FROM people").fetchall()
        vectors: dict[int, list[bytes]] = {}
        for pid, blob in conn.execute("SELECT person_id, vector FROM embeddings ORDER BY id"):
            vectors.setdefault(pid, []).append(bytes(blob))
    finally:
        conn.close()
    assert set(vectors) <= {p[0] for p in people}, "embeddings without a person"
    assert all(p[0] in vectors for p in people), "a person without embeddings"
    return {name: (bool(e), bool(p), tuple(vectors[pid])) for pid, name, e, p in people}


def events_snapshot(path: Path) -> list[tuple]:
    """Proof 2, the event log: every row as stored, oldest first, after ``integrity_check``."""
    assert integrity(path) == "ok"
    conn = _ro(path)
    try:
        return conn.execute(
            "SELECT id, time, kind, person, distance, margin, detail FROM events ORDER BY id"
        ).fetchall()
    finally:
        conn.close()


def data_verdict(
    gallery_before: dict, gallery_after: dict, events_before: list, events_after: list
) -> str:
    """Proof 2: the gallery is unchanged and the earlier events are a prefix of the log."""
    assert gallery_after == gallery_before, (sorted(gallery_before), sorted(gallery_after))
    assert events_after[: len(events_before)] == events_before, "earlier events changed"
    people = len(gallery_after)
    vectors = sum(len(v[2]) for v in gallery_after.values())
    return (
        f"gallery unchanged ({people} {'person' if people == 1 else 'people'}, {vectors} "
        f"embedding{'' if vectors == 1 else 's'}); {len(events_before)} earlier events kept, "
        f"{len(events_after) - len(events_before)} added"
    )
