"""``systemctl reload`` (SIGHUP) while someone stands at the door: state is kept, not reset."""

from __future__ import annotations

import threading
import time

from pi_facegate.cli import main
from pi_facegate.config.loader import load_config
from pi_facegate.daemon.service import DoorService, RunOptions

WAIT = 60.0
LIN = "Lin-Manuel Miranda"


def test_a_reload_keeps_the_cooldown_of_the_person_at_the_door(facedata, lin_frames, tmp_path):
    frames = lin_frames
    config = tmp_path / "config.yaml"
    config.write_text(
        f"camera:\n  type: replay\n  detect_width: 320\n  replay:\n    path: {frames}\n"
        "    fps: 20\n    loop: true\naccess:\n  cooldown_seconds: 120\n"
    )
    photo = facedata / "face_recognition_examples/examples/lin-manuel-miranda.png"
    assert (
        main(["enroll", LIN, str(photo), "--config", str(config), "--state-dir", str(tmp_path)])
        == 0
    )
    kinds: list[str] = []
    got = threading.Condition()

    def tap(kind: str, fields: dict) -> None:
        with got:
            kinds.append(kind)
            got.notify_all()

    options = RunOptions(config_path=config, state_dir=tmp_path, simulate_gpio=True)
    service = DoorService(options, load_config(config), on_event=tap)
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(service.run()))
    thread.start()
    try:
        with got:
            assert got.wait_for(lambda: "granted" in kinds, WAIT), kinds
        for n in (1, 2):  # two reloads, each with a few seconds of him at the door after it
            service.request_reload()
            with got:
                assert got.wait_for(lambda n=n: kinds.count("config_reloaded") >= n, WAIT), kinds
            time.sleep(3.0)
    finally:
        service.request_stop()
        thread.join(WAIT)
    assert result == [0]
    assert kinds.count("config_reloaded") == 2
    assert kinds.count("granted") == 1 and kinds.count("unlocked") == 1, kinds


def test_liveness_switched_on_by_a_reload_loads_its_models(lin_frames, tmp_path):
    frames = lin_frames
    config = tmp_path / "config.yaml"
    camera = f"camera:\n  type: replay\n  detect_width: 320\n  replay:\n    path: {frames}\n"
    config.write_text(camera + "liveness:\n  enabled: false\n")
    options = RunOptions(config_path=config, state_dir=tmp_path, simulate_gpio=True)
    service = DoorService(options, load_config(config))
    service.start()
    try:
        assert service.texture is None and not service.policy.require_liveness
        config.write_text(camera + "liveness:\n  enabled: true\n")
        assert service.reload()
        assert service.texture is not None and service.policy.require_liveness
    finally:
        service.close()


def test_a_reload_to_a_looser_threshold_than_the_embedder_allows_is_rejected(lin_frames, tmp_path):
    """Issue 15 bug 7: a live reload to ``threshold: 2.0`` was applied; now it is rejected
    as a whole and the running threshold stays."""
    config = tmp_path / "config.yaml"
    camera = f"camera:\n  type: replay\n  detect_width: 320\n  replay:\n    path: {lin_frames}\n"
    config.write_text(camera)
    options = RunOptions(config_path=config, state_dir=tmp_path, simulate_gpio=True)
    kinds: list[str] = []
    service = DoorService(options, load_config(config), on_event=lambda k, f: kinds.append(k))
    service.start()
    try:
        before = (service.threshold, service.min_margin, service.config)
        config.write_text(camera + "matching:\n  threshold: 2.0\n  min_margin: 0.0\n")
        assert not service.reload()
        assert (service.threshold, service.min_margin, service.config) == before
        assert kinds[-1] == "config_rejected"
    finally:
        service.close()
