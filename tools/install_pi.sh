#!/usr/bin/env bash
# Install pi-facegate on a Raspberry Pi (Raspberry Pi OS Bookworm or Trixie, 64-bit) from a
# clone of this repository. Run it as root; run it again after a `git pull` to update.
#
#   sudo tools/install_pi.sh [--prefix DIR] [--no-systemd] [--mqtt | --no-mqtt] [--dry-run]
#
# What it does, each step only if it is not done already (a second run changes nothing):
#  1. apt: python3-venv, python3-numpy (the system numpy that apt's picamera2 is built against),
#     python3-systemd (journald, sd_notify), libegl1 libgles2 (MediaPipe), libgl1 libglib2.0-0
#     libxcb1 (the OpenCV that MediaPipe requires), procps (/bin/kill for `systemctl reload`);
#     python3-picamera2 and python3-lgpio where apt knows them (Raspberry Pi OS's archive has
#     them, Debian's does not).
#  2. the service user `facegate`, in the groups `video` (camera) and `gpio` (relay).
#  3. a venv in PREFIX/venv made with --system-site-packages, so that it sees apt's picamera2
#     and uses the system's numpy: pip gets numpy==<apt's version> as a constraint, plus
#     tools/constraints-numpy1.txt (numpy<2 and friends) where that is numpy 1.x (Bookworm).
#  4. the project, with its [pi] extra: the checkout is copied to PREFIX/src, built into a
#     wheel and installed (not editable: the service never runs code from the clone). The
#     models stay in PREFIX/src/models; FACEGATE_MODELS points there (the unit's drop-in
#     and the /usr/local/bin/facegate command set it).
#  5. /etc/pi-facegate/config.yaml from the repository's config.yaml, with the gallery and
#     the event log in /var/lib/pi-facegate so that `sudo -u facegate facegate ...` and the
#     service use the same files. An edited config is never overwritten: a newer default is
#     put beside it as config.yaml.new.
#  6. /var/lib/pi-facegate (mode 0700, owned by facegate): the gallery and the event log.
#  7. the systemd unit in /etc/systemd/system, enabled (not started: check the config first).
#     Where systemd is not running (a chroot, a container) the unit is enabled offline with
#     `systemctl --root=/` and nothing is started.
#  8. with --mqtt (MQTT / Home Assistant, the config's mqtt: section): the [mqtt] extra
#     (paho-mqtt), and a drop-in pi-facegate.service.d/mqtt.conf that opens the offline unit
#     only as far as the broker needs: PrivateNetwork=no, Internet sockets, and IP traffic to
#     the broker's address alone (IPAddressDeny=any stays). The address is the config's
#     mqtt.host if that is an IP address; a host name is resolved now and its addresses
#     allowed (plus localhost, for a local resolver): run the installer again if they
#     change, or set IPAddressAllow= in the drop-in by hand. No mqtt.host yet: only localhost
#     is allowed (set it, then run the installer again). Remembered: later runs keep the
#     drop-in up to date; --no-mqtt removes it (the service is offline again).
# Then it checks, as the service user, that the config is valid and both models are found,
# and with systemd-analyze that the installed unit loads.
#
# Options:
#   --prefix DIR   where the venv and the copy of the project go (default /opt/pi-facegate)
#   --no-systemd   do not install or enable the systemd unit
#   --mqtt         install the [mqtt] extra and the MQTT network drop-in (step 8)
#   --no-mqtt      remove the MQTT network drop-in (the service is offline again)
#   --dry-run      say what would change, change nothing
set -euo pipefail
umask 022 # whatever sudo passed on: the service user must be able to read what we install

PREFIX=/opt/pi-facegate
WITH_SYSTEMD=1
DRY_RUN=0
WITH_MQTT="" # 1: --mqtt, 0: --no-mqtt, empty: as before (the drop-in is there: yes)
EXTRAS=pi

SERVICE_USER=facegate
SERVICE_GROUPS=(video gpio)
CONFIG_DIR=/etc/pi-facegate
STATE_DIR=/var/lib/pi-facegate
UNIT_NAME=pi-facegate.service
UNIT_DIR=/etc/systemd/system
MQTT_DROPIN_NAME=mqtt.conf
COMMAND=/usr/local/bin/facegate
# What goes into PREFIX/src: enough to build the wheel, plus the models, the default
# config, the unit and the constraints.
SOURCE_ITEMS=(setup.cfg pyproject.toml README.md config.yaml pi_facegate models systemd
  tools/constraints-numpy1.txt)

