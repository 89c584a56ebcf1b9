"""``facegate config``: check a config file without running anything, or show the effective one.

``facegate config check [PATH]`` works like ``nginx -t``: it prints ``PATH: OK`` and exits 0,
or prints every problem as ``PATH:LINE: key.path: reason (got VALUE)``, one per line, and
exits 1. Run it before ``systemctl reload`` (a bad file never reaches the running service).

``facegate config show [--json]`` prints the configuration the appliance would run with,
defaults filled in, as YAML (with the resolved data files as comments) or as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

from pi_facegate.cli import EXIT_ERROR, EXIT_OK
from pi_facegate.cli.context import config_path, events_path, gallery_path, resolve_state_dir
from pi_facegate.config.loader import load_config
from pi_facegate.exc import ConfigError


def register(
    subparsers: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]
) -> None:
    """Add ``config check`` and ``config show``."""
    parser = subparsers.add_parser(
        "config",
        help="check or show the configuration",
        description="Check a config file without running anything, or show the effective "
        "configuration with every default filled in.",
    )
    # The common options go on the leaves only: argparse lets a sub-subparser's defaults
    # overwrite values its parent already parsed.
    actions = parser.add_subparsers(dest="config_action", metavar="ACTION", required=True)

    check = actions.add_parser(
        "check",
        parents=parents,
        help="validate a config file (exit 0 if OK, 1 with every problem listed)",
        description="Validate a config file like 'nginx -t': prints 'PATH: OK', or each "
        "problem as PATH:LINE: key: reason (got VALUE).",
    )
    check.add_argument(
        "path",
        nargs="?",
        type=Path,
        metavar="PATH",
        help="file to check (default: --config, else the default config)",
    )
    check.set_defaults(func=cmd_check)

    show = actions.add_parser(
        "show",
        parents=parents,
        help="print the effective configuration, defaults included",
        description="Print the configuration the appliance would run with, defaults included.",
    )
    show.add_argument("--json", action="store_true", help="print JSON instead of YAML")
    show.set_defaults(func=cmd_show)


def cmd_check(args: argparse.Namespace) -> int:
    """Validate the file; problems go to stderr one per line, ``PATH: OK`` to stdout."""
    path = args.path or config_path(args)
    try:
        config = load_config(path)
        check_against_models(config, path)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_ERROR
    print(f"{path}: OK")
    return EXIT_OK


def check_against_models(config, path: Path) -> None:
    """What the schema alone cannot judge: values whose bounds come from the embedder's
    manifest (a distance threshold means something only for the model that made it)."""
    from pi_facegate.daemon.wiring import threshold_problem
    from pi_facegate.exc import ModelError
    from pi_facegate.vision.manifest import load_manifest

    try:
        manifest = load_manifest(config.embedder.model, verify=False)
    except ModelError as exc:
        raise ConfigError(f"{path}: embedder.model: {exc}") from exc
    problem = threshold_problem(config, manifest["embedding"])
    if problem:
        raise ConfigError(f"{path}: {problem}")


def cmd_show(args: argparse.Namespace) -> int:
    """Print the effective config; a ConfigError goes to the CLI's one error handler."""
    path = config_path(args)
    config = load_config(path)
    data = config.model_dump(mode="json")
    if args.json:
        print(json.dumps(data, indent=2))
        return EXIT_OK
    state_dir = resolve_state_dir(args, config)
    print(f"# effective configuration from {path} (defaults filled in)")
    print(f"# state dir: {state_dir}")
    print(f"# gallery:   {gallery_path(args, config, create=False)}")
    print(f"# events:    {events_path(args, config, create=False)}")
    print(yaml.safe_dump(data, sort_keys=False, default_flow_style=False), end="")
    return EXIT_OK
