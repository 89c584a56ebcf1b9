"""The shipped unit file is one systemd accepts, and it asks for what the product needs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parents[2] / "systemd" / "pi-facegate.service"


def _service_section() -> dict[str, list[str]]:
    values: dict[str, list[str]] = {}
    section = None
    for line in UNIT.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            section = line
            continue
        key, _, value = line.partition("=")
        if section == "[Service]":
            values.setdefault(key, []).append(value)
    return values


def test_unit_is_a_hardened_notify_service():
    s = _service_section()
    assert s["Type"] == ["notify"]
    assert s["Restart"] == ["on-failure"]
    assert float(s["WatchdogSec"][0]) > 0
    assert "kill -HUP" in s["ExecReload"][0]
    assert s["User"] == ["facegate"] and set(s["SupplementaryGroups"][0].split()) == {
        "video",
        "gpio",
    }
    assert s["StateDirectory"] == ["pi-facegate"] and s["ConfigurationDirectory"] == ["pi-facegate"]
    for key in ("NoNewPrivileges", "ProtectHome", "PrivateTmp"):
        assert s[key] == ["yes"], key
    assert s["ProtectSystem"] == ["strict"]
    assert s["UMask"] == ["0077"]


def test_systemd_analyze_verify_accepts_it(tmp_path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        if os.environ.get("CI"):
            pytest.fail("systemd-analyze is missing in CI: .ci/run installs systemd")
        pytest.skip("systemd-analyze not installed")
    # verify checks that ExecStart's binary exists: point it at this environment's facegate
    facegate = Path(sys.executable).with_name("facegate")
    text = UNIT.read_text().replace("/opt/pi-facegate/venv/bin/facegate", str(facegate))
    unit = tmp_path / UNIT.name
    unit.write_text(text)
    result = subprocess.run(
        [analyze, "verify", str(unit)], capture_output=True, text=True, timeout=120, check=False
    )
    problems = [ln for ln in (result.stdout + result.stderr).splitlines() if UNIT.name in ln]
    assert result.returncode == 0 and not problems, result.stdout + result.stderr
