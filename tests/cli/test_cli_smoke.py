"""The package imports and the ``facegate`` command answers, in-process and as a subprocess."""

from __future__ import annotations

import subprocess
import sys

import pi_facegate
from pi_facegate.cli import main


def test_version_in_process(capsys):
    assert main(["--version"]) == 0
    assert pi_facegate.__version__ in capsys.readouterr().out


def test_help_as_subprocess():
    result = subprocess.run(
        [sys.executable, "-m", "pi_facegate", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "usage: facegate" in result.stdout


def test_no_command_is_a_usage_error(capsys):
    assert main([]) == 2
    assert "usage: facegate" in capsys.readouterr().out


def test_unknown_command_is_a_usage_error(capsys):
    assert main(["no-such-command"]) == 2
    assert "invalid choice" in capsys.readouterr().err


def test_facedata_fixture_points_at_real_photos(facedata):
    assert (facedata / "att_faces" / "s1" / "1.pgm").is_file()
