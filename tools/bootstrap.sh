#!/usr/bin/env bash
# Create (or update) the development venv in .venv and install pi-facegate into it, editable,
# with the extras named in FACEGATE_EXTRAS (default: dev,tools). Safe to run again: it only
# reinstalls when setup.cfg changed. Usage: tools/bootstrap.sh [VENV_DIR]
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
venv=${1:-$here/.venv}
extras=${FACEGATE_EXTRAS:-dev,tools}
python=${PYTHON:-python3}

if [ ! -x "$venv/bin/python" ]; then
  echo "bootstrap: creating $venv" >&2
  "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --upgrade pip
fi
stamp="$venv/.facegate-installed"
want="$(cat "$here/setup.cfg" "${FACEGATE_CONSTRAINTS:-/dev/null}" | sha256sum | cut -c1-16) $extras"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "bootstrap: installing pi-facegate[$extras] into $venv" >&2
  args=(--quiet -e "$here[$extras]")
  [ -n "${FACEGATE_CONSTRAINTS:-}" ] && args+=(-c "$FACEGATE_CONSTRAINTS")
  "$venv/bin/python" -m pip install "${args[@]}"
  echo "$want" >"$stamp"
fi
