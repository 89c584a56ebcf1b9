#!/usr/bin/env bash
# Run the test suite: sets up .venv if needed (tools/bootstrap.sh), then pytest on
# FACEGATE_TEST_WORKERS processes (pytest-xdist; default 2, the machine's cores; 0 = in this
# process), one test file per worker so each file's model fixtures load once.
# Extra arguments go to pytest, e.g. tools/test.sh -k gallery. pytest's "no tests ran"
# (exit 5) counts as a failure.
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
venv=${FACEGATE_VENV:-$here/.venv}
"$here/tools/bootstrap.sh" "$venv" || exit 1
cd "$here" || exit 1
workers=${FACEGATE_TEST_WORKERS:-2}
parallel=()
[ "$workers" != 0 ] && parallel=(-n "$workers" --dist loadfile)
"$venv/bin/python" -m pytest "${parallel[@]}" "$@"
status=$?
if [ "$status" -eq 5 ]; then
  echo "test.sh: pytest collected no tests: treating as a failure" >&2
  exit 1
fi
exit "$status"
