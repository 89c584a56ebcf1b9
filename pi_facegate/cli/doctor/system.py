"""Doctor checks of the running system: the systemd unit, the daemon, the clock.

systemd is asked through ``systemctl show`` and ``timedatectl show`` (their stable
machine-readable forms); where systemd is not running (a container, a chroot such as
``tools/pi_emulation.sh``'s) the unit's files are judged instead and the finding says so.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from datetime import datetime
from pathlib import Path

import pi_facegate
from pi_facegate.cli.doctor.finding import UNIT_NAME, Facts, Finding, error, ok, warning

SYSTEMD_RUNNING = Path("/run/systemd/system")  # sd_booted(): systemd is PID 1
TIMESYNC_FLAG = Path("/run/systemd/timesync/synchronized")  # touched by systemd-timesyncd
COMMAND_TIMEOUT_SECONDS = 10
UNIT_PROPERTIES = (
    "LoadState",
    "UnitFileState",
    "ActiveState",
    "SubState",
    "Result",
    "ExecMainStatus",
    "NRestarts",
    "WatchdogUSec",
    "StatusText",
)
INSTALL = "sudo tools/install_pi.sh (from a clone of pi-facegate, on the Pi)"
JOURNAL = "journalctl -u pi-facegate -n 50 says why"


def _run(*command: str) -> tuple[int, str]:
    """Exit status and output (stdout, else stderr) of a command; 127 when it is absent."""
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_SECONDS, check=False
        )
    except FileNotFoundError:
        return 127, f"{command[0]} not found"
    except (OSError, subprocess.TimeoutExpired) as exc:
        return 1, str(exc)
    return done.returncode, (done.stdout if done.returncode == 0 else done.stderr).strip()


def check_systemd(facts: Facts) -> Finding:
    """The unit: installed, enabled, active, its last exit, restarts and watchdog."""
    if shutil.which("systemctl") is None:
        return warning("systemd", "no systemd here (systemctl not found): no service", INSTALL)
    if not SYSTEMD_RUNNING.is_dir():
        return _unit_files_only(facts)
    code, out = _run("systemctl", "show", UNIT_NAME, "--property=" + ",".join(UNIT_PROPERTIES))
    if code != 0:
        return warning("systemd", f"systemctl show {UNIT_NAME} failed: {out}", None)
    props = dict(line.partition("=")[::2] for line in out.splitlines())
    if props.get("LoadState") != "loaded":
        return error("systemd", f"{UNIT_NAME} is not installed ({props.get('LoadState')})", INSTALL)
    state = f"{props.get('ActiveState')} ({props.get('SubState')})"
    enabled = props.get("UnitFileState", "?")
    watchdog = props.get("WatchdogUSec") or "none"
    restarts = int(props.get("NRestarts") or 0)
    text = f"{UNIT_NAME} {state}, {enabled}, watchdog {watchdog}"
    if props.get("ActiveState") != "active":
        exit_text = f"last result {props.get('Result')}, exit status {props.get('ExecMainStatus')}"
        return error(
            "systemd", f"{text}: {exit_text}", f"sudo systemctl start pi-facegate; {JOURNAL}"
        )
    if props.get("StatusText"):
        text += f"; status: {props['StatusText']}"
    if enabled != "enabled":
        return warning(
            "systemd", f"{text}: it will not start at boot", "sudo systemctl enable pi-facegate"
        )
    if restarts:
        return warning(
            "systemd",
            f"{text}: restarted {restarts} times",
            f"{JOURNAL} (journalctl -u pi-facegate -b)",
        )
    return ok("systemd", text)


def _unit_files_only(facts: Facts) -> Finding:
    """Without a running systemd: is the unit installed and enabled (what the files say)."""
    why = "systemd is not running here (PID 1 is not systemd: a container or chroot)"
    if facts.unit_file is None:
        return warning("systemd", f"{why}, and {UNIT_NAME} is not installed", INSTALL)
    wants = list(Path("/etc/systemd/system").glob(f"*.wants/{UNIT_NAME}"))
    enabled = "enabled" if wants else "NOT enabled"
    return warning(
        "systemd",
        f"{why}: {facts.unit_file} installed and {enabled}; whether it runs cannot be seen",
        None if wants else "sudo systemctl enable pi-facegate",
    )


def check_daemon(facts: Facts) -> Finding:
    """The daemon's own status file: running, and what it is doing (``facegate status``)."""
    if facts.gallery is None:
        return warning("daemon", "not checked: the config does not load", "fix the config first")
    status = facts.status or {}
    if not facts.daemon_running:
        start = "sudo systemctl start pi-facegate" if facts.unit_file else "facegate run"
        return warning(
            "daemon", f"not running: {facts.not_running}", f"{start}; then facegate status"
        )
    camera = (status.get("camera") or {}).get("state", "?")
    decision = (status.get("last_decision") or {}).get("text", "none yet")
    fps = status.get("fps")
    rate = f"{fps:.1f} fps" if isinstance(fps, (int, float)) else "? fps"
    text = (
        f"running (pid {status.get('pid')}): {rate}, camera {camera}, "
        f"{status.get('people')} people, last decision: {decision}"
    )
    if camera != "ok":
        return error("daemon", text, JOURNAL)
    return ok("daemon", text)


def check_clock(facts: Facts) -> Finding:
    """The clock is plausible and synchronised (a Pi has no battery clock; schedules and
    the event log's times depend on it)."""
    now = datetime.now().astimezone()
    shown = now.strftime("%Y-%m-%d %H:%M %Z")
    installed = Path(pi_facegate.__file__).stat().st_mtime
    if time.time() < installed - 86400:
        built = datetime.fromtimestamp(installed).strftime("%Y-%m-%d")
        return error(
            "clock",
            f"the clock says {shown}, before this pi-facegate was installed ({built}): it is wrong",
            "connect the network so that NTP sets it (a Pi has no battery clock), or "
            "sudo timedatectl set-time 'YYYY-MM-DD HH:MM'",
        )
    synced, how = _synchronised()
    if synced is True:
        return ok("clock", f"{shown}, synchronised ({how})")
    if synced is False:
        return warning(
            "clock",
            f"{shown}, NOT synchronised ({how}): times in the event log and any schedule "
            "may be off",
            "sudo timedatectl set-ntp true, and check the network (systemd-timesyncd)",
        )
    return warning(
        "clock",
        f"{shown}; cannot tell whether it is synchronised ({how})",
        "use systemd-timesyncd (or chrony) and check: timedatectl",
    )


def _synchronised() -> tuple[bool | None, str]:
    """Whether the kernel clock is NTP-synchronised: timedatectl, else timesyncd's flag."""
    code, out = _run("timedatectl", "show", "--property=NTPSynchronized", "--value")
    if code == 0 and out in ("yes", "no"):
        return out == "yes", f"timedatectl: NTPSynchronized={out}"
    if TIMESYNC_FLAG.exists():
        return True, f"{TIMESYNC_FLAG} exists"
    return None, f"timedatectl: {out.splitlines()[0] if out else code}"
