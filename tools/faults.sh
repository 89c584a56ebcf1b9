#!/usr/bin/env bash
# The fault-injection suite: the real daemon as its own process, one fault injected from
# outside each time (a hung or unplugged camera, SIGHUP/SIGTERM storms, bad configs on
# reload, planted, lost and corrupted galleries, a full disk, kill -9 at random points, a
# decompression bomb, another person's face on an update), each judged on three things: the
# door stayed locked but for genuine grants, nothing saved was lost, and the daemon said
# clearly what was wrong. Prints the table "fault | what happened | door | data" at the end
# (tests/faults/conftest.py). The tests are part of tools/test.sh (and so of CI) as well.
#
# Same venv and workers as tools/test.sh (it runs through it); extra arguments go to pytest,
# e.g. tools/faults.sh -k storm. FACEGATE_FAULTS_SEED=N replays the kill -9 points of a run
# (each run prints its seed). The disk-full fault mounts a tmpfs: it needs root, and is
# skipped with that reason otherwise.
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
exec "$here/tools/test.sh" -m faults "$here/tests/faults" "$@"
