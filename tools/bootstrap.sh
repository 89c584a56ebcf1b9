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
# facenet-pytorch (the FaceNet reference of tools/convert_facenet.py and its tests) goes in
# with --no-deps beside the tools extra: its metadata pins torch<=2.3 and torchvision, which
# pip's resolver cannot combine with the extra's torch==2.13.0; only its
# models/inception_resnet_v1.py is used (tools/facenet_reference.py), which needs torch alone.
facenet=facenet-pytorch==2.6.0
stamp="$venv/.facegate-installed"
want="$(cat "$here/setup.cfg" "${FACEGATE_CONSTRAINTS:-/dev/null}" | sha256sum | cut -c1-16) $extras $facenet"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "bootstrap: installing pi-facegate[$extras] into $venv" >&2
  args=(--quiet -e "$here[$extras]")
  [ -n "${FACEGATE_CONSTRAINTS:-}" ] && args+=(-c "$FACEGATE_CONSTRAINTS")
  "$venv/bin/python" -m pip install "${args[@]}"
  if [[ ",$extras," == *",tools,"* ]]; then
    "$venv/bin/python" -m pip install --quiet --no-deps "$facenet"
  fi
  echo "$want" >"$stamp"
fi
