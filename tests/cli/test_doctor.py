"""``facegate doctor`` on real failures made on this machine: a gallery others may read, a
model file with a changed byte, a broken config, a camera that is not there; and the healthy
replay case. Each finding is read from ``--json`` and the exit status is checked."""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
from pathlib import Path

import pytest

from pi_facegate.cli import main
from pi_facegate.cli.doctor import ASCII_MARKS, exit_status, marks_for, render
from pi_facegate.cli.doctor.finding import Finding, ServiceUser, Status, gather
from pi_facegate.cli.doctor.software import cpu_model
from pi_facegate.cli.doctor.state import check_gallery
from pi_facegate.daemon.status_file import StatusWriter, status_path
from pi_facegate.paths import models_dir

CLIP = "face_recognition_examples/examples/short_hamilton_clip.mp4"


@pytest.fixture
def state(tmp_path: Path) -> Path:
    folder = tmp_path / "state"
    folder.mkdir(mode=0o700)
    return folder


def write_config(state: Path, text: str) -> Path:
    path = state.parent / "config.yaml"
    path.write_text(text)
    return path


def replay_config(state: Path, clip: Path) -> Path:
    return write_config(
        state, f"camera:\n  type: replay\n  replay:\n    path: {clip}\ndoor:\n  simulate: true\n"
    )


def doctor(config: Path, state: Path, capsys, *extra: str) -> tuple[int, dict[str, dict]]:
    """Run ``facegate doctor --json``: the exit status and the findings by check."""
    capsys.readouterr()
    code = main(["doctor", "--json", "--config", str(config), "--state-dir", str(state), *extra])
    findings = json.loads(capsys.readouterr().out)
    assert all(set(f) == {"check", "status", "finding", "fix"} for f in findings)
    return code, {f["check"]: f for f in findings}


def init_gallery(config: Path, state: Path) -> Path:
    assert main(["gallery", "init", "--config", str(config), "--state-dir", str(state)]) == 0
    return state / "gallery.db"


def test_the_healthy_replay_case_passes_what_this_machine_has(facedata, state, capsys):
    config = replay_config(state, facedata / CLIP)
    photo = facedata / "face_recognition_examples/examples/lin-manuel-miranda.png"
    args = ["--config", str(config), "--state-dir", str(state)]
    assert main(["enroll", "Lin-Manuel Miranda", str(photo), *args]) == 0
    code, found = doctor(config, state, capsys)
    for check in ("python", "detector", "config", "models", "camera", "gallery", "disk"):
        assert found[check]["status"] == "ok", found[check]
    assert "opens and delivers 640x360 frames" in found["camera"]["finding"]
    assert "1 people (1 let in)" in found["gallery"]["finding"]
    assert "detector backend auto -> " in found["detector"]["finding"]
    # simulated GPIO is said so honestly, with the key that turns it off
    assert found["gpio"]["status"] == "warning"
    assert "door.simulate: false" in found["gpio"]["fix"]
    # no daemon has run here: a warning, and the event log is not there yet
    assert found["daemon"]["status"] == "warning"
    assert found["event log"]["status"] == "warning"
    worst = max(Status(f["status"]).exit_status for f in found.values())
    assert code == worst >= 1


def test_a_gallery_others_may_read_is_an_error_with_the_chmod_fix(state, capsys, tmp_path):
    config = replay_config(state, tmp_path)  # an empty folder: the camera fails too
    gallery = init_gallery(config, state)
    os.chmod(gallery, 0o644)
    code, found = doctor(config, state, capsys)
    assert code == 2
    assert found["gallery"]["status"] == "error"
    assert "readable by group or others (mode 644)" in found["gallery"]["finding"]
    assert found["gallery"]["fix"] == f"chmod 600 {gallery}"
    os.chmod(gallery, 0o600)
    _, found = doctor(config, state, capsys)
    assert found["gallery"]["status"] == "warning"  # empty: nobody is let in
    assert "nobody is let in" in found["gallery"]["finding"]


def test_a_model_with_one_changed_byte_is_named(state, capsys, tmp_path, monkeypatch):
    copy = tmp_path / "models"
    shutil.copytree(models_dir(), copy)
    model = copy / "minifasnet_v2_int8.tflite"
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model.write_bytes(bytes(data))
    monkeypatch.setenv("FACEGATE_MODELS", str(copy))
    config = write_config(state, "door:\n  simulate: true\n")
    code, found = doctor(config, state, capsys)
    assert code == 2
    assert found["models"]["status"] == "error"
    assert f"{model} does not match the sha256" in found["models"]["finding"]
    assert "git checkout -- models/" in found["models"]["fix"]


def test_a_broken_config_names_its_lines_and_skips_what_depends_on_it(state, capsys):
    config = write_config(state, "camera:\n  typo: 1\naccess:\n  votes_required: 0\n")
    code, found = doctor(config, state, capsys)
    assert code == 2
    problem = found["config"]
    assert problem["status"] == "error"
    assert f"{config}:2: camera.typo" in problem["finding"]
    assert f"{config}:4: access.votes_required" in problem["finding"]
    assert problem["fix"] == f"edit {config}, then: facegate config check {config}"
    assert "camera" not in found and "gallery" not in found
    assert "camera, gpio, gallery" in found["not checked"]["finding"]
    assert found["models"]["status"] == "ok"  # what does not need the config is still checked


