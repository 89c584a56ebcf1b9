"""Keep the native libraries' log chatter off the terminal and the journal.

MediaPipe, LiteRT and TensorFlow Lite log from C++ straight to file descriptor 2, whatever
Python's logging says: ``INFO: Created TensorFlow Lite XNNPACK delegate for CPU.``,
``INFO: [accelerator_registry.cc:54] RegisterAccelerator ...``, absl's ``WARNING: All log
messages before absl::InitializeLog() ...`` and glog-style ``W0000 00:00:... file.cc:N]``
lines. The environment variables those libraries read (``GLOG_minloglevel``,
``TF_CPP_MIN_LOG_LEVEL``, set by :func:`pi_facegate.cli.native_environment`) catch only some
of it: absl logs before its flags are parsed and TFLite's minimal logger reads no variable.

So the ``facegate`` command (not ``main()``, which tests call in-process) points fd 2 at a
pipe before any of those libraries is imported (:func:`install`). A reader thread passes each
line on to the real stderr unless it is one of those informational or warning lines; error
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
import sys
import threading
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
    """Pass native lines from now on (the config's ``logging.level`` is DEBUG)."""
    _shown.set()


def _passing_all() -> bool:
    return _shown.is_set() or logging.getLogger().isEnabledFor(logging.DEBUG)


class NativeLogFilter:
    """Owns fd 2 for the process while installed: a pipe read by a thread that drops noise.

    ``install()`` and ``close()`` are idempotent; ``close()`` puts the real stderr back on
    fd 2 and waits (at most :data:`DRAIN_SECONDS`) until what was written before is passed
    on, so the last lines of a failing command are never lost.
    """

    def __init__(self) -> None:
        self._saved: int | None = None  # a copy of the real stderr
        self._read: int | None = None
        self._thread: threading.Thread | None = None
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
        os.dup2(write, 2)
        os.close(write)
        self._saved, self._read = saved, read
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
        self._thread = threading.Thread(target=self._pump, name="NativeLogFilter", daemon=True)
        self._thread.start()

    def close(self) -> None:
        if not self.installed or self._closing:
            return
        self._closing = True
        try:
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
        os.dup2(self._saved, 2)  # the pipe's last writer is gone: the reader drains it, stops
        if self._thread is not None:
            self._thread.join(DRAIN_SECONDS)
            if self._thread.is_alive():  # a child process still holds the pipe: leave it be
                return
        os.close(self._saved)
        self._saved = None
        if self._python_stderr is not None:
            sys.stderr = self._python_stderr  # writes to fd 2, the real stderr again

    def _pump(self) -> None:
        """Pass on every line that is not noise, until the pipe is closed."""
        pending = b""
        while True:
            if pending:
                ready, _, _ = select.select([self._read], [], [], PARTIAL_LINE_SECONDS)
                if not ready:  # an unfinished line that stays unfinished: pass it on
                    self._forward(pending)
                    pending = b""
                    continue
            chunk = os.read(self._read, 65536)
            if not chunk:
                break
            *lines, pending = (pending + chunk).split(b"\n")
            for line in lines:
                self._forward(line + b"\n")
        if pending:
            self._forward(pending)
        os.close(self._read)

    def _forward(self, data: bytes) -> None:
        text = data.decode("utf-8", "replace")
        if is_noise(text) and not _passing_all():
            return
        try:
            os.write(self._saved, data)
        except OSError:
            pass


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
