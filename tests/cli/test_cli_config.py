"""``facegate config check|show`` and the shared command context (config, state dir, files)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pi_facegate.cli import build_parser, main
from pi_facegate.cli.context import (
    ensure_private_dir,
    events_path,
    gallery_path,
    resolve_config,
    resolve_state_dir,
)
from pi_facegate.config.loader import parse_config
from pi_facegate.config.schema import Config
from pi_facegate.paths import REPO_DIR

BAD = """\
camera:
  widht: 640
door:
  relay:
    pin: 5
  buzzer:
    pin: 5
"""


@pytest.fixture
def bad_config(tmp_path: Path) -> Path:
    path = tmp_path / "bad.yaml"
    path.write_text(BAD)
    return path


@pytest.fixture
def good_config(tmp_path: Path) -> Path:
    path = tmp_path / "good.yaml"
    path.write_text("door:\n  simulate: true\n  relay: {pin: 27}\naccess: {votes_required: 2}\n")
    return path


def bad_lines(path: Path) -> list[str]:
    return [
        f"{path}:2: camera.widht: unknown key; did you mean 'width'? (got 640)",
        f"{path}:7: door.buzzer.pin: door.relay.pin and door.buzzer.pin both use BCM pin 5; "
        "each pin can drive only one device (got 5)",
    ]


# ----------------------------------------------------------------- config check


def test_check_accepts_the_repository_config(capsys):
    path = REPO_DIR / "config.yaml"
    assert main(["config", "check", str(path)]) == 0
    captured = capsys.readouterr()
    assert captured.out == f"{path}: OK\n"
    assert captured.err == ""


def test_check_lists_every_problem_and_fails(bad_config, capsys):
    assert main(["config", "check", str(bad_config)]) == 1
    captured = capsys.readouterr()
    assert captured.err.splitlines() == bad_lines(bad_config)
    assert captured.out == ""


def test_check_uses_config_option_then_environment(bad_config, good_config, monkeypatch, capsys):
    assert main(["config", "check", "--config", str(good_config)]) == 0
    assert capsys.readouterr().out == f"{good_config}: OK\n"
    monkeypatch.setenv("FACEGATE_CONFIG", str(bad_config))
    assert main(["config", "check"]) == 1
    assert capsys.readouterr().err.splitlines() == bad_lines(bad_config)
    # An explicit PATH wins over --config.
    assert main(["config", "check", str(good_config), "--config", str(bad_config)]) == 0


def test_check_reports_a_missing_file_and_bad_yaml(tmp_path, capsys):
    missing = tmp_path / "missing.yaml"
    assert main(["config", "check", str(missing)]) == 1
    assert capsys.readouterr().err == f"{missing}: no such config file\n"
    broken = tmp_path / "broken.yaml"
    broken.write_text("door:\n  relay: {pin: 4\n")
    assert main(["config", "check", str(broken)]) == 1
    assert capsys.readouterr().err.startswith(f"{broken}:3: YAML syntax error: ")


def test_config_without_an_action_is_a_usage_error(capsys):
    assert main(["config"]) == 2
    assert "ACTION" in capsys.readouterr().err


def test_check_as_a_real_subprocess(bad_config, good_config):
    def run(path: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "pi_facegate", "config", "check", str(path)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            cwd=REPO_DIR,
        )

    good = run(good_config)
    assert (good.returncode, good.stdout) == (0, f"{good_config}: OK\n"), good.stderr
    bad = run(bad_config)
    assert bad.returncode == 1
    assert bad.stderr.splitlines() == bad_lines(bad_config)


# ----------------------------------------------------------------- config show


def test_show_json_is_the_effective_config(good_config, capsys):
    assert main(["config", "show", "--json", "--config", str(good_config)]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["door"]["simulate"] is True and shown["door"]["relay"]["pin"] == 27
    assert shown["access"]["votes_required"] == 2
    assert shown["access"]["window_frames"] == 5  # a default filled in
    assert parse_config(shown) == parse_config(yaml.safe_load(good_config.read_text()))


def test_show_yaml_round_trips_and_names_the_data_files(good_config, tmp_path, capsys):
    state = tmp_path / "state"
    args = ["config", "show", "--config", str(good_config), "--state-dir", str(state)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert f"# gallery:   {state / 'gallery.db'}" in out
    assert parse_config(yaml.safe_load(out)) == parse_config(
        yaml.safe_load(good_config.read_text())
    )
    assert not state.exists(), "show must not create the state dir"


def test_show_of_a_bad_config_is_an_error(bad_config, capsys):
    assert main(["config", "show", "--config", str(bad_config)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"facegate: error: {bad_config}:2: camera.widht")


# ----------------------------------------------------------------- context helpers


def parse(*argv: str):
    return build_parser().parse_args(["config", "show", *argv])


def test_resolve_config_and_state_dir(good_config, tmp_path, monkeypatch):
    path, config = resolve_config(parse("--config", str(good_config)))
    assert path == good_config and config.door.relay.pin == 27
    assert resolve_state_dir(parse("--state-dir", str(tmp_path / "s")), config) == tmp_path / "s"
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path / "svc"))
    assert resolve_state_dir(parse(), config) == tmp_path / "svc"
    monkeypatch.setenv("FACEGATE_CONFIG", str(good_config))
    assert resolve_config(parse())[0] == good_config


def test_the_state_dir_is_created_private_when_first_needed(tmp_path):
    state = tmp_path / "var" / "lib" / "facegate"
    args = parse("--state-dir", str(state))
    config = Config()
    old_umask = os.umask(0o022)  # a umask that alone would give 0755
    try:
        assert gallery_path(args, config, create=False) == state / "gallery.db"
        assert not (tmp_path / "var").exists()
        assert gallery_path(args, config) == state / "gallery.db"
    finally:
        os.umask(old_umask)
    for directory in (tmp_path / "var", tmp_path / "var" / "lib", state):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700, directory
    assert events_path(args, config) == state / "events.db"


def test_an_existing_state_dir_keeps_its_mode(tmp_path):
    state = tmp_path / "state"
    state.mkdir(mode=0o750)
    os.chmod(state, 0o750)
    ensure_private_dir(state)
    assert stat.S_IMODE(state.stat().st_mode) == 0o750
    ensure_private_dir(state / "sub")
    assert stat.S_IMODE((state / "sub").stat().st_mode) == 0o700


def test_gallery_option_wins_over_config_and_config_over_state_dir(tmp_path):
    state = tmp_path / "state"
    args = parse("--state-dir", str(state))
    config = parse_config({"storage": {"gallery": str(tmp_path / "elsewhere" / "g.db")}})
    assert gallery_path(args, config) == tmp_path / "elsewhere" / "g.db"
    assert not (tmp_path / "elsewhere").exists(), "an operator's own folder is theirs to make"
    relative = parse_config({"storage": {"events": "logs/events.db"}})
    assert events_path(args, relative) == state / "logs" / "events.db"
    assert (state / "logs").is_dir()
    args.gallery = tmp_path / "cli.db"  # a command's --gallery option
    assert gallery_path(args, config) == tmp_path / "cli.db"


def test_a_threshold_looser_than_the_embedder_allows_is_refused(tmp_path, capsys):
    """Issue 15 bug 7: ``threshold: 2.0`` passed ``config check`` and let Obama in as
    Lin-Manuel Miranda. The bound is the embedder manifest's loosest_threshold (0.66)."""
    loose = tmp_path / "loose.yaml"
    loose.write_text("matching:\n  threshold: 2.0\n")
    assert main(["config", "check", str(loose)]) == 1
    err = capsys.readouterr().err
    assert "loosest_threshold" in err and "0.66" in err and "allow_loose_threshold: true" in err
    edge = tmp_path / "edge.yaml"
    edge.write_text("matching:\n  threshold: 0.66\n")
    assert main(["config", "check", str(edge)]) == 0
    meant = tmp_path / "meant.yaml"
    meant.write_text("matching:\n  threshold: 2.0\n  allow_loose_threshold: true\n")
    assert main(["config", "check", str(meant)]) == 0


def test_a_loose_threshold_lets_a_stranger_in_only_when_allowed(facedata, tmp_path, capsys):
    examples = facedata / "face_recognition_examples" / "examples"
    state = tmp_path / "state"
    base = ["--state-dir", str(state)]
    assert main(["enroll", "Lin-Manuel Miranda", str(examples / "lin-manuel-miranda.png"), *base]) == 0
    loose = tmp_path / "loose.yaml"
    loose.write_text("matching:\n  threshold: 2.0\n  min_margin: 0.0\n")
    assert main(["identify", str(examples / "obama.jpg"), "--config", str(loose), *base]) == 1
    assert "loosest_threshold" in capsys.readouterr().err
    loose.write_text("matching:\n  threshold: 2.0\n  min_margin: 0.0\n  allow_loose_threshold: true\n")
    assert main(["identify", str(examples / "obama.jpg"), "--config", str(loose), "--json", *base]) == 0
    assert "Lin-Manuel Miranda" in capsys.readouterr().out  # what the bound is there to stop
