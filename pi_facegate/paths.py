"""Where the appliance finds its files by default.

The service keeps its config in ``/etc/pi-facegate`` and its state (gallery, event log) in
``/var/lib/pi-facegate`` (systemd's ``ConfigurationDirectory=``/``StateDirectory=``). A user
running the CLI from a checkout gets the repository's ``config.yaml`` and a per-user state
folder, so trying it out never needs root and several instances stay isolated.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_DIR = PACKAGE_DIR.parent
SYSTEM_CONFIG = Path("/etc/pi-facegate/config.yaml")
SYSTEM_STATE_DIR = Path("/var/lib/pi-facegate")
# where setup.cfg's data_files put models and the default config in a non-editable install
SHARE_DIR = Path(sys.prefix) / "share" / "pi-facegate"


def models_dir() -> Path:
    """The folder of bundled models: ``FACEGATE_MODELS``, the checkout's ``models/``, or the
    installed copy in ``<prefix>/share/pi-facegate/models`` (a non-editable install)."""
    env = os.environ.get("FACEGATE_MODELS")
    if env:
        return Path(env)
    for candidate in (REPO_DIR / "models", SHARE_DIR / "models"):
        if candidate.is_dir():
            return candidate
    return REPO_DIR / "models"


def default_config_path() -> Path:
    """``/etc/pi-facegate/config.yaml`` if present, else the repository's ``config.yaml``."""
    env = os.environ.get("FACEGATE_CONFIG")
    if env:
        return Path(env)
    if SYSTEM_CONFIG.is_file():
        return SYSTEM_CONFIG
    if (REPO_DIR / "config.yaml").is_file() or not (SHARE_DIR / "config.yaml").is_file():
        return REPO_DIR / "config.yaml"
    return SHARE_DIR / "config.yaml"


def running_as_service() -> bool:
    """True under systemd (it sets ``INVOCATION_ID``) or when systemd gave a state directory."""
    return bool(os.environ.get("STATE_DIRECTORY") or os.environ.get("INVOCATION_ID"))


def default_state_dir() -> Path:
    """The service's state directory, or a per-user data folder outside the service."""
    env = os.environ.get("STATE_DIRECTORY")  # set by systemd's StateDirectory=
    if env:
        return Path(env.split(":")[0])
    if running_as_service():
        return SYSTEM_STATE_DIR
    xdg = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(xdg) / "pi-facegate"


def facedata_dir() -> Path:
    """The shared face photos: ``FACEGATE_TESTDATA`` or ``../shared/facedata`` from the repo."""
    env = os.environ.get("FACEGATE_TESTDATA")
    if env:
        return Path(env)
    return REPO_DIR.parent / "shared" / "facedata"
