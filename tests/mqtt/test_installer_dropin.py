"""``tools/install_pi.sh --mqtt``'s systemd drop-in, made by the installer's own functions.

The installer's functions are sourced into bash (its last line, ``main "$@"``, left out) with
the unit directory and the config in a temporary folder: nothing on this machine changes.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
INSTALLER = ROOT / "tools" / "install_pi.sh"
UNIT = ROOT / "systemd" / "pi-facegate.service"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    units = tmp_path / "etc" / "systemd" / "system"
    units.mkdir(parents=True)
    facegate = Path(sys.executable).with_name("facegate")  # verify wants ExecStart to exist
    text = UNIT.read_text().replace("/opt/pi-facegate/venv/bin/facegate", str(facegate))
    (units / UNIT.name).write_text(text)
    (tmp_path / "cfg").mkdir()
    library = tmp_path / "install_lib.sh"
    library.write_text("".join(INSTALLER.read_text().splitlines(keepends=True)[:-1]))
    return tmp_path


def dropin_step(root: Path, host: str | None, with_mqtt: int = 1) -> str:
    """Run the installer's step_mqtt_dropin with mqtt.host = ``host``; its output."""
    mqtt = f"mqtt:\n  enabled: true\n  host: {host}\n" if host else "{}\n"
    (root / "cfg" / "config.yaml").write_text(mqtt)
    script = (
        f"set -euo pipefail; source {root / 'install_lib.sh'}; "
        f"UNIT_DIR={root / 'etc/systemd/system'}; CONFIG_DIR={root / 'cfg'}; "
        f"VENV={Path(sys.executable).parent.parent}; WITH_MQTT={with_mqtt}; "
        'step_mqtt_dropin; echo "changes=$CHANGES"'
    )
    proc = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def dropin(root: Path) -> Path:
    return root / "etc/systemd/system/pi-facegate.service.d/mqtt.conf"


def stat_mode(path: Path) -> int:
    return os.stat(path).st_mode & 0o777


def test_the_dropin_opens_the_network_to_the_broker_only_and_a_rerun_changes_nothing(root):
    out = dropin_step(root, "192.168.1.10")
    assert "change   systemd drop-in (MQTT network: 192.168.1.10)" in out and "changes=1" in out
    text = dropin(root).read_text()
    assert re.findall(r"^(\w+)=(.*)$", text, re.M) == [
        ("PrivateNetwork", "no"),
        ("RestrictAddressFamilies", "AF_UNIX AF_INET AF_INET6"),
        ("IPAddressDeny", "any"),
        ("IPAddressAllow", "192.168.1.10"),
    ]
    assert stat_mode(dropin(root)) == 0o644
    again = dropin_step(root, "192.168.1.10")
    assert "ok       systemd drop-in" in again and "changes=0" in again
    assert dropin(root).read_text() == text


def test_without_a_broker_yet_only_localhost_and_no_mqtt_removes_it(root):
    dropin_step(root, None)
    assert "IPAddressAllow=localhost\n" in dropin(root).read_text()
    dropin_step(root, "localhost")
    assert "IPAddressAllow=localhost\n" in dropin(root).read_text()
    out = dropin_step(root, "localhost", with_mqtt=0)
    assert "remove" in out and not dropin(root).exists()
    assert "changes=0" in dropin_step(root, "localhost", with_mqtt=0)


@pytest.mark.slow
def test_systemd_accepts_the_dropin_and_rates_the_exposure(root):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        if os.environ.get("CI"):
            pytest.fail("systemd-analyze is missing in CI: .ci/run installs systemd")
        pytest.skip("systemd-analyze not installed")
    unit = root / "etc/systemd/system" / UNIT.name

    def exposure() -> float:
        proc = subprocess.run(
            [analyze, "security", "--offline=true", f"--root={root}", UNIT.name],
            capture_output=True,
            text=True,
            timeout=60,
        )
        found = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", proc.stdout)
        assert found, proc.stdout[-2000:] + proc.stderr
        return float(found.group(1))

    offline = exposure()
    dropin_step(root, "192.168.1.10")
    verify = subprocess.run(
        [analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    assert "mqtt.conf" not in verify.stderr, verify.stderr  # every line of it parsed
    with_mqtt = exposure()
    assert offline <= 1.0 and offline < with_mqtt <= 2.0, (offline, with_mqtt)
