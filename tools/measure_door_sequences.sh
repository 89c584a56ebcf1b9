#!/usr/bin/env bash
# The door's multi-frame decision on live visits (the issue's "evaluated on sequences"): for
# each genuine sequence in the shared data -- the two live talking-head clips, the Hamilton
# walk-up, the first two NUAA live sessions of subjects 0001-0003 -- enrol the person from one
# frame or photo, replay the sequence at its own rate through the real daemon (`facegate run
# --replay --simulate-gpio`, the default config: votes, liveness, the threshold for the
# gallery's size) and print whether and when the first grant came.
#
#   tools/measure_door_sequences.sh [WORKDIR]     (default /tmp/pi-facegate-sequences)
set -u
here=$(cd "$(dirname "$0")/.." && pwd)
F=${FACEGATE_TESTDATA:-$here/../shared/facedata}
FG=$here/.venv/bin/facegate
PY=$here/.venv/bin/python
W=${1:-/tmp/pi-facegate-sequences}
mkdir -p "$W"
one() { # name enrol_image replay fps
  local d=$W/$1; rm -rf "$d"; mkdir -p "$d"; echo "camera: {detect_width: 320}" > "$d/config.yaml"
  $FG enroll "$1" "$2" --config "$d/config.yaml" --state-dir "$d" >/dev/null 2>&1 || { echo "$1 enrol failed"; return; }
  $FG run --config "$d/config.yaml" --state-dir "$d" --replay "$3" --replay-fps "$4" --simulate-gpio >/dev/null 2>&1
  $PY - "$d/events.db" "$1" "$4" <<'P'
import sys
from pi_facegate.storage.events import EventLog
ev = EventLog(sys.argv[1]).query()
start = next(e.time for e in ev if e.kind == "started")
g = [e for e in ev if e.kind == "granted"]
d = [e.detail.get("reason") for e in ev if e.kind in ("denied", "presentation_attack")]
p = [e for e in ev if e.kind == "liveness_prompt"]
stop = [e for e in ev if e.kind == "stopped"][-1].detail["frames"]
if g:
    print(f"{sys.argv[2]:28} granted after {g[0].time - start:5.2f} s (~{(g[0].time - start) * float(sys.argv[3]):.0f} frames of {stop}), liveness waited {g[0].detail.get('waited_s')} s, prompts {len(p)}")
else:
    print(f"{sys.argv[2]:28} NOT granted in {stop} frames; denials {sorted(set(map(str, d)))}, prompts {len(p)}")
P
}
frame0() { $PY -c "import cv2,sys; c=cv2.VideoCapture(sys.argv[1]); ok,f=c.read(); cv2.imwrite(sys.argv[2], f)" "$1" "$2"; }
nuaa() { # subject session -> folder
  local out=$W/nuaa-$2; rm -rf "$out"; mkdir -p "$out"; local i=0
  for p in $(ls $F/pad_nuaa/ClientRaw/$1/$2_*.jpg | sort -t_ -k5 -n); do ln -s "$p" "$out/$(printf %04d $i).jpg"; i=$((i+1)); done; echo "$out"; }
for c in WDA_KatieHill_000 WDA_AlexandriaOcasioCortez_000; do frame0 $F/live_clips/$c.mp4 $W/$c.png; one "$c" $W/$c.png $F/live_clips/$c.mp4 25; done
one "Lin-Manuel Miranda" $F/face_recognition_examples/examples/lin-manuel-miranda.png $F/face_recognition_examples/examples/short_hamilton_clip.mp4 30
for s in 0001 0002 0003; do
  for sess in $(ls $F/pad_nuaa/ClientRaw/$s/ | cut -c1-13 | sort -u | head -2); do
    dir=$(nuaa $s $sess); one "NUAA-$sess" "$(readlink -f $dir/0000.jpg)" "$dir" 7
  done
done
