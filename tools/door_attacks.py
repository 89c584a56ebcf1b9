"""Door-level presentation-attack figures: NUAA sessions replayed through the real daemon.

    .venv/bin/python tools/door_attacks.py [--subjects 0002 0003] [--fps 10] [--json FILE]

For each subject, the person is enrolled from the first frame of their first live session;
then every capture session of ``pad_nuaa/ImposterRaw/<subject>`` (printed photos, held
still, moved or bent) and of ``ClientRaw/<subject>`` (live) is replayed as a camera through
``DoorService`` with simulated GPIO, each frame stamped at ``--fps`` (NUAA sessions are sampled
about every 4th frame of a webcam). Reports per session kind: presentations, unlocks,
``presentation_attack`` and ``no_liveness`` denials (APCER / BPCER at the door). The
thresholds were tuned on subject 0001 (planarity) and calibrated on 0001 (texture): report
on 0002-0003.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from pi_facegate.cli import main as facegate  # noqa: E402
from pi_facegate.config.loader import load_config  # noqa: E402
from pi_facegate.daemon.service import DoorService, RunOptions  # noqa: E402
from pi_facegate.paths import facedata_dir  # noqa: E402
from pi_facegate.storage.events import EventLog  # noqa: E402


def sessions(root: Path) -> dict[str, list[Path]]:
    """Capture sessions of one NUAA folder: file-name prefix -> frames in capture order."""
    found: dict[str, list[Path]] = collections.defaultdict(list)
    for path in root.glob("*.jpg"):
        found[path.stem.rsplit("_", 1)[0]].append(path)
    return {
        key: sorted(paths, key=lambda p: int(p.stem.rsplit("_", 1)[1]))
        for key, paths in sorted(found.items())
    }


def replay(state: Path, frames: list[Path], fps: float, config: Path) -> list[str]:
    """Run the daemon on ``frames``; return the event kinds (with denial reasons)."""
    folder = state / "frames"
    if folder.exists():
        for old in folder.iterdir():
            old.unlink()
    else:
        folder.mkdir()
    for i, path in enumerate(frames):
        (folder / f"{i:04d}.jpg").symlink_to(path)
    events = state / "events.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{events}{suffix}").unlink(missing_ok=True)
    options = RunOptions(
        config_path=config, state_dir=state, replay=folder, replay_fps=0, simulate_gpio=True
    )
    service = DoorService(options, load_config(config))
    service.start()
    try:
        for index in range(len(frames) + 1):
            frame = service.camera.read(1.0)
            if frame is None:
                break
            service.process(frame.image, index / fps, frame.lores)
    finally:
        service.close()
    return [
        f"{e.kind}:{e.detail.get('reason', '')}" if e.kind == "denied" else e.kind
        for e in EventLog(events).query()
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--subjects", nargs="+", default=["0002", "0003"])
    parser.add_argument("--fps", type=float, default=10.0)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    nuaa = facedata_dir() / "pad_nuaa"
    table: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for subject in args.subjects:
            state = Path(tmp) / subject
            state.mkdir()
            config = state / "config.yaml"
            config.write_text("camera:\n  detect_width: 320\n")
            live = sessions(nuaa / "ClientRaw" / subject)
            first = next(iter(live.values()))[0]
            enrol = ["enroll", f"NUAA {subject}", str(first), "--config", str(config)]
            if facegate([*enrol, "--state-dir", str(state)]) != 0:
                return 1
            for kind, folder in (("attack (print)", "ImposterRaw"), ("live", "ClientRaw")):
                for name, frames in sessions(nuaa / folder / subject).items():
                    kinds = replay(state, frames, args.fps, config)
                    unlocked = "unlocked" in kinds
                    counts = table[kind]
                    counts["presentations"] += 1
                    counts["unlocked"] += unlocked
                    counts["presentation_attack"] += "presentation_attack" in kinds
                    counts["no_liveness"] += "denied:no_liveness" in kinds
                    counts["never recognised"] += not any(
                        k.startswith(("granted", "presentation_attack", "denied:no_liveness"))
                        for k in kinds
                    )
                    rows.append(
                        {
                            "subject": subject,
                            "kind": kind,
                            "session": name,
                            "frames": len(frames),
                            "unlocked": unlocked,
                            "events": kinds,
                        }
                    )
    print(
        f"{'kind':16} {'presentations':>13} {'unlocked':>8} {'attack':>7} {'no_liveness':>11} {'not recognised':>14}"
    )
    for kind, c in table.items():
        print(
            f"{kind:16} {c['presentations']:>13} {c['unlocked']:>8} {c['presentation_attack']:>7} "
            f"{c['no_liveness']:>11} {c['never recognised']:>14}"
        )
    if args.json:
        args.json.write_text(json.dumps({"summary": table, "sessions": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
