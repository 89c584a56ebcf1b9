"""``facegate people set`` and ``people list``: access rules from the command line.

A real gallery file made with the configured embedder's fingerprint (so the command opens it
as the daemon would); the people commands load no model, so the embeddings are random.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pi_facegate.cli import main
from pi_facegate.config.loader import load_config
from pi_facegate.daemon import wiring as components
from pi_facegate.storage.gallery import Gallery

CONFIG = "schedules:\n  office: ['Mon-Fri 07:00-19:00']\n  cleaner: ['Tue 08:00-11:00']\n"


@pytest.fixture
def var(tmp_path: Path) -> Path:
    folder = tmp_path / "var"
    folder.mkdir(mode=0o700)
    (folder / "config.yaml").write_text(CONFIG)
    config = load_config(folder / "config.yaml")
    fingerprint = components.embedder_fingerprint(components.load_manifest(config.embedder.model))
    with Gallery.open(folder / "gallery.db", fingerprint) as gallery:
        rng = np.random.default_rng(0)
        for name in ("Ada", "Cleo"):
            gallery.add_person(name, rng.standard_normal((1, gallery.embedding_size)))
    return folder


def facegate(var: Path, capsys, *words: str) -> tuple[int, str, str]:
    code = main([*words, "--config", str(var / "config.yaml"), "--state-dir", str(var)])
    out, err = capsys.readouterr()
    return code, out, err


def test_set_then_list_shows_the_rules(var, capsys):
    code, out, err = facegate(
        var, capsys, "people", "set", "cleo", "--schedule", "cleaner", "--from", "2027-01-01",
        "--until", "2027-01-31", "--note", "keys in the box",
    )  # fmt: skip
    assert code == 0, err
    assert out == (
        "Cleo: schedule cleaner, from 2027-01-01, until 2027-01-31 (inclusive), "
        "note 'keys in the box'\n"
    )
    code, out, _ = facegate(var, capsys, "people", "list")
    header, ada, cleo, threshold = out.splitlines()  # the door's threshold comes last
    assert threshold.startswith("threshold 0.") and "for 2 people" in threshold
    assert header.split() == [
        "NAME",
        "STATUS",
        "EMB",
        "SCHEDULE",
        "FROM",
        "UNTIL",
        "CREATED",
        "NOTE",
    ]
    assert ada.split()[:6] == ["Ada", "enabled", "1", "-", "-", "-"]
    assert cleo.split()[:6] == ["Cleo", "enabled", "1", "cleaner", "2027-01-01", "2027-01-31"]
    assert cleo.endswith("keys in the box")
    code, out, _ = facegate(var, capsys, "people", "show", "Cleo", "--json")
    shown = json.loads(out)
    assert (shown["schedule"], shown["valid_from"], shown["valid_until"]) == (
        "cleaner",
        "2027-01-01",
        "2027-01-31",
    )


def test_changes_are_partial_and_can_be_cleared(var, capsys):
    assert facegate(var, capsys, "people", "set", "Ada", "--schedule", "office")[0] == 0
    assert facegate(var, capsys, "people", "set", "Ada", "--until", "2027-06-30")[0] == 0
    code, out, _ = facegate(var, capsys, "people", "set", "Ada", "--note", "intern")
    assert out == "Ada: schedule office, until 2027-06-30 (inclusive), note 'intern'\n"
    code, out, _ = facegate(var, capsys, "people", "set", "Ada", "--no-schedule", "--clear-dates")
    assert out == "Ada: any time, note 'intern'\n"
    code, out, _ = facegate(var, capsys, "people", "set", "Ada", "--note", "")
    assert out == "Ada: any time\n"


@pytest.mark.parametrize(
    ("words", "status", "message"),
    [
        (["--schedule", "gardener"], 2, "no schedule 'gardener' in "),
        (["--schedule", "office", "--no-schedule"], 2, "not allowed with argument"),
        (["--until", "2027-02-30"], 2, "not a date YYYY-MM-DD: '2027-02-30'"),
        (["--clear-dates", "--from", "2027-01-01"], 2, "--clear-dates cannot go with"),
        ([], 2, "nothing to set"),
        (["--from", "2027-02-01", "--until", "2027-01-31"], 1, "is after valid_until"),
    ],
)
def test_bad_requests_change_nothing(var, capsys, words, status, message):
    before = (var / "gallery.db").read_bytes()
    code, _, err = facegate(var, capsys, "people", "set", "Ada", *words)
    assert code == status and message in err
    assert (var / "gallery.db").read_bytes() == before


def test_a_schedule_the_config_lost_is_marked_in_the_list(var, capsys):
    assert facegate(var, capsys, "people", "set", "Ada", "--schedule", "office")[0] == 0
    (var / "config.yaml").write_text("schedules:\n  cleaner: ['Tue 08:00-11:00']\n")
    _, out, _ = facegate(var, capsys, "people", "list")
    assert "office (not in config: denied)" in out
