#!/usr/bin/env bash
# The appliance on any Linux machine, no Pi needed: sets up .venv (tools/bootstrap.sh), enrols
# Lin-Manuel Miranda from one photo, then runs the real door daemon on a replayed video of him
# walking into view, with simulated GPIO (gpiozero's MockFactory), and shows the event log:
# the relay unlocks for him. Face photos come from ../shared/facedata (or FACEGATE_TESTDATA).
# Usage: tools/demo.sh [--fast]     (--fast: replay as fast as possible instead of real time)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
venv=${FACEGATE_VENV:-$here/.venv}
FACEGATE_EXTRAS=${FACEGATE_EXTRAS:-dev} "$here/tools/bootstrap.sh" "$venv"
facedata=${FACEGATE_TESTDATA:-$here/../shared/facedata}
examples="$facedata/face_recognition_examples/examples"
if [ ! -f "$examples/short_hamilton_clip.mp4" ]; then
  echo "demo: the shared face photos are not at $facedata (set FACEGATE_TESTDATA)" >&2
  exit 1
fi
fps=30
[ "${1:-}" = "--fast" ] && fps=0
state=${FACEGATE_DEMO_DIR:-$here/var/demo}
rm -rf "$state"
facegate() { "$venv/bin/facegate" "$1" --state-dir "$state" "${@:2}"; }

echo "== 1. enrol Lin-Manuel Miranda from one photo"
facegate enroll "Lin-Manuel Miranda" "$examples/lin-manuel-miranda.png"
echo
echo "== 2. the door daemon on a replayed camera (short_hamilton_clip.mp4), simulated relay"
facegate run --replay "$examples/short_hamilton_clip.mp4" --replay-fps "$fps" --simulate-gpio
echo
echo "== 3. what the door did (facegate events)"
facegate events
echo
echo "Demo state (gallery, event log) is in $state"
