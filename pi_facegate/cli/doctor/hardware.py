"""Doctor checks of the hardware: the camera delivers a frame, GPIO opens, the user's groups.

Each opens the real device the way the daemon would (the configured camera source, the
GPIO character devices), so a finding is what happened, not a guess. A camera the running
daemon holds is not opened again (it would be busy): its state comes from the status file.
"""

from __future__ import annotations

import grp
import os
from pathlib import Path

from pi_facegate.cli.doctor.finding import Facts, Finding, error, ok, warning
from pi_facegate.exc import CameraError, ConfigError

#: seconds the camera check waits for its first frame
FRAME_TIMEOUT_SECONDS = 5.0
#: groups the service user needs: the camera (and /dev/dma_heap, /dev/media*), the GPIO chip
GROUPS = ("video", "gpio")


def check_camera(facts: Facts) -> Finding:
    """The configured source (or ``--replay``) opens and delivers a frame."""
    config = facts.config
    replay = getattr(facts.args, "replay", None)
    if config is None:
        return warning("camera", "not checked: the config does not load", "fix the config first")
    if facts.daemon_running and replay is None:
        camera = (facts.status or {}).get("camera") or {}
        state = camera.get("state", "?")
        text = f"the running daemon reads {camera.get('source')}: {state}"
        if state == "ok":
            return ok("camera", text)
        return error("camera", text, "journalctl -u pi-facegate -n 50 (the camera's errors)")
    kind = "replay" if replay is not None else config.camera.type
    if kind == "picamera2":
        missing = _picamera2_missing()
        if missing is not None:
            return missing
    try:
        return ok("camera", _one_frame(config, replay))
    except (CameraError, ConfigError) as exc:
        return error("camera", str(exc), _camera_fix(kind, facts))


def _picamera2_missing() -> Finding | None:
    """A finding when picamera2 cannot be imported or lists no camera, else None."""
    from pi_facegate.camera.picamera import import_picamera2

    try:
        picamera2 = import_picamera2()
    except CameraError as exc:
        return error(
            "camera",
            f"camera.type picamera2: {exc}".split(": on Raspberry")[0],
            "sudo apt install python3-picamera2 and a venv made with --system-site-packages "
            "(sudo tools/install_pi.sh does both); on a machine without a Pi camera use "
            "camera.type: opencv or replay",
        )
    try:
        cameras = picamera2.global_camera_info()
    except Exception as exc:  # noqa: BLE001 - libcamera's errors are of every kind
        return error(
            "camera", f"picamera2 cannot list the cameras: {exc}", "rpicam-hello --list-cameras"
        )
    if not cameras:
        return error(
            "camera",
            "picamera2 (libcamera) finds no camera",
            "check the ribbon cable (contacts facing the board) and camera_auto_detect=1 in "
            "/boot/firmware/config.txt, reboot; rpicam-hello --list-cameras",
        )
    return None


def _one_frame(config, replay: Path | None) -> str:
    """Open the source, read one frame, close it; what was seen."""
    from pi_facegate.camera.factory import create_source

    if replay is not None:
        source = create_source(config.camera, type="replay", replay_path=replay, replay_fps=0)
    else:
        source = create_source(config.camera)
    try:
        source.start()
        frame = source.read(timeout=FRAME_TIMEOUT_SECONDS)
    finally:
        source.close()
    if frame is None:
        raise CameraError(f"{source.describe()}: opens but delivers no frame (empty recording?)")
    return f"{source.describe()} opens and delivers {frame.width}x{frame.height} frames"


def _camera_fix(kind: str, facts: Facts) -> str:
    if kind == "replay":
        return (
            f"point camera.replay.path in {facts.config_path} (or --replay) at a video or a "
            "folder of images"
        )
    if kind == "opencv":
        return (
            "connect the USB camera and check ls /dev/video*; camera.device in "
            f"{facts.config_path} names it (0 = /dev/video0); the user needs the video group"
        )
    return (
        "is another process using the camera (sudo systemctl stop pi-facegate while testing)? "
        "rpicam-hello --list-cameras"
    )