# procps: /bin/kill, the unit's ExecReload (a minimal Debian lacks it).
APT_REQUIRED=(python3 python3-venv python3-numpy python3-systemd
  libegl1 libgles2 libgl1 libglib2.0-0 libxcb1 procps)
APT_OPTIONAL=(python3-picamera2 python3-lgpio)
# Only if apt has no python3-systemd: pip then builds systemd-python from source.
APT_SYSTEMD_BUILD=(libsystemd-dev pkg-config gcc python3-dev)

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CHANGES=0
APT_UPDATED=0

usage() {
  sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'
}

say() { printf 'install_pi: %s\n' "$*"; }
ok() { say "ok       $*"; }
die() {
  printf 'install_pi: error: %s\n' "$*" >&2
  exit 1
}

# Announce a change; in --dry-run mode the caller's `run` commands are only printed.
change() {
  CHANGES=$((CHANGES + 1))
  if [ "$DRY_RUN" = 1 ]; then say "would    $*"; else say "change   $*"; fi
}

run() {
  if [ "$DRY_RUN" = 1 ]; then
    printf 'install_pi:            + %s\n' "$*"
  else
    "$@"
  fi
}

sha_of() { sha256sum "$1" | cut -d' ' -f1; }

# A digest of a tree's file names and contents (build leftovers and bytecode left out), so
# "is the installed copy the same as the checkout" needs no copy.
tree_digest() {
  (
    cd "$1"
    find "${SOURCE_ITEMS[@]}" -type f \
      ! -path '*/__pycache__/*' ! -name '*.pyc' ! -path '*.egg-info/*' -print0 2>/dev/null |
      LC_ALL=C sort -z | xargs -0 -r sha256sum
  ) | sha256sum | cut -d' ' -f1
}

# Write stdin to PATH (mode, owner) unless PATH already has exactly that content.
install_content() {
  local path=$1 mode=$2 owner=$3 what=$4 tmp
  tmp=$(mktemp)
  cat >"$tmp"
  if [ -f "$path" ] && cmp -s "$tmp" "$path"; then
    ok "$what ($path)"
    rm -f "$tmp"
    ensure_mode "$path" "$mode" "$owner"
    return 1
  fi
  change "$what: write $path"
  run install -D -m "$mode" -o "${owner%:*}" -g "${owner#*:}" "$tmp" "$path"
  rm -f "$tmp"
  return 0
}

ensure_mode() {
  local path=$1 mode=$2 owner=$3 have
  have=$(stat -c '%a %U:%G' "$path")
  if [ "$have" != "${mode#0} $owner" ]; then
    change "set $path to mode $mode, owner $owner (was $have)"
    run chown "$owner" "$path"
    run chmod "$mode" "$path"
  fi
}

ensure_dir() {
  local path=$1 mode=$2 owner=$3
  if [ ! -d "$path" ]; then
    change "create $path (mode $mode, owner $owner)"
    run install -d -m "$mode" -o "${owner%:*}" -g "${owner#*:}" "$path"
  else
    ok "$path"
    ensure_mode "$path" "$mode" "$owner"
  fi
}

# --------------------------------------------------------------------------------- checks
check_system() {
  [ "$(uname -s)" = Linux ] || die "this installer is for Raspberry Pi OS (Linux)"
  if [ "$(id -u)" != 0 ] && [ "$DRY_RUN" = 0 ]; then
    die "run it as root: sudo $0"
  fi
  command -v apt-get >/dev/null || die "apt-get not found: this installer is for Raspberry Pi OS / Debian"
  for item in "${SOURCE_ITEMS[@]}"; do
    [ -e "$REPO/$item" ] || die "$REPO/$item is missing: run this script from a complete clone"
  done
  case "$(uname -m)" in
    aarch64 | arm64) ;;
    *) say "note: this is a $(uname -m) machine; the Pi runs 64-bit Raspberry Pi OS (aarch64)" ;;
  esac
}

