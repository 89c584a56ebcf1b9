"""Keep the native libraries' log chatter off the terminal and the journal.

MediaPipe, LiteRT and TensorFlow Lite log from C++ straight to file descriptor 2, whatever
Python's logging says: ``INFO: Created TensorFlow Lite XNNPACK delegate for CPU.``,
``INFO: [accelerator_registry.cc:54] RegisterAccelerator ...``, absl's ``WARNING: All log
messages before absl::InitializeLog() ...`` and glog-style ``W0000 00:00:... file.cc:N]``
lines. The environment variables those libraries read (``GLOG_minloglevel``,
``TF_CPP_MIN_LOG_LEVEL``, set by :func:`pi_facegate.cli.native_environment`) catch only some
of it: absl logs before its flags are parsed and TFLite's minimal logger reads no variable.

So the ``facegate`` command (not ``main()``, which tests call in-process) points fd 2 at a
pipe before any of those libraries is imported (:func:`install`). A filter process (forked
then, so that it outlives a native crash) passes each line on to the real stderr unless it is one of those informational or warning lines; error
and fatal lines (``ERROR:``, ``E0000 ...``, ``F0000 ...``) and everything else always pass.
Python's own ``sys.stderr`` writes to the real stderr directly, so the terminal stays a
terminal (progress bars, ``isatty()``) and our log lines keep their order.

Native lines are shown again with ``FACEGATE_NATIVE_LOGS=1`` (then nothing is filtered and
the libraries' own log levels are left at theirs), with ``logging.level: DEBUG`` in the
config (:func:`show`), or when the root logger logs DEBUG (``-vv``, ``facegate run -v``).
"""

from __future__ import annotations

import atexit
import logging
import os
import re
import select
import signal
import sys
import threading
import time
from typing import TextIO

ENV_VAR = "FACEGATE_NATIVE_LOGS"
#: seconds an unfinished line may wait for its newline before it is passed on as it is
PARTIAL_LINE_SECONDS = 0.2
#: seconds the exit waits for the reader to pass on what is still in the pipe
DRAIN_SECONDS = 2.0

# What the native libraries print at INFO and WARNING level (never their errors):
#  * glog/absl lines: severity letter, mmdd, time, thread id, file:line]
#  * TFLite/LiteRT minimal logger: "INFO: ...", "VERBOSE: ...", "WARNING: [file.cc:N] ..."
#  * absl's and glog's notes that they log to stderr before being initialised
#  * OpenCV's "[ WARN:0@0.276] global cap_v4l.cpp:915 ..." lines
_NOISE = re.compile(
    r"(?:[IW]\d{4} [\d:.]+\s+\d+ [\w.+-]+:\d+\] )"
    r"|(?:INFO|VERBOSE): "
    r"|WARNING: \[[\w.+-]+:\d+\] "
    r"|WARNING: All log messages before absl::InitializeLog\(\) is called"
    r"|WARNING: Logging before InitGoogle\(\) is written to STDERR"
    r"|\[ (?:WARN|INFO):\d"  # OpenCV's own log (OPENCV_LOG_LEVEL=ERROR normally stops it)
)

_shown = threading.Event()  # set: pass every line (logging.level: DEBUG)


def wanted() -> bool:
    """True when ``FACEGATE_NATIVE_LOGS`` asks for the native libraries' own logs."""
    return os.environ.get(ENV_VAR, "").strip().lower() in ("1", "true", "yes", "on")


def is_noise(line: str) -> bool:
    """Whether ``line`` is a native library's informational or warning line."""
    return _NOISE.match(line) is not None


def show() -> None:
    """Pass native lines from now on (the config's ``logging.level`` is DEBUG, or ``-vv``)."""
    if not _shown.is_set():
        _shown.set()
        _FILTER.show_all()


def _passing_all() -> bool:
    return _shown.is_set() or logging.getLogger().isEnabledFor(logging.DEBUG)


#: written into the pipe by :func:`show`: the filter passes everything from then on
_SHOW_ALL = b"\x00facegate:show-native-logs\n"