def check_gpio(facts: Facts) -> Finding:
    """The GPIO chip opens and a pin factory (lgpio) is installed, unless simulated."""
    config = facts.config
    if config is None:
        return warning("gpio", "not checked: the config does not load", "fix the config first")
    relay = f"relay on GPIO{config.door.relay.pin}"
    if config.door.simulate:
        return warning(
            "gpio",
            f"door.simulate: true: GPIO is SIMULATED ({relay}); the relay never switches",
            f"set door.simulate: false in {facts.config_path} on the Pi",
        )
    chips = sorted(Path("/dev").glob("gpiochip*"))
    if not chips:
        return error(
            "gpio",
            f"no GPIO chip (/dev/gpiochip*): this is not a Raspberry Pi, or its GPIO driver "
            f"is missing ({relay})",
            "on a machine without GPIO run facegate run --simulate-gpio (or door.simulate: true)",
        )
    refused = []
    for chip in chips:
        try:
            os.close(os.open(chip, os.O_RDWR | os.O_CLOEXEC))
        except OSError as exc:
            refused.append(f"{chip}: {exc.strerror}")
    if refused:
        return error(
            "gpio",
            f"cannot open {', '.join(refused)} as {_me()}",
            f"sudo usermod -aG gpio {facts.user.name} (then log in again)",
        )
    try:
        import lgpio  # noqa: F401 - the pin factory gpiozero uses on a Pi 4/5
    except ImportError:
        return error(
            "gpio",
            f"{', '.join(c.name for c in chips)} open, but lgpio is not installed: gpiozero "
            "has no pin factory",
            "sudo apt install python3-lgpio, or pip install lgpio in the venv "
            "(sudo tools/install_pi.sh)",
        )
    return ok(
        "gpio", f"{', '.join(c.name for c in chips)} open as {_me()}; lgpio installed; {relay}"
    )


def check_groups(facts: Facts) -> Finding:
    """The service user may use the camera and GPIO: ``video`` and ``gpio`` membership."""
    user = facts.user
    who = f"{user.name}, {user.source}"
    if user.uid == 0:
        return ok("groups", f"{who}: root needs no group (the service should have its own user)")
    unit_groups = facts.unit.get("SupplementaryGroups", "").split()
    absent = [name for name in GROUPS if _group(name) is None]
    if facts.unit_file and any(name in absent for name in unit_groups):
        missing = [name for name in unit_groups if name in absent]
        return error(
            "groups",
            f"{facts.unit_file} asks for SupplementaryGroups={' '.join(unit_groups)} but "
            f"{', '.join(missing)} does not exist here: systemd will not start the service",
            f"sudo groupadd --system {missing[0]}",
        )
    outside = [name for name in GROUPS if name not in absent and not _member(user, name)]
    if outside:
        fix = f"sudo usermod -aG {','.join(outside)} {user.name}"
        text = f"{who} is not in {', '.join(outside)}"
        if facts.unit_file and all(name in unit_groups for name in outside):
            text += (
                " (the unit's SupplementaryGroups= gives them to the service; facegate "
                "commands run as the user, e.g. enroll --camera, lack them)"
            )
            return warning("groups", text, fix)
        return error("groups", text, fix)
    if absent:
        return warning(
            "groups",
            f"{who}: no {', '.join(absent)} group on this machine (Raspberry Pi OS has them)",
            None,
        )
    return ok("groups", f"{who} is in {', '.join(GROUPS)}")


def _group(name: str) -> grp.struct_group | None:
    try:
        return grp.getgrnam(name)
    except KeyError:
        return None


def _member(user, name: str) -> bool:
    group = _group(name)
    return group is not None and (user.name in group.gr_mem or group.gr_gid == user.gid)


def _me() -> str:
    import pwd

    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return f"uid {os.geteuid()}"
