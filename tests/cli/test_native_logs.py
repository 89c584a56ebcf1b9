"""The native libraries' log noise stays off stderr, and comes back when asked for.

Run as real processes: the filter owns file descriptor 2, which an in-process test (and
pytest's capture) must not have taken from it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pi_facegate.cli import main
from pi_facegate.cli.native_logs import ENV_VAR, is_noise

NOISE = [
    "INFO: Created TensorFlow Lite XNNPACK delegate for CPU.",
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    "WARNING: Logging before InitGoogle() is written to STDERR",
    "I0000 00:00:1796174073.675548   30632 cudart_stub.cc:31] Could not find cuda drivers on "
    "your machine, GPU will not be used.",
    "W0000 00:00:1796174080.682629   30739 inference_runner_litert.cc:1433] Input tensor memory "
    "is not aligned according to LiteRt's memory alignment requirements.",
    "INFO: [accelerator_registry.cc:54] RegisterAccelerator: ptr=0x7ff518003450, name=Cpu",
    "WARNING: [cpu_registry.cc:75] something",
    "[ WARN:0@0.276] global cap_v4l.cpp:915 open VIDEOIO(V4L2:/dev/video9): can't open camera",
]
KEPT = [
    "ERROR: Didn't find op for builtin opcode 'CONV_2D'",
    "E0000 00:00:1796174080.682629   30739 gl_context.cc:369] EGL: no display",
    "F0000 00:00:1796174080.682629   30739 check.cc:1] Check failed",
    "2026-12-02 01:19:14,358 INFO    pi_facegate.detection.factory: face detector: mediapipe",
    "<6>pi_facegate.events: granted alice",
    "facegate: error: /x.jpg: no such image file",
]

SCRIPT = r"""
import os, sys
from pi_facegate.cli import native_logs
native_logs.install()
for line in sys.argv[1:]:
    os.write(2, line.encode() + b"\n")    # as C++ writes: straight to fd 2
print("python's own line", file=sys.stderr)
os.write(2, b"the last words, no newline")  # a command's last output is never lost
"""


def run(*lines: str, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, *lines],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={**os.environ, **(env or {})},
    )
    return done.stderr


@pytest.mark.parametrize("line", NOISE)
def test_native_info_and_warning_lines_are_noise(line):
    assert is_noise(line)


@pytest.mark.parametrize("line", KEPT)
def test_errors_and_our_own_lines_are_kept(line):
    assert not is_noise(line)


def test_the_filter_drops_noise_written_to_fd_2_and_passes_the_rest():
    lines = run(*NOISE, *KEPT, env={ENV_VAR: ""}).splitlines()
    # python's own line goes to the real stderr directly, so it may overtake the pipe's
    assert "python's own line" in lines
    lines.remove("python's own line")
    assert lines == [*KEPT, "the last words, no newline"]


def test_facegate_native_logs_1_passes_everything():
    err = run(*NOISE, env={ENV_VAR: "1"})
    assert all(line in err for line in NOISE)


def test_facegate_identify_prints_no_native_line(facedata, tmp_path):
    """The real thing: MediaPipe and LiteRT load and log, and none of it is seen; with
    ``logging.level: DEBUG`` their lines are there again (so they were really printed)."""
    photo = facedata / "face_recognition_examples/examples/obama.jpg"
    (tmp_path / "quiet.yaml").write_text("{}\n")
    (tmp_path / "debug.yaml").write_text("logging:\n  level: DEBUG\n")

    def identify(config: str) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if k not in (ENV_VAR, "GLOG_minloglevel")}
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "pi_facegate",
                "identify",
                str(photo),
                "--config",
                str(tmp_path / config),
                "--state-dir",
                str(tmp_path / "state"),
            ],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
            env=env,
        )

    config = ["--config", str(tmp_path / "quiet.yaml"), "--state-dir", str(tmp_path / "state")]
    assert main(["gallery", "init", *config]) == 0
    quiet = identify("quiet.yaml")
    assert quiet.returncode == 0, quiet.stderr
    assert "obama.jpg: unknown" in quiet.stdout  # an empty gallery knows nobody
    assert not [line for line in quiet.stderr.splitlines() if is_noise(line)], quiet.stderr
    assert "XNNPACK" not in quiet.stderr and "absl" not in quiet.stderr
    loud = identify("debug.yaml")
    assert "INFO: Created TensorFlow Lite XNNPACK delegate for CPU." in loud.stderr


def test_stderr_stays_a_terminal_for_python(tmp_path):
    """Progress bars need ``sys.stderr.isatty()``: the filter must not take it away."""
    import pty

    leader, follower = pty.openpty()
    script = (
        "import sys; from pi_facegate.cli import native_logs; native_logs.install(); "
        "print(sys.stderr.isatty(), file=open(sys.argv[1], 'w'))"
    )
    out = tmp_path / "tty.txt"
    subprocess.run(
        [sys.executable, "-c", script, str(out)], stderr=follower, check=True, timeout=60
    )
    os.close(follower)
    os.close(leader)
    assert Path(out).read_text().strip() == "True"


def test_a_native_crash_keeps_its_last_line():
    """A library that prints its fatal line and aborts (a failed check, SIGILL on a Pi 4)
    must not take that line with it: the filter is a process, not a thread."""
    script = (
        "import os; from pi_facegate.cli import native_logs; native_logs.install(); "
        "os.write(2, b'INFO: noise\\n'); "
        "os.write(2, b'FATAL ERROR: This binary was compiled with lse enabled\\n'); os.abort()"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode != 0
    assert "compiled with lse enabled" in done.stderr and "INFO: noise" not in done.stderr
