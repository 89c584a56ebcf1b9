"""What every ``facegate`` command needs first: the config, the state dir, the data files.

One helper so that every command answers "which config? which gallery?" the same way:

* the config is ``--config PATH``, else :func:`pi_facegate.paths.default_config_path`;
* the state dir is ``--state-dir DIR``, else :func:`pi_facegate.paths.default_state_dir`;
* the gallery (and the event log) is the command's own ``--gallery PATH`` (``--events``)
  if it has one, else the config's ``storage.gallery`` (``storage.events``), else a file in
  the state dir; relative config paths are taken from the state dir.

The state dir holds biometric data, so when a command first needs it, it is created readable
by its owner only (mode 0700), whatever the umask.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from pi_facegate import paths
from pi_facegate.cli import native_logs
from pi_facegate.config.loader import load_config
from pi_facegate.config.schema import Config

PRIVATE_DIR_MODE = 0o700


def config_path(args: argparse.Namespace) -> Path:
    """The config file this command uses: ``--config`` or the default location."""
    given = getattr(args, "config", None)
    return Path(given) if given else paths.default_config_path()


def resolve_config(args: argparse.Namespace) -> tuple[Path, Config]:
    """``(path, config)``; a :class:`~pi_facegate.exc.ConfigError` names every problem.

    ``logging.level: DEBUG`` shows the native libraries' own log lines from here on, for
    every command (:mod:`pi_facegate.cli.native_logs`).
    """
    path = config_path(args)
    config = load_config(path)
    if config.logging.level == "DEBUG":
        native_logs.show()
    return path, config


def resolve_state_dir(args: argparse.Namespace, config: Config | None = None) -> Path:
    """``--state-dir``, else the service's or the user's state dir; never created here.

    ``config`` is accepted so a later ``storage.state_dir`` key can join the chain without
    changing every caller.
    """
    given = getattr(args, "state_dir", None)
    return Path(given).expanduser() if given else paths.default_state_dir()


def ensure_private_dir(path: Path) -> Path:
    """Create ``path`` and any missing parents with mode 0700; leave existing ones alone.

    ``mkdir(mode=...)`` is filtered by the umask, so each directory created here is
    ``chmod``-ed explicitly; directories that exist already keep the mode their owner gave
    them (systemd's ``StateDirectoryMode=``, for instance).
    """
    missing = []
    probe = path
    while not probe.exists():
        missing.append(probe)
        if probe.parent == probe:
            break
        probe = probe.parent
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=PRIVATE_DIR_MODE)
        except FileExistsError:  # another process made it in between: keep its mode
            continue
        os.chmod(directory, PRIVATE_DIR_MODE)
    return path


def _data_file(
    args: argparse.Namespace,
    config: Config,
    option: str,
    which: int,
    create: bool,
) -> Path:
    given = getattr(args, option, None)
    if given:
        return Path(given).expanduser()
    state_dir = resolve_state_dir(args, config)
    path = config.resolve_paths(state_dir)[which]
    if create and path.parent.is_relative_to(state_dir):
        ensure_private_dir(path.parent)
    return path


def gallery_path(args: argparse.Namespace, config: Config, create: bool = True) -> Path:
    """The gallery file: ``--gallery``, else ``storage.gallery``, else ``<state dir>/gallery.db``.

    With ``create`` (the default) the state dir is created (0700) if the file lies in it,
    so the caller can open the database straight away. A path the operator gave explicitly
    outside the state dir is returned as is: its folder is theirs to create.
    """
    return _data_file(args, config, "gallery", 0, create)


def events_path(args: argparse.Namespace, config: Config, create: bool = True) -> Path:
    """The event log file: ``--events``, else ``storage.events``, else ``<state dir>/events.db``.

    Same rules as :func:`gallery_path`.
    """
    return _data_file(args, config, "events", 1, create)