def test_a_camera_that_is_not_there_is_an_error(state, capsys, tmp_path):
    missing = next(i for i in range(9, 64) if not Path(f"/dev/video{i}").exists())
    config = write_config(state, f"camera:\n  type: opencv\n  device: {missing}\n")
    _, found = doctor(config, state, capsys)
    assert found["camera"]["status"] == "error"
    assert f"opencv camera {missing}: cannot open" in found["camera"]["finding"]
    assert "ls /dev/video*" in found["camera"]["fix"]

    config = replay_config(state, tmp_path / "no-such-clip.mp4")
    _, found = doctor(config, state, capsys)
    assert found["camera"]["status"] == "error"
    assert "no-such-clip.mp4" in found["camera"]["finding"]
    assert "camera.replay.path" in found["camera"]["fix"]


def test_replay_option_checks_that_source_instead(facedata, state, capsys):
    config = write_config(state, "camera:\n  type: opencv\n  device: 63\n")
    _, found = doctor(config, state, capsys, "--replay", str(facedata / CLIP))
    assert found["camera"]["status"] == "ok"


@pytest.mark.skipif(
    importlib.util.find_spec("picamera2") is not None, reason="picamera2 is installed here"
)
def test_the_pi_camera_on_a_machine_without_one(state, capsys):
    config = write_config(state, "camera:\n  type: picamera2\n")
    _, found = doctor(config, state, capsys)
    assert found["camera"]["status"] == "error"
    assert "picamera2 is not installed" in found["camera"]["finding"]
    assert "python3-picamera2" in found["camera"]["fix"]


@pytest.mark.skipif(bool(list(Path("/dev").glob("gpiochip*"))), reason="this machine has GPIO")
def test_no_gpio_chip_is_an_error_unless_simulated(state, capsys):
    config = write_config(state, "door:\n  relay:\n    pin: 22\n")
    _, found = doctor(config, state, capsys)
    assert found["gpio"]["status"] == "error"
    assert "no GPIO chip" in found["gpio"]["finding"] and "GPIO22" in found["gpio"]["finding"]
    assert "--simulate-gpio" in found["gpio"]["fix"]


@pytest.mark.skipif(
    os.geteuid() != 0, reason="needs a file owned by another user than the service's"
)
def test_a_gallery_the_service_user_does_not_own_is_an_error(state, tmp_path, capsys):
    """What ``sudo facegate enroll`` does: root's gallery, which the service cannot open."""
    config = write_config(state, "door:\n  simulate: true\n")
    init_gallery(config, state)
    facts = gather(argparse.Namespace(config=config, state_dir=state))
    facts.user = ServiceUser("facegate", 4242, 4242, "the unit's User=")
    finding = check_gallery(facts)
    assert finding.status is Status.ERROR
    assert "owned by root, but the service runs as facegate" in finding.finding
    assert finding.fix == f"sudo chown facegate: {state / 'gallery.db'}"


def test_a_running_daemon_is_reported_from_its_status_file(state, capsys):
    config = write_config(state, "door:\n  simulate: true\n")
    writer = StatusWriter(status_path(state))
    writer.note("granted", {"person": "Ada", "detail": {"track": 3}})
    state_fields = {"interval_seconds": 5.0, "fps": 14.8, "people": 2}
    writer.write({**state_fields, "camera": {"source": "picamera2", "state": "ok"}})
    _, found = doctor(config, state, capsys)
    assert found["daemon"]["status"] == "ok"
    assert "14.8 fps, camera ok, 2 people, last decision: granted Ada" in found["daemon"]["finding"]
    # a camera the daemon holds is not opened again: its state comes from the daemon
    assert found["camera"] == {
        "check": "camera",
        "status": "ok",
        "finding": "the running daemon reads picamera2: ok",
        "fix": None,
    }
    writer.write({**state_fields, "camera": {"source": "picamera2", "state": "failed: gone"}})
    code, found = doctor(config, state, capsys)
    assert found["daemon"]["status"] == found["camera"]["status"] == "error"
    assert code == 2
    writer.close()
    _, found = doctor(config, state, capsys)
    assert found["daemon"]["finding"].startswith("not running: stopped")


def test_the_checklist_text_and_exit_statuses(state, capsys):
    findings = [
        Finding("models", Status.OK, "9 models match"),
        Finding("gallery", Status.ERROR, "mode 644", "chmod 600 /x"),
        Finding("clock", Status.WARNING, "cannot tell", None),
    ]
    assert render(findings).splitlines() == [
        "✔  models   9 models match",
        "✘  gallery  mode 644",
        "            fix: chmod 600 /x",
        "⚠  clock    cannot tell",
        "1 ok, 1 warning, 1 error",
    ]
    assert exit_status(findings) == 2
    assert exit_status(findings[::2]) == 1
    assert exit_status(findings[:1]) == 0

    class Ascii:
        encoding = "ascii"

    assert marks_for(Ascii()) == ASCII_MARKS
    # the text output is the same checklist, with the same exit status as --json
    config = write_config(state, "door:\n  simulate: true\n")
    code = main(["doctor", "--config", str(config), "--state-dir", str(state)])
    out = capsys.readouterr().out
    assert code == doctor(config, state, capsys)[0]
    assert out.splitlines()[0].startswith("✔  python     Python ")
    assert "fix: " in out


def test_cpu_model_names_the_board_or_the_cpu():
    pi4 = "processor\t: 0\nCPU part\t: 0xd08\n\nModel\t\t: Raspberry Pi 4 Model B Rev 1.4\n"
    assert cpu_model(pi4) == "Raspberry Pi 4 Model B Rev 1.4, Cortex-A72"
    x86 = "model\t\t: 49\nmodel name\t: AMD EPYC 7B12\n"
    assert cpu_model(x86) == "AMD EPYC 7B12"
    assert cpu_model("") == "unknown CPU"
