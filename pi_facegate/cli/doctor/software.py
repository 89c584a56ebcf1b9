"""Doctor checks of the software: Python and packages, the CPU and detector, config, models."""

from __future__ import annotations

import platform
import sys
from importlib import metadata
from pathlib import Path

from pi_facegate import __version__
from pi_facegate.cli.doctor.finding import Facts, Finding, error, ok, warning
from pi_facegate.exc import ConfigError, ModelError
from pi_facegate.paths import models_dir

#: distributions the door needs, in the order shown
REQUIRED = ("numpy", "mediapipe", "opencv-contrib-python", "gpiozero", "pydantic", "PyYAML")
#: one of these runs the models (ai-edge-litert is preferred)
RUNTIMES = ("ai-edge-litert", "tflite-runtime")
#: needed on a Pi only: the camera, GPIO, the journal
PI_ONLY = ("picamera2", "lgpio", "systemd-python")
REINSTALL = "sudo tools/install_pi.sh (on a Pi), or pip install -e . in a checkout"


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def check_python(facts: Facts) -> Finding:
    """Python, pi-facegate and the versions of the packages it runs on."""
    found = {name: _version(name) for name in (*REQUIRED, *RUNTIMES, *PI_ONLY)}
    shown = [f"{name} {found[name]}" for name in (*REQUIRED, *RUNTIMES, *PI_ONLY) if found[name]]
    text = f"Python {platform.python_version()}, pi-facegate {__version__}; {', '.join(shown)}"
    absent = [name for name in PI_ONLY if not found[name]]
    if absent:
        text += f"; not installed: {', '.join(absent)}"
    missing = [name for name in REQUIRED if not found[name]]
    if not any(found[name] for name in RUNTIMES):
        missing.append(" or ".join(RUNTIMES))
    if missing:
        return error("python", f"{text}; MISSING: {', '.join(missing)}", REINSTALL)
    if _version("opencv-python") or _version("opencv-python-headless"):
        return error(
            "python",
            f"{text}; opencv-python is installed beside opencv-contrib-python: two packages "
            "provide cv2 and one hides the other",
            f"{Path(sys.executable).parent / 'pip'} uninstall opencv-python "
            "opencv-python-headless, then reinstall opencv-contrib-python",
        )
    numpy = found["numpy"] or "0"
    if found["picamera2"] and not numpy.startswith("1."):
        return warning(
            "python",
            f"{text}; apt's picamera2 is built against numpy 1.x and may fail under numpy {numpy}",
            "keep the system's numpy in the venv: sudo tools/install_pi.sh",
        )
    return ok("python", text)


#: arm64 "CPU part" numbers of the cores a Pi has (the kernel names no model for them)
ARM_PARTS = {"0xd03": "Cortex-A53", "0xd08": "Cortex-A72", "0xd0b": "Cortex-A76"}


def cpu_model(cpuinfo: str | None = None) -> str:
    """The board (a Pi's ``Model``), else the CPU's name from /proc/cpuinfo."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(errors="replace")
        except OSError:
            cpuinfo = ""
    keys: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            keys.setdefault(key.strip(), value.strip())  # case matters: x86 has "model: 49"
    part = ARM_PARTS.get(keys.get("CPU part", "").lower())
    named = keys.get("Model") or keys.get("model name") or keys.get("Hardware")
    if named and part:
        return f"{named}, {part}"
    return named or part or "unknown CPU"


def check_detector(facts: Facts) -> Finding:
    """The CPU, and the detector backend ``auto`` (or the config) picks on it, and why."""
    from pi_facegate.vision.detection.factory import choose_backend

    requested = facts.config.detector.backend if facts.config else "auto"
    where = f"{cpu_model()} ({platform.machine()})"
    try:
        backend, reason = choose_backend(requested)
    except ModelError as exc:
        return error(
            "detector",
            f"{where}: {exc}",
            f"set detector.backend: auto in {facts.config_path} (LiteRT runs everywhere)",
        )
    return ok("detector", f"{where}: detector backend {requested} -> {backend} ({reason})")


def check_config(facts: Facts) -> Finding:
    """The config file, as ``facegate config check`` judges it."""
    from pi_facegate.cli.config_cmd import check_against_models

    path = facts.config_path
    fix = f"edit {path}, then: facegate config check {path}"
    if facts.config is None:
        return error("config", _first_lines(facts.config_error or "does not load"), fix)
    try:
        check_against_models(facts.config, path)
    except ConfigError as exc:
        return error("config", _first_lines(str(exc)), fix)
    return ok("config", f"{path}: OK")


def _first_lines(text: str, count: int = 3) -> str:
    lines = text.strip().splitlines()
    more = (
        f" (and {len(lines) - count} more: see facegate config check)" if len(lines) > count else ""
    )
    return "; ".join(lines[:count]) + more


def check_models(facts: Facts) -> Finding:
    """Every bundled model file is there and has the sha256 its manifest names."""
    from pi_facegate.vision.manifest import load_manifest

    folder = models_dir()
    manifests = sorted(folder.glob("*.json"))
    fix = (
        "restore the models: git checkout -- models/ in the clone, then sudo tools/install_pi.sh "
        "(it copies them to /opt/pi-facegate/src/models)"
    )
    if not manifests:
        return error("models", f"no model manifests in {folder}", fix)
    problems = []
    for path in manifests:
        try:
            load_manifest(path, verify=True)
        except ModelError as exc:
            problems.append(str(exc))
    if problems:
        return error("models", "; ".join(problems), fix)
    return ok("models", f"{len(manifests)} models in {folder} match the sha256 of their manifests")