class NativeLogFilter:
    """Owns fd 2 for the process while installed: a pipe read by a filter process.

    The reader is a forked child, not a thread: when a native library ends the process
    (a failed check's ``F0000`` line, then ``abort()``; MediaPipe's "compiled with lse
    enabled" line, then SIGILL on a Pi 4), a thread dies with it and the library's last
    words die in the pipe, while a child reads on until the pipe's last writer is gone and
    passes them on. The child ignores SIGINT, SIGTERM and SIGHUP (it ends at end of file, so
    a ``systemctl stop`` does not cut off the daemon's last lines) and never runs Python's
    exit handlers. ``install()`` and ``close()`` are idempotent; ``close()`` puts the real
    stderr back on fd 2 and waits (at most :data:`DRAIN_SECONDS`) for the child to pass on
    what was written before, so the last lines of a failing command are never lost.
    """

    def __init__(self) -> None:
        self._saved: int | None = None  # a copy of the real stderr
        self._child: int | None = None
        self._python_stderr: TextIO | None = None
        self._closing = False

    @property
    def installed(self) -> bool:
        return self._saved is not None

    def install(self) -> None:
        if self.installed:
            return
        sys.stderr.flush()
        saved = os.dup(2)
        read, write = os.pipe()
        child = os.fork()
        if child == 0:  # the filter: reads until every writer is gone, then leaves quietly
            os.close(write)
            _run_filter(read, saved)
        os.close(read)
        os.dup2(write, 2)
        os.close(write)
        self._saved, self._child = saved, child
        # Python writes to the real stderr itself: a terminal stays a terminal for isatty()
        # and tqdm, and the log lines never wait behind the pipe
        self._python_stderr = sys.stderr
        sys.stderr = open(  # noqa: SIM115 - lives as long as the process
            os.dup(saved),
            "w",
            buffering=1,
            encoding=sys.stderr.encoding,
            errors=sys.stderr.errors or "backslashreplace",
        )

    def show_all(self) -> None:
        """Tell the filter to pass every line from now on."""
        if self.installed and not self._closing:
            try:
                os.write(2, _SHOW_ALL)
            except OSError:
                pass

    def close(self) -> None:
        if not self.installed or self._closing:
            return
        self._closing = True
        try:
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
        os.dup2(self._saved, 2)  # our end of the pipe is gone: the filter drains it, stops
        if self._child is not None and not _reaped(self._child, DRAIN_SECONDS):
            return  # a process of ours still holds the pipe: the filter outlives us, fine
        os.close(self._saved)
        self._saved = None
        if self._python_stderr is not None:
            sys.stderr = self._python_stderr  # writes to fd 2, the real stderr again


def _reaped(pid: int, seconds: float) -> bool:
    """Wait up to ``seconds`` for the filter child to end; True once it has."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return True
        if done:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.01)


def _run_filter(read: int, out: int) -> None:
    """The child's whole life: pass on every line that is not noise, then ``_exit``."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    show_all = _passing_all()
    try:
        pending = b""
        while True:
            if pending:
                ready, _, _ = select.select([read], [], [], PARTIAL_LINE_SECONDS)
                if not ready:  # an unfinished line that stays unfinished: pass it on
                    show_all = _forward(pending, out, show_all)
                    pending = b""
                    continue
            chunk = os.read(read, 65536)
            if not chunk:
                break
            *lines, pending = (pending + chunk).split(b"\n")
            for line in lines:
                show_all = _forward(line + b"\n", out, show_all)
        if pending:
            _forward(pending, out, show_all)
    finally:
        os._exit(0)


def _forward(data: bytes, out: int, show_all: bool) -> bool:
    """Write ``data`` to ``out`` unless it is noise; returns whether to pass all from now."""
    if data == _SHOW_ALL:
        return True
    if show_all or not is_noise(data.decode("utf-8", "replace")):
        try:
            os.write(out, data)
        except OSError:
            pass
    return show_all


_FILTER = NativeLogFilter()


def install() -> NativeLogFilter | None:
    """Filter fd 2 for the rest of the process, unless ``FACEGATE_NATIVE_LOGS`` says not to.

    Called by the ``facegate`` entry point before anything imports a native library; the
    filter is taken down at exit.
    """
    if wanted():
        return None
    if not _FILTER.installed:
        try:
            _FILTER.install()
        except (OSError, AttributeError, ValueError):  # no usable stderr: nothing to keep clean
            return None
        atexit.register(_FILTER.close)
    return _FILTER
