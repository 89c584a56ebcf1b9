"""Fault injection (``pytest -m faults``, ``tools/faults.sh``): fixtures and the fault table.

Every test here runs the real daemon as its own process (:class:`faultkit.Daemon`), injects
one fault from outside it -- a camera that hangs or is unplugged, signals, a config, a file
changed under it, a full disk, ``kill -9`` -- and proves what :mod:`faultkit` describes: the
door stayed locked but for genuine grants, nothing saved was lost, and the daemon said
clearly what was wrong. Each test records its row of the table (fault | what happened |
door | data) through the :func:`fault` fixture; :func:`pytest_terminal_summary` prints the
table at the end of the session.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from faultkit import LIN, Daemon, TimedListener, facegate, hamilton_frames

TABLE_ENV = "FACEGATE_FAULTS_TABLE"  # the JSON-lines file every test appends its row to


# --------------------------------------------------------------------------- the table


def pytest_configure(config: pytest.Config) -> None:
    if hasattr(config, "workerinput"):
        return  # an xdist worker: it appends to the controller's file (inherited variable)
    path, created = os.environ.get(TABLE_ENV), False
    if not path:
        fd, path = tempfile.mkstemp(prefix="facegate-faults-", suffix=".jsonl")
        os.close(fd)
        os.environ[TABLE_ENV] = path
        created = True
    config._faults_table = (path, created)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call):
    report = yield
    item.stash.setdefault(_REPORTS, {})[report.when] = report
    return report


_REPORTS = pytest.StashKey[dict]()


@dataclass
class FaultRow:
    """One row of the fault table; a test fills it in as it learns what happened."""

    fault: str
    happened: str = ""
    door: str = ""
    data: str = ""
    order: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


@pytest.fixture
def fault(request: pytest.FixtureRequest) -> Iterator[FaultRow]:
    """The test's row of the fault table, written when the test ends (failed or not)."""
    row = FaultRow(fault=request.node.name, order=request.node.nodeid)
    yield row
    reports = request.node.stash.get(_REPORTS, {})
    failed = [r for r in reports.values() if r.failed]
    skipped = [r for r in reports.values() if r.skipped]
    if skipped and not failed:
        reason = skipped[0].longrepr
        row.happened = "SKIPPED: " + (reason[-1] if isinstance(reason, tuple) else str(reason))
        row.door = row.door or "not run"
        row.data = row.data or "not run"
    if failed:
        reason = failed[0].longrepr
        text = getattr(reason, "reprcrash", None)
        message = text.message if text is not None else str(reason)
        row.door = row.door or "NOT PROVEN"
        row.data = row.data or "NOT PROVEN"
        row.happened = f"TEST FAILED: {message.splitlines()[0][:160]}" + (
            f" (so far: {row.happened})" if row.happened else ""
        )
    path = os.environ.get(TABLE_ENV)
    if path:
        line = json.dumps(
            {k: getattr(row, k) for k in ("order", "fault", "happened", "door", "data")}
        )
        with open(path, "a", encoding="utf-8") as out:
            out.write(line + "\n")


_TMP = re.compile(
    re.escape(tempfile.gettempdir()) + r"/pytest-of-[^/]+/pytest-\d+/(?:popen-gw\d+/)?[^/ ]+/"
)


def _cell(text: str) -> str:
    """One line of markdown, without the tests' temporary directories."""
    return _TMP.sub("", " ".join(str(text).split())).replace("|", "\\|")


def pytest_terminal_summary(terminalreporter, exitstatus, config: pytest.Config) -> None:
    table = getattr(config, "_faults_table", None)
    if table is None:
        return
    path, created = table
    file = Path(path)
    try:
        rows = [json.loads(line) for line in file.read_text().splitlines() if line]
    except FileNotFoundError:
        rows = []
    if created:
        file.unlink(missing_ok=True)
    if not rows:
        return
    rows.sort(key=lambda r: r["order"])
    terminalreporter.section("fault table")
    terminalreporter.write_line("| fault | what happened | door | data |")
    terminalreporter.write_line("| --- | --- | --- | --- |")
    for r in rows:
        cells = (r["fault"], r["happened"], r["door"], r["data"])
        terminalreporter.write_line("| " + " | ".join(_cell(c) for c in cells) + " |")


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def lin_frames(facedata: Path, tmp_path_factory) -> Path:
    """Lin-Manuel Miranda close and alone: 129 frames of the Hamilton clip as PNG files."""
    return hamilton_frames(facedata, tmp_path_factory.mktemp("hamilton"))


@pytest.fixture
def examples(facedata: Path) -> Path:
    return facedata / "face_recognition_examples" / "examples"


PHOTOS = {
    LIN: "lin-manuel-miranda.png",
    "Joe Biden": "biden.jpg",
    "Barack Obama": "obama.jpg",
}


@pytest.fixture(scope="session")
def enrol(facedata: Path, tmp_path_factory) -> Callable[[Path, str], None]:
    """``enrol(state, name)``: ``state`` gets a gallery holding ``name``, from one photo.

    ``facegate enroll`` runs once per person and session; each test gets a copy of the
    files it wrote (gallery and marker, mode 0600), which saves a model load per test.
    """
    made: dict[str, Path] = {}

    def enrol(state: Path, name: str) -> None:
        if name not in made:
            template = tmp_path_factory.mktemp("gallery") / "state"
            template.mkdir(mode=0o700)
            (template / "config.yaml").write_text("camera:\n  detect_width: 320\n")
            photo = facedata / "face_recognition_examples" / "examples" / PHOTOS[name]
            done = facegate(template, "enroll", name, str(photo))
            assert done.returncode == 0, done.stderr
            made[name] = template
        for file in made[name].iterdir():
            if file.name != "config.yaml":
                shutil.copy2(file, state / file.name)

    return enrol


@pytest.fixture
def rng(fault) -> random.Random:
    """A seeded generator for random fault points; the seed is printed and in the table."""
    seed = int(os.environ.get("FACEGATE_FAULTS_SEED") or random.SystemRandom().randrange(10**6))
    print(f"kill -9 points: seed {seed} (FACEGATE_FAULTS_SEED={seed} replays them)")
    fault.extra["seed"] = seed
    return random.Random(seed)


@pytest.fixture
def state(tmp_path: Path) -> Path:
    """The daemon's state dir (gallery, event log, status, arming file), mode 0700."""
    folder = tmp_path / "state"
    folder.mkdir(mode=0o700)
    return folder


@pytest.fixture
def daemons() -> Iterator[Callable[..., Daemon]]:
    """``start(state, notify=None) -> Daemon``: ``facegate run`` on ``state``; whatever is
    still running at the end is killed."""
    started: list[Daemon] = []

    def start(state: Path, notify: TimedListener | None = None) -> Daemon:
        daemon = Daemon(state, notify=notify)
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        daemon.kill()


@pytest.fixture
def notify(tmp_path: Path) -> Iterator[TimedListener]:
    listener = TimedListener(tmp_path / "notify.sock")
    yield listener
    listener.close()
