"""``facegate bench`` on real frames and real models (timings are reported, never asserted)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from pi_facegate.camera.replay import ReplaySource
from pi_facegate.cli import main
from pi_facegate.core.matcher import GalleryIndex, search
from pi_facegate.devtools.bench.costs import model_cost
from pi_facegate.devtools.bench.frames import FrameResult, letterbox, parse_size
from pi_facegate.devtools.bench.gallery_search import SEARCH_PER_PERSON, random_index, time_search
from pi_facegate.devtools.bench.measure import summarize
from pi_facegate.devtools.bench.peer import import_face_recognition
from pi_facegate.devtools.bench.pipeline import STAGES, add_strangers
from pi_facegate.devtools.bench.run import agreement
from pi_facegate.exc import UsageError
from pi_facegate.paths import REPO_DIR
from pi_facegate.vision.embedder import load_embedder
from pi_facegate.vision.images import load_image
from pi_facegate.vision.manifest import load_manifest

CLIP = Path("face_recognition_examples/examples/short_hamilton_clip.mp4")
PHOTO = Path("face_recognition_examples/examples/lin-manuel-miranda.png")
FIRST, COUNT = 140, 10  # frames of the clip with Lin-Manuel Miranda's face close up


@pytest.fixture(scope="module")
def close_ups(facedata, tmp_path_factory) -> Path:
    """Ten consecutive frames of the Hamilton clip as PNG files in a temporary folder."""
    folder = tmp_path_factory.mktemp("frames")
    with ReplaySource(facedata / CLIP) as source:
        for index in range(FIRST + COUNT):
            frame = source.read()
            if index >= FIRST:
                cv2.imwrite(
                    str(folder / f"{index}.png"), cv2.cvtColor(frame.image, cv2.COLOR_RGB2BGR)
                )
    return folder


@pytest.fixture(scope="module")
def config_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("config") / "config.yaml"
    path.write_text("camera:\n  detect_width: 320\n")
    return path


def _bench(config_file: Path, out: Path, *args: str) -> dict:
    status = main(["bench", "--config", str(config_file), "--json", str(out), *args])
    assert status == 0
    return json.loads(out.read_text())


@pytest.fixture(scope="module")
def report(facedata, close_ups, config_file, tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("report") / "bench.json"
    args = ["--frames", str(close_ups), "--size", "640x480", "--warmup", "1", "--strangers", "100"]
    args += ["--enrol", str(facedata / PHOTO), "--name", "Lin-Manuel Miranda"]
    return _bench(config_file, out, *args, "--search-size", "5000")


# --------------------------------------------------------------------------- the report


def test_report_has_the_issue_keys_with_sane_values(report):
    assert report["frames"] == COUNT
    assert report["source"]["size"] == [640, 480] and report["source"]["letterboxed"]
    ours = report["ours"]
    frame = ours["ms_per_frame"]
    assert 0 < frame["min"] <= frame["median"] <= frame["p95"] <= frame["max"]
    assert set(ours["stages"]) == set(STAGES)
    for stage in STAGES:
        stats = ours["stages"][stage]
        assert 0 <= stats["median"] <= stats["p95"]
    # every frame's total includes its stages, so the means add up (3-decimal rounding aside)
    assert sum(ours["stages"][s]["mean"] for s in STAGES) <= frame["mean"] + 0.01
    assert ours["stages"]["detect"]["median"] > 0
    assert ours["fps"] > 0 and ours["cpu_seconds"] > 0 and ours["peak_rss_mb"] > 0
    # without --peer the peer keys are there, and empty
    assert report["peer"] is None and report["ratio_peer_over_ours"] is None


def test_close_ups_are_embedded_and_recognised_among_strangers(report):
    ours = report["ours"]
    assert report["gallery_people"] == 101 and report["enrolled"] == ["Lin-Manuel Miranda"]
    one = ours["one_face"]
    assert one["frames"] > 0 and one["stages"]["embed"]["median"] > 0
    assert one["stages"]["match"]["median"] > 0
    assert ours["faces_embedded"] >= one["frames"]
    assert 0 < ours["frames_identified"] <= report["frames"]


def test_report_carries_model_costs_and_the_gallery_search(report):
    embedder = report["models"]["embedder"]
    assert embedder["file"] == "dlib_resnet_v1_int8.tflite"
    assert 5.5e6 < embedder["params"] < 5.7e6 and embedder["macs"] > 0
    assert report["models"]["detector"]["params"] > 0
    search = report["gallery_search"]
    assert search["embeddings"] == 5000 and search["people"] == 1000 and search["dim"] == 128
    assert 0 < search["ms"]["median"] <= search["ms"]["p95"]


def test_table_is_printed(facedata, close_ups, config_file, tmp_path, capsys):
    args = ["--frames", str(close_ups), "--max-frames", "2", "--warmup", "0", "--search-size", "0"]
    _bench(config_file, tmp_path / "r.json", *args)
    out = capsys.readouterr().out
    assert "whole frame" in out and "dlib_resnet_v1_int8.tflite" in out
    assert "gallery search" not in out  # --search-size 0 skips it


def test_a_second_embedder_is_timed_on_the_same_frames_in_turn(
    facedata, close_ups, config_file, tmp_path, capsys
):
    args = ["--frames", str(close_ups), "--warmup", "1", "--search-size", "0"]
    args += ["--enrol", str(facedata / PHOTO), "--name", "Lin-Manuel Miranda"]
    report = _bench(
        config_file, tmp_path / "c.json", *args, "--compare-embedder", "dlib_resnet_v1_float32"
    )
    compare = report["compare"]
    assert compare["embedder_model"] == "dlib_resnet_v1_float32"
    assert compare["model"]["file"] == "dlib_resnet_v1_float32.tflite"
    other = compare["pipeline"]
    assert other["one_face"]["frames"] == report["ours"]["one_face"]["frames"] > 0
    assert other["frames_identified"] > 0  # its own gallery: the same photo, its own embedding
    ratios = compare["ratio_other_over_ours"]
    assert ratios["one_face_embed"] > 0 and ratios["frame_mean"] > 0
    out = capsys.readouterr().out
    assert "dlib_resnet_v1_float32" in out and "taken in turn" in out


def test_default_run_is_the_clip_with_lin_manuel_enrolled(facedata, config_file, tmp_path):
    args = ["--max-frames", "3", "--warmup", "0", "--search-size", "0"]
    data = _bench(config_file, tmp_path / "r.json", *args)
    assert data["frames"] == 3
    assert data["source"]["path"].endswith(CLIP.name) and data["source"]["size"] == [640, 360]
    assert data["enrolled"] == ["Lin-Manuel Miranda"] and "gallery_search" not in data


# --------------------------------------------------------------------------- the peer


@pytest.mark.tools
def test_face_recognition_runs_on_the_same_frames(facedata, close_ups, config_file, tmp_path):
    try:
        import_face_recognition()
    except UsageError as exc:
        pytest.skip(str(exc))
    args = ["--frames", str(close_ups), "--warmup", "1", "--search-size", "0", "--peer"]
    args += ["face_recognition", "--enrol", str(facedata / PHOTO), "--name", "Lin-Manuel Miranda"]
    data = _bench(config_file, tmp_path / "r.json", *args)
    peer = data["peer"]
    assert peer["name"] == "face_recognition" and peer["frames_with_faces"] > 0
    assert 0 < peer["ms_per_frame"]["median"] <= peer["ms_per_frame"]["p95"]
    ratio = peer["ms_per_frame"]["median"] / data["ours"]["ms_per_frame"]["median"]
    assert data["ratio_peer_over_ours"] == pytest.approx(ratio, abs=0.01)
    a = data["agreement"]
    assert a["frames"] == COUNT == a["both"] + a["ours_only"] + a["peer_only"] + a["neither"]
    # one person enrolled: the same answer is "both recognised him" or "neither did"
    assert a["agree"] == a["both"] + a["neither"]
    assert a["both"] > 0  # his close-ups: both libraries recognise him in some frames


def test_a_missing_peer_library_is_a_clear_error(monkeypatch, config_file, capsys):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "face_recognition" else real(name, *a),
    )
    with pytest.raises(UsageError, match="pip install"):
        import_face_recognition()
    args = ["--peer", "face_recognition", "--max-frames", "1"]
    assert main(["bench", "--config", str(config_file), *args]) == 2  # a usage error
    err = capsys.readouterr().err
    assert "missing: " in err and "face_recognition (with --no-deps" in err


# --------------------------------------------------------------------------- bad input


def test_bad_options_are_refused(facedata, config_file, capsys):
    assert main(["bench", "--config", str(config_file), "--size", "640"]) == 2
    assert main(["bench", "--config", str(config_file), "--enrol", str(facedata / PHOTO)]) == 2
    assert "--name" in capsys.readouterr().err
    two = facedata / "face_recognition_examples" / "examples" / "two_people.jpg"
    args = ["--enrol", str(two), "--name", "Two", "--max-frames", "1", "--search-size", "0"]
    assert main(["bench", "--config", str(config_file), *args]) == 1
    assert "faces" in capsys.readouterr().err
    assert main(["bench", "--config", str(config_file), "--frames", "/no/such/clip.mp4"]) == 1


# --------------------------------------------------------------------------- model costs


def test_the_dlib_resnet_costs_the_same_in_int8_and_float32():
    int8 = model_cost(load_manifest("dlib_resnet_v1_int8"))
    f32 = model_cost(load_manifest("dlib_resnet_v1_float32"))
    assert (int8.params, int8.macs) == (f32.params, f32.macs)
    assert 5.5e6 < int8.params < 5.7e6  # dlib's ResNet-29 face model: about 5.6 M parameters
    assert int8.ops["CONV_2D"] == 29 and int8.ops["FULLY_CONNECTED"] == 1
    # first layer: 32 filters 7x7x3 (+32 biases), stride 2 without padding on 150x150 -> 72x72
    first = int8.layers[0]
    assert (first.op, first.params) == ("CONV_2D", 32 * 7 * 7 * 3 + 32)
    assert first.macs == 72 * 72 * 32 * 7 * 7 * 3
    # last layer: dlib's fc_no_bias<128> over the 256 pooled features
    last = int8.layers[-1]
    assert (last.op, last.params, last.macs) == ("FULLY_CONNECTED", 256 * 128, 256 * 128)
    # what the weights take in the files: float32 is 4 bytes each; int8 weights + int32 biases
    assert f32.param_bytes == 4 * f32.params <= f32.file_bytes
    assert int8.params < int8.param_bytes <= int8.file_bytes < 1.05 * int8.param_bytes


def test_blazeface_weights_are_counted_through_their_float16_dequantize():
    cost = model_cost(load_manifest("face_detection_short_range"))
    assert cost.ops["DEQUANTIZE"] > 0  # the weights are float16 in the file
    assert cost.param_bytes == 2 * cost.params <= cost.file_bytes
    assert 5e4 < cost.params < 2e5  # BlazeFace: about 0.1 M parameters
    assert cost.macs == sum(layer.macs for layer in cost.layers) > cost.params


@pytest.mark.tools
def test_resnet_parameters_match_an_independent_count_from_dlibs_file():
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("face_recognition_models is not installed")
    dat = (
        Path(spec.submodule_search_locations[0])
        / "models"
        / "dlib_face_recognition_resnet_model_v1.dat"
    )
    sys.path.insert(0, str(REPO_DIR / "tools"))
    try:
        from dlib_dat import read_net
    finally:
        sys.path.remove(str(REPO_DIR / "tools"))
    dlib_params = 0  # batch norms (affine) are folded into the convolutions: not counted
    for layer in read_net(dat).layers:
        for key in ("weights", "bias"):
            value = layer.params.get(key) if layer.kind in ("con", "fc") else None
            dlib_params += 0 if value is None else value.size
    assert model_cost(load_manifest("dlib_resnet_v1_int8")).params == dlib_params


# --------------------------------------------------------------------------- pure helpers


def test_summarize_uses_the_nearest_rank_p95():
    stats = summarize(list(range(1, 101)))
    assert (stats["median"], stats["p95"], stats["min"], stats["max"]) == (50.5, 95, 1, 100)
    small = summarize([3.0, 1.0, 2.0])
    assert small["p95"] == 3.0 >= small["median"] == 2.0


def test_parse_size():
    assert parse_size("640x480") == (640, 480)
    for bad in ("640", "640x", "ax480", "0x480", "99999x480"):
        with pytest.raises(UsageError):
            parse_size(bad)


def test_letterbox_keeps_faces_undistorted(facedata):
    with ReplaySource(facedata / CLIP) as source:
        frame = source.read().image  # 640x360
    boxed = letterbox(frame, (640, 480))
    assert boxed.shape == (480, 640, 3)
    assert np.array_equal(boxed[60:420], frame)
    assert not boxed[:60].any() and not boxed[420:].any()
    portrait = load_image(facedata / "att_faces" / "s1" / "1.pgm")  # 92x112
    boxed = letterbox(portrait, (640, 480))
    scaled_width = round(92 * 480 / 112)
    left = (640 - scaled_width) // 2
    assert boxed.shape == (480, 640, 3) and not boxed[:, :left].any() and boxed[:, left + 5].any()


def test_agreement_counts_frames_by_who_each_pipeline_named():
    def frame(*names: str) -> FrameResult:
        return FrameResult({}, 1.0, 1.0, len(names), len(names), frozenset(names))

    ours = [frame("a"), frame(), frame("a"), frame(), frame("a")]
    peer = [frame("a"), frame(), frame(), frame("a"), frame("b")]
    a = agreement(ours, peer)
    assert (a["agree"], a["both"], a["ours_only"], a["peer_only"], a["neither"]) == (2, 2, 1, 1, 1)
    assert a["disagree_frames"] == [2, 3, 4] and a["rate"] == 0.4


def test_strangers_change_the_gallery_size_not_the_answer():
    embedder = load_embedder()
    rng = np.random.default_rng(3)
    chip = rng.integers(0, 255, (1, 150, 150, 3), dtype=np.uint8)
    vector = embedder.embed(chip)
    alone = GalleryIndex.build([(1, "x", True, False)], [1], vector, "f", 1)
    crowd = add_strangers(alone, 300)
    assert crowd.size == 301 and crowd.embeddings.shape[0] == 1 + 300 * SEARCH_PER_PERSON
    query = embedder.embed(np.clip(chip.astype(int) + 3, 0, 255).astype(np.uint8))
    match = search(crowd, query, 0.6, 0.1)[0]
    assert match.name == "x" and match.recognised and match.second_distance > 1.0


def test_search_timing_and_the_matcher_tool():
    index = random_index(1000, per_person=4)
    assert index.size == 250 and index.embeddings.shape == (1000, 128)
    times = time_search(index, batch=2, repeat=5)
    assert len(times) == 5 and min(times) > 0
    tool = subprocess.run(
        [
            sys.executable,
            str(REPO_DIR / "tools" / "bench_matcher.py"),
            "--people",
            "300",
            "--repeat",
            "5",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert tool.returncode == 0, tool.stderr
    assert (
        "300 people x 5 = 1500 embeddings" in tool.stdout
        and "search, 1 queries per call" in tool.stdout
    )


def test_soak_samples_the_real_daemon_and_reports_slopes(facedata, tmp_path, capsys):
    """A short soak: the daemon as a child process, looping the clip, sampled from /proc."""
    out = tmp_path / "soak.json"
    assert main(["bench", "--soak", "0.5", "--interval", "5", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert len(report["samples"]) >= 4 and report["exit_code"] == 0
    assert all(s["rss_mib"] > 50 and s["fds"] > 3 for s in report["samples"])
    assert report["grants"] >= 1  # the loop really ran the door: Lin-Manuel Miranda let in
    assert report["rss_mib_per_hour"] is not None
    assert "MiB/h" in capsys.readouterr().out


def test_soak_refuses_nonsense(capsys):
    assert main(["bench", "--soak", "0"]) == 2
    assert "--soak takes" in capsys.readouterr().err