check_python() {
  local py
  py=$(command -v python3) || die "python3 is missing after the apt step"
  "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
    die "pi-facegate needs Python >= 3.11 (Bookworm has 3.11, Trixie 3.13); this is $("$py" -V)"
}

# ------------------------------------------------------------------------------------ apt
deb_installed() {
  # Trixie renamed some libraries (libglib2.0-0 -> libglib2.0-0t64); either counts.
  local p
  for p in "$1" "${1}t64"; do
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' && return 0
  done
  return 1
}

apt_knows() {
  local candidate
  candidate=$(apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ {print $2; exit}')
  [ -n "$candidate" ] && [ "$candidate" != "(none)" ]
}

apt_update_once() {
  [ "$APT_UPDATED" = 1 ] && return 0
  APT_UPDATED=1
  say "apt-get update"
  run apt-get update -q
}

step_apt() {
  local p want=() optional=()
  for p in "${APT_REQUIRED[@]}"; do deb_installed "$p" || want+=("$p"); done
  for p in "${APT_OPTIONAL[@]}"; do deb_installed "$p" || optional+=("$p"); done
  if [ ${#want[@]} -gt 0 ]; then apt_update_once; fi
  for p in "${optional[@]}"; do
    if apt_knows "$p"; then
      want+=("$p")
    else
      say "note: apt has no $p (it comes from Raspberry Pi OS's archive); continuing without it"
    fi
  done
  if ! deb_installed python3-systemd && ! apt_knows python3-systemd; then
    say "note: apt has no python3-systemd: pip will build systemd-python (needs a compiler)"
    for p in "${APT_SYSTEMD_BUILD[@]}"; do deb_installed "$p" || want+=("$p"); done
  fi
  if [ ${#want[@]} -eq 0 ]; then
    ok "apt packages (${APT_REQUIRED[*]}; optional: ${APT_OPTIONAL[*]})"
    return
  fi
  apt_update_once
  change "apt-get install ${want[*]}"
  run env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${want[@]}"
}

# ----------------------------------------------------------------------------------- user
step_user() {
  local g
  for g in "${SERVICE_GROUPS[@]}"; do
    if getent group "$g" >/dev/null; then
      ok "group $g"
    else
      change "create the system group $g"
      run groupadd --system "$g"
    fi
  done
  if ! getent passwd "$SERVICE_USER" >/dev/null; then
    change "create the system user $SERVICE_USER (groups ${SERVICE_GROUPS[*]})"
    run useradd --system --user-group --home-dir "$STATE_DIR" --no-create-home \
      --shell /usr/sbin/nologin --comment "pi-facegate door controller" \
      --groups "$(
        IFS=,
        echo "${SERVICE_GROUPS[*]}"
      )" "$SERVICE_USER"
    return
  fi
  ok "user $SERVICE_USER"
  for g in "${SERVICE_GROUPS[@]}"; do
    if id -nG "$SERVICE_USER" | tr ' ' '\n' | grep -qx "$g"; then
      ok "user $SERVICE_USER in group $g"
    else
      change "add $SERVICE_USER to the group $g"
      run usermod -a -G "$g" "$SERVICE_USER"
    fi
  done
}

# ----------------------------------------------------------------------------------- venv
VENV=""
SRC=""

step_venv() {
  local cfg="$VENV/pyvenv.cfg"
  if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c '' 2>/dev/null &&
    grep -qx 'include-system-site-packages = true' "$cfg"; then
    ok "venv $VENV (--system-site-packages, $("$VENV/bin/python" -V))"
    return
  fi
  if [ -e "$VENV" ]; then
    change "recreate $VENV (broken, or made without --system-site-packages)"
    run rm -rf "$VENV"
  else
    change "create the venv $VENV (--system-site-packages)"
  fi
  run mkdir -p "$PREFIX"
  run python3 -m venv --system-site-packages "$VENV"
}

step_source() {
  local want have staging
  want=$(tree_digest "$REPO")
  have=$([ -d "$SRC" ] && tree_digest "$SRC" || echo none)
  if [ "$want" = "$have" ]; then
    ok "project copy $SRC (same as $REPO)"
    return
  fi
  change "copy the project from $REPO to $SRC"
  [ "$DRY_RUN" = 1 ] && return
  staging="$SRC.new"
  rm -rf "$staging"
  mkdir -p "$staging"
  tar -C "$REPO" -cf - --exclude=__pycache__ --exclude='*.pyc' --exclude='*.egg-info' \
    "${SOURCE_ITEMS[@]}" | tar -C "$staging" -xf - --no-same-owner --no-same-permissions
  chmod -R u+rwX,go+rX,go-w "$staging"
  rm -rf "$SRC"
  mv "$staging" "$SRC"
}

# The unit's Documentation= names PREFIX/README.md.
step_readme_link() {
  if [ "$(readlink "$PREFIX/README.md" 2>/dev/null)" = src/README.md ]; then
    ok "$PREFIX/README.md -> src/README.md"
  else
    change "link $PREFIX/README.md to src/README.md (the unit's Documentation=)"
    run ln -sfn src/README.md "$PREFIX/README.md"
  fi
}

# The version of apt's numpy (python3-numpy), which apt's picamera2 and simplejpeg are built
# against: the venv must use that one, not a copy of its own.
system_numpy() {
  /usr/bin/python3 -c 'import numpy; print(numpy.__version__)' 2>/dev/null ||
    die "apt's python3-numpy does not import: $(/usr/bin/python3 -c 'import numpy' 2>&1 | tail -n1)"
}

# Build the project into a wheel when the copy changed, then let pip install it with the [pi]
# extra, numpy pinned to the system's (and, for numpy 1.x, tools/constraints-numpy1.txt). A
# wheel of the installed version is left alone by pip ("already installed"), so the second
# run installs nothing; a changed copy is reinstalled.
step_pip() {
  local pip="$VENV/bin/pip" stamp="$VENV/.pi-facegate-installed" wheels="$PREFIX/wheels"
  local numpy want wheel out pins own
  if [ "$DRY_RUN" = 1 ] && ! /usr/bin/python3 -c 'import numpy' 2>/dev/null; then
    numpy="(apt's version)"
  else
    numpy=$(system_numpy)
  fi
  if [ "$DRY_RUN" = 1 ] && [ ! -x "$pip" ]; then
    change "pip install pi-facegate[$EXTRAS] into $VENV (numpy==$numpy, the system's)"
    return
  fi
  want="$(tree_digest "$SRC") numpy==$numpy [$EXTRAS]"
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ] || ! compgen -G "$wheels/pi_facegate-*.whl" >/dev/null; then
    change "build the pi-facegate wheel from $SRC"
    if [ "$DRY_RUN" = 0 ]; then
      rm -rf "$wheels" "$SRC/build"
      "$pip" wheel --quiet --no-deps --wheel-dir "$wheels" "$SRC"
      rm -rf "$SRC/build" "$SRC"/*.egg-info
      wheel=$(compgen -G "$wheels/pi_facegate-*.whl" | head -n1)
      if "$pip" show --quiet pi-facegate >/dev/null 2>&1; then
        change "reinstall pi-facegate from the changed copy"
        "$pip" install --quiet --no-deps --force-reinstall "$wheel"
      fi
    fi
  fi
  # a numpy inside the venv would hide the system's (an older installer, a manual pip install)
  own=$(compgen -G "$VENV/lib/python3*/site-packages/numpy-*.dist-info" | head -n1 || true)
  if [ -n "$own" ]; then
    change "remove the venv's own $(basename "$own" .dist-info): the system's numpy $numpy is used"
    run "$pip" uninstall --quiet --yes numpy
  fi
  if [ "$DRY_RUN" = 1 ]; then
    say "would    check the dependencies with pip (pi-facegate[$EXTRAS], numpy==$numpy)"
    return
  fi
  wheel=$(compgen -G "$wheels/pi_facegate-*.whl" | head -n1)
  pins=$(mktemp)
  echo "numpy==$numpy" >"$pins"
  local constraints=(--constraint "$pins")
  case $numpy in
    1.*) constraints+=(--constraint "$SRC/tools/constraints-numpy1.txt") ;;
  esac
  out=$(mktemp)
  if ! "$pip" install "${constraints[@]}" "${wheel}[$EXTRAS]" >"$out" 2>&1; then
    cat "$out" >&2
    rm -f "$out" "$pins"
    die "pip could not install pi-facegate[$EXTRAS] with the system's numpy $numpy (output above)"
  fi
  rm -f "$pins"
  if grep -q '^Successfully installed' "$out"; then
    change "pip: $(grep '^Successfully installed' "$out")"
  else
    ok "pip: pi-facegate[$EXTRAS] and every dependency already installed"
  fi
  rm -f "$out"
  [ "$(cat "$stamp" 2>/dev/null)" = "$want" ] || echo "$want" >"$stamp"
  "$VENV/bin/python" - "$numpy" <<'EOF' || die "the venv does not use the system's numpy"
import sys

import numpy

ok = numpy.__version__ == sys.argv[1] and numpy.__file__.startswith("/usr/lib/python3/")
state = "ok      " if ok else "error   "
print(f"install_pi: {state} numpy {numpy.__version__} from {numpy.__file__} (the system's)")
sys.exit(0 if ok else 1)
EOF
  if "$VENV/bin/python" -c 'import picamera2' 2>/dev/null; then
    ok "picamera2 (apt) imports in the venv"
  elif deb_installed python3-picamera2; then
    die "python3-picamera2 is installed but does not import in the venv: $("$VENV/bin/python" -c 'import picamera2' 2>&1 | tail -n1)"
  fi
}

step_command() {
  install_content "$COMMAND" 0755 root:root "the facegate command" <<EOF || true
#!/bin/sh
# Installed by pi-facegate's tools/install_pi.sh: the facegate command of $VENV, with the
# models this installation keeps in $SRC/models.
FACEGATE_MODELS=\${FACEGATE_MODELS:-$SRC/models}
export FACEGATE_MODELS
exec $VENV/bin/facegate "\$@"
EOF
}

# ---------------------------------------------------------------------------------- config
# The repository's config.yaml with the gallery and event log in the state dir by absolute
# path, so that the CLI run as the service user finds the service's files.
default_config() {
  local text
  text=$(sed -e "s|^  gallery: null\$|  gallery: $STATE_DIR/gallery.db|" \
    -e "s|^  events: null\$|  events: $STATE_DIR/events.db|" "$REPO/config.yaml")
  if [ "$(grep -c "^  gallery: $STATE_DIR/gallery.db\$\|^  events: $STATE_DIR/events.db\$" <<<"$text")" != 2 ]; then
    die "config.yaml has no 'storage: gallery: null / events: null' lines to point at $STATE_DIR"
  fi
  printf '%s\n' "$text"
}

# dpkg's conffile rule: install the default if there is none; replace it when the installed
# file is still the default we wrote last time; never touch one the operator edited, but put
# a changed default beside it as config.yaml.new.
step_config() {
  local target="$CONFIG_DIR/config.yaml" record="$PREFIX/config.yaml.sha256" tmp new have last
  ensure_dir "$CONFIG_DIR" 0750 "root:$SERVICE_USER"
  tmp=$(mktemp)
  default_config >"$tmp"
  new=$(sha_of "$tmp")
  have=$([ -f "$target" ] && sha_of "$target" || echo none)
  last=$(cat "$record" 2>/dev/null || echo none)
  if [ "$have" = none ]; then
    change "install $target (the repository's config.yaml)"
    run install -m 0640 -o root -g "$SERVICE_USER" "$tmp" "$target"
  elif [ "$have" = "$new" ]; then
    ok "config $target"
    ensure_mode "$target" 0640 "root:$SERVICE_USER"
  elif [ "$have" = "$last" ]; then
    change "update $target to the new default (it was not edited)"
    run install -m 0640 -o root -g "$SERVICE_USER" "$tmp" "$target"
  elif [ "$new" != "$last" ]; then
    ok "config $target was edited: kept as it is"
    ensure_mode "$target" 0640 "root:$SERVICE_USER"
    change "the new default config is in $target.new (compare: diff $target $target.new)"
    run install -m 0640 -o root -g "$SERVICE_USER" "$tmp" "$target.new"
  else
    ok "config $target (edited: kept as it is)"
    ensure_mode "$target" 0640 "root:$SERVICE_USER"
  fi
  # remember which default was shipped last, to tell an old default from an edited file
  if [ "$DRY_RUN" = 0 ] && [ "$last" != "$new" ]; then echo "$new" >"$record"; fi
  rm -f "$tmp"
}

step_state() {
  ensure_dir "$STATE_DIR" 0700 "$SERVICE_USER:$SERVICE_USER"
}

# ------------------------------------------------------------------------------------ mqtt
# The broker's host from the installed config (empty: none yet, or the config does not load:
# the config check at the end says why).
mqtt_host() {
  [ -x "$VENV/bin/python" ] && [ -f "$CONFIG_DIR/config.yaml" ] || return 0
  "$VENV/bin/python" - "$CONFIG_DIR/config.yaml" <<'PY' 2>/dev/null || true
import sys

from pi_facegate.config.loader import load_config

print(load_config(sys.argv[1]).mqtt.host or "")
PY
}

# IPAddressAllow= for HOST: an IP address as it is; localhost; a name's addresses now (sorted,
# so that a second run writes the same file), with localhost for a local resolver.
mqtt_allowed() {
  python3 - "$1" <<'PY'
import ipaddress
import socket
import sys

host = sys.argv[1]
if not host or host == "localhost":
    print("localhost")
    sys.exit()
try:
    print(ipaddress.ip_address(host))
    sys.exit()
except ValueError:
    pass
try:
    found = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
except OSError:
    found = []
print(" ".join(["localhost", *sorted({str(ipaddress.ip_address(a[4][0])) for a in found})]))
PY
}

mqtt_dropin_text() {
  local host=$1 allowed=$2 why
  if [ -z "$host" ]; then
    why="no mqtt.host in $CONFIG_DIR/config.yaml yet, so only localhost (set it, run again)"
  elif [ "$allowed" = "$host" ] || [ "$host" = localhost ]; then
    why="mqtt.host $host"
  else
    why="mqtt.host $host as resolved when this was written (run the installer again if it moves)"
  fi
  cat <<EOF
# Written by pi-facegate's tools/install_pi.sh --mqtt: the network the MQTT link needs, and
# no more; the unit is offline otherwise. IP traffic to the broker only.
# Allowed: $why.
[Service]
PrivateNetwork=no
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6
IPAddressDeny=any
IPAddressAllow=$allowed
EOF
}

step_mqtt_dropin() {
  local dropin="$UNIT_DIR/$UNIT_NAME.d/$MQTT_DROPIN_NAME" host allowed
  if [ "$WITH_MQTT" != 1 ]; then
    if [ -f "$dropin" ]; then
      change "remove $dropin (--no-mqtt: the service is offline again)"
      run rm -f "$dropin"
      UNIT_CHANGED=1
    fi
    return 0
  fi
  host=$(mqtt_host)
  allowed=$(mqtt_allowed "$host")
  if [ "$allowed" = localhost ] && [ -n "$host" ] && [ "$host" != localhost ]; then
    say "note: mqtt.host $host does not resolve now: only localhost is allowed"
  fi
  # (not a pipe: install_content counts the change in this shell)
  if install_content "$dropin" 0644 root:root "systemd drop-in (MQTT network: $allowed)" \
    < <(mqtt_dropin_text "$host" "$allowed"); then
    UNIT_CHANGED=1
  fi
}

# --------------------------------------------------------------------------------- systemd
UNIT_CHANGED=0

step_systemd() {
  local dropin="$UNIT_DIR/$UNIT_NAME.d/install.conf"
  # not a pipe: install_content must count the change in this shell (CHANGES decides the
  # "nothing to change" line and the restart of a running service after an update)
  if install_content "$UNIT_DIR/$UNIT_NAME" 0644 root:root "systemd unit" \
    < <(sed "s|/opt/pi-facegate|$PREFIX|g" "$REPO/systemd/$UNIT_NAME"); then UNIT_CHANGED=1; fi
  if install_content "$dropin" 0644 root:root "systemd drop-in (models)" <<EOF; then UNIT_CHANGED=1; fi
# Written by pi-facegate's tools/install_pi.sh: where this installation keeps its models.
[Service]
Environment=FACEGATE_MODELS=$SRC/models
EOF
  step_mqtt_dropin
  if ! command -v systemctl >/dev/null; then
    say "note: systemctl not found: the unit is installed but not enabled"
    return
  fi
  if [ -d /run/systemd/system ]; then
    if [ "$UNIT_CHANGED" = 1 ]; then run systemctl daemon-reload; fi
    if systemctl is-enabled --quiet "$UNIT_NAME" 2>/dev/null; then
      ok "$UNIT_NAME enabled"
    else
      change "enable $UNIT_NAME (start it with: systemctl start pi-facegate)"
      run systemctl enable --quiet "$UNIT_NAME"
    fi
    if [ "$CHANGES" -gt 0 ] && systemctl is-active --quiet "$UNIT_NAME"; then
      change "restart the running $UNIT_NAME with the new installation"
      run systemctl restart "$UNIT_NAME"
    fi
  else
    if systemctl --root=/ is-enabled --quiet "$UNIT_NAME" 2>/dev/null; then
      ok "$UNIT_NAME enabled"
    else
      change "enable $UNIT_NAME offline (systemctl --root=/)"
      run systemctl --root=/ enable --quiet "$UNIT_NAME"
    fi
    say "note: systemd is not running here (chroot or container): nothing was started or reloaded"
  fi
}

# ---------------------------------------------------------------------------------- verify
step_verify() {
  [ "$DRY_RUN" = 1 ] && return
  # As the service user, with the environment the unit gives it: the config is valid and
  # both models are found and match their manifests' sha256.
  cd /
  runuser -u "$SERVICE_USER" -- "$COMMAND" config check "$CONFIG_DIR/config.yaml" >/dev/null ||
    die "facegate config check $CONFIG_DIR/config.yaml failed (output above)"
  runuser -u "$SERVICE_USER" -- env FACEGATE_MODELS="$SRC/models" "$VENV/bin/python" - \
    "$CONFIG_DIR/config.yaml" "$SERVICE_USER" <<'EOF' || die "the models are not usable by the service user"
import sys
from pi_facegate.config.loader import load_config
from pi_facegate.vision.manifest import load_manifest

config = load_config(sys.argv[1])
names = [load_manifest(m).name for m in (config.detector.model, config.embedder.model)]
print(f"install_pi: ok       as {sys.argv[2]}: {sys.argv[1]} is valid, models found and "
      f"verified: {', '.join(names)}")
EOF
  if [ "$WITH_SYSTEMD" = 1 ] && command -v systemd-analyze >/dev/null; then
    systemd-analyze verify "$UNIT_DIR/$UNIT_NAME" ||
      die "systemd-analyze verify $UNIT_DIR/$UNIT_NAME found problems (above)"
    ok "systemd-analyze verify $UNIT_NAME"
  fi
}

main() {
  while [ $# -gt 0 ]; do
    case $1 in
      --prefix) [ $# -ge 2 ] || die "--prefix needs a directory"; PREFIX=$2; shift 2 ;;
      --prefix=*) PREFIX=${1#*=}; shift ;;
      --no-systemd) WITH_SYSTEMD=0; shift ;;
      --mqtt) WITH_MQTT=1; shift ;;
      --no-mqtt) WITH_MQTT=0; shift ;;
      -n | --dry-run) DRY_RUN=1; shift ;;
      -h | --help) usage; exit 0 ;;
      *) usage >&2; die "unknown option $1" ;;
    esac
  done
  case $PREFIX in /*) ;; *) die "--prefix must be an absolute path" ;; esac
  PREFIX=${PREFIX%/}
  VENV=$PREFIX/venv
  SRC=$PREFIX/src
  if [ -z "$WITH_MQTT" ]; then # remembered: an earlier --mqtt left its drop-in
    if [ -f "$UNIT_DIR/$UNIT_NAME.d/$MQTT_DROPIN_NAME" ]; then WITH_MQTT=1; else WITH_MQTT=0; fi
  fi
  if [ "$WITH_MQTT" = 1 ]; then EXTRAS=pi,mqtt; fi
  check_system
  say "installing pi-facegate from $REPO into $PREFIX$([ "$DRY_RUN" = 1 ] && echo ' (dry run)')"
  step_apt
  check_python
  step_user
  step_venv
  step_source
  step_readme_link
  step_pip
  step_command
  step_config
  step_state
  if [ "$WITH_SYSTEMD" = 1 ]; then step_systemd; else say "note: --no-systemd: unit not installed"; fi
  step_verify
  if [ "$CHANGES" = 0 ]; then
    say "done: nothing to change"
  else
    say "done: $CHANGES change(s)$([ "$DRY_RUN" = 1 ] && echo ' would be made')"
  fi
}

main "$@"
