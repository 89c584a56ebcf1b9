"""What liveness costs the door: per-frame time of the liveness stage and the delay it adds
from a face appearing to the unlock, on a replayed walk-up, liveness on vs off side by side.

    .venv/bin/python tools/measure_liveness_cost.py [--clip VIDEO] [--repeat 3]

Runs the real :class:`~pi_facegate.daemon.service.DoorService` loop on the clip (replayed
frame by frame, each frame stamped at the clip's own frame rate, so "seconds to unlock" is
clip time, independent of this machine's speed) with simulated GPIO, once with
``liveness.enabled: true`` and once with ``false``, and prints the medians.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from pi_facegate.cli import main as facegate  # noqa: E402
from pi_facegate.config.loader import load_config  # noqa: E402
from pi_facegate.daemon.service import DoorService, RunOptions  # noqa: E402
from pi_facegate.paths import facedata_dir  # noqa: E402

CLIP = Path("face_recognition_examples/examples/short_hamilton_clip.mp4")
PHOTO = Path("face_recognition_examples/examples/lin-manuel-miranda.png")


class TimedService(DoorService):
    """The daemon, with the liveness stage timed and the grant's frame noted."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.liveness_ms: list[float] = []
        self.frame_ms: list[float] = []
        self.first_face: float | None = None
        self.granted_at: float | None = None
        self._in_frame = 0.0

    def _judge_liveness(self, *args, **kwargs):
        t0 = time.perf_counter()
        try:
            return super()._judge_liveness(*args, **kwargs)
        finally:
            self._in_frame += (time.perf_counter() - t0) * 1e3

    def process(self, image, captured, lores=None):
        self._in_frame = 0.0
        t0 = time.perf_counter()
        decisions = super().process(image, captured, lores)
        self.frame_ms.append((time.perf_counter() - t0) * 1e3)
        self.liveness_ms.append(self._in_frame)
        if decisions and self.first_face is None:
            self.first_face = captured
        if any(d.granted for d in decisions) and self.granted_at is None:
            self.granted_at = captured
        return decisions


def run_once(state: Path, clip: Path, liveness: bool) -> dict[str, float | None]:
    config_path = state / f"config-{liveness}.yaml"
    config_path.write_text(f"liveness:\n  enabled: {'true' if liveness else 'false'}\n")
    options = RunOptions(
        config_path=config_path, state_dir=state, replay=clip, replay_fps=0, simulate_gpio=True
    )
    service = TimedService(options, load_config(config_path))
    service.start()
    try:
        fps = 30.0
        for index in range(100_000):
            frame = service.camera.read(1.0)
            if frame is None:  # the replay's end
                break
            service.process(frame.image, index / fps, frame.lores)
    finally:
        service.close()
    per_frame = [m for m in service.liveness_ms]
    return {
        "seconds_face_to_unlock": None
        if service.granted_at is None or service.first_face is None
        else service.granted_at - service.first_face,
        "liveness_ms_median": statistics.median(per_frame),
        # over the frames in which a recognised face was judged (the others cost nothing)
        "liveness_ms_median_judged": statistics.median([m for m in per_frame if m > 0.05] or [0]),
        "liveness_ms_p95": sorted(per_frame)[int(0.95 * (len(per_frame) - 1))],
        "liveness_ms_max": max(per_frame),
        "frame_ms_median": statistics.median(service.frame_ms),
        "frames": len(service.frame_ms),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clip", type=Path, default=None)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    data = facedata_dir()
    clip = args.clip or data / CLIP
    results: dict[str, list[dict]] = {"on": [], "off": []}
    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp)
        enrol = ["enroll", "Lin-Manuel Miranda", str(data / PHOTO), "--state-dir", str(state)]
        if facegate(enrol) != 0:
            return 1
        for _ in range(args.repeat):  # interleaved: both see the same machine load
            for key, on in (("on", True), ("off", False)):
                results[key].append(run_once(state, clip, on))
    summary = {}
    for key, runs in results.items():
        summary[key] = {
            name: statistics.median(r[name] for r in runs if r[name] is not None)
            if any(r[name] is not None for r in runs)
            else None
            for name in runs[0]
        }
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
