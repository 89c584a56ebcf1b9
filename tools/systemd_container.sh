#!/usr/bin/env bash
# Prove the systemd unit under a real systemd: a Debian 12 amd64 root (debootstrap, cached),
# the project installed into it by tools/install_pi.sh exactly as on a Pi, then the root
# booted with `systemd-nspawn --boot`. Inside, tools/systemd_container_inside.sh runs as a
# service of that systemd, against the unit with its full hardening: a drop-in switches the
# camera to a replayed video and GPIO to gpiozero's MockFactory, nothing else. It checks
# start/READY and a grant, reload with a good and a broken config, the STATUS text, the
# journal's structured fields, a hung camera restarted by the watchdog, kill -9 restarted,
# a clean stop, the door never unlocked by any of it, no EPERM/SIGSYS from the sandbox, and
# `systemd-analyze security` at or below 1.5. It prints the wall time of each phase.
#
#   sudo tools/systemd_container.sh [--fresh] [--keep]
#
#   --fresh   build the Debian root again with debootstrap even if a cached one exists
#   --keep    leave the booted root in CACHE/run afterwards (to look at its journal:
#             journalctl -D CACHE/run/var/log/journal -u pi-facegate)
#
# Environment: FACEGATE_NSPAWN_CACHE (default /var/cache/pi-facegate-nspawn) holds the
# pristine root, apt's and pip's download caches and the logs of the last run;
# FACEGATE_TESTDATA (default ../shared/facedata), bound read-only at /srv/facedata.
# Needs root; installs systemd-container and debootstrap if missing. Works where the host
# itself has no systemd and no system bus (--register=no --keep-unit), on cgroup v1 or v2.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${FACEGATE_NSPAWN_CACHE:-/var/cache/pi-facegate-nspawn}
FACEDATA=${FACEGATE_TESTDATA:-$HERE/../shared/facedata}
SUITE=bookworm
# A Raspberry Pi OS image has these; dbus for systemctl/loginctl, procps for kill
BASE_PACKAGES=systemd,systemd-sysv,dbus,ca-certificates,sudo,procps
BASE="$CACHE/base-$SUITE-amd64"
ROOT="$CACHE/run"
LOGS="$CACHE/logs"
CLONE=/home/pi/pi-facegate
RESULTS=/var/log/pi-facegate-ci # inside the root: what the check leaves for us
FRESH=0
KEEP=0
BOOT_LIMIT=900 # seconds: a hang must fail CI, not eat its 90 minutes

declare -A SECONDS_OF=()
PHASES=()
TAG=systemd_container
# shellcheck source=tools/root_common.sh
source "$HERE/tools/root_common.sh"

host_packages() { need_packages systemd-container debootstrap; }


base_key() { echo "$SUITE amd64 minbase $BASE_PACKAGES"; }

build_base() {
  local mirror tmp="$BASE.tmp"
  mirror=$(host_mirror)
  rm -rf --one-file-system "$tmp" "$BASE"
  log "debootstrap $SUITE amd64 from $mirror (minbase + $BASE_PACKAGES)"
  if ! debootstrap --variant=minbase --include="$BASE_PACKAGES" "$SUITE" "$tmp" "$mirror" \
    >"$LOGS/debootstrap.log" 2>&1; then
    tail -n 20 "$LOGS/debootstrap.log" >&2
    die "debootstrap failed (log: $LOGS/debootstrap.log)"
  fi
  if grep -qs "Suites: $SUITE" /etc/apt/sources.list.d/debian.sources; then
    cp /etc/apt/sources.list.d/debian.sources "$tmp/etc/apt/sources.list.d/debian.sources"
    rm -f "$tmp/etc/apt/sources.list"
  fi
  base_key >"$tmp/.pi-facegate-nspawn-base"
  mv "$tmp" "$BASE"
}

base_root() {
  if [ "$FRESH" = 0 ] && [ "$(cat "$BASE/.pi-facegate-nspawn-base" 2>/dev/null)" = "$(base_key)" ]; then
    log "reusing the cached Debian root $BASE (--fresh rebuilds it)"
    return
  fi
  build_base
}

# pip and apt reach the package indexes as this host does (its pip settings and CAs)
host_settings() {
  [ -f /etc/pip.conf ] && cp /etc/pip.conf "$ROOT/etc/pip.conf"
  if [ -d /etc/xdg/pip ]; then
    mkdir -p "$ROOT/etc/xdg"
    cp -a /etc/xdg/pip "$ROOT/etc/xdg/"
  fi
  cp /etc/ssl/certs/ca-certificates.crt "$ROOT/usr/local/share/ca-certificates/pi-facegate-host.crt"
  cp /etc/ssl/certs/ca-certificates.crt "$ROOT/etc/ssl/certs/ca-certificates.crt"
  echo pi-facegate-ci >"$ROOT/etc/hostname"
  [ -s "$ROOT/etc/hosts" ] || printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost\n' >"$ROOT/etc/hosts"
  printf '127.0.1.1\tpi-facegate-ci\n' >>"$ROOT/etc/hosts" # sudo resolves its host name
}

# the clone a Pi user would have: tracked and new files, no venvs or caches
copy_repo() { copy_clone "$ROOT$CLONE"; }

fresh_root() {
  rm -rf --one-file-system "$ROOT"
  cp -a "$BASE" "$ROOT"
  host_settings
  copy_repo
}

# nspawn_run COMMAND...: run a command in the root (not booted: no systemd inside, as in a
# chroot), sharing the host's network for pip and apt
nspawn_run() {
  mkdir -p "$CACHE/pip-cache" "$CACHE/apt-archives/partial"
  local env=() v
  for v in PIP_INDEX_URL PIP_EXTRA_INDEX_URL PIP_TRUSTED_HOST PIP_DEFAULT_TIMEOUT PIP_RETRIES; do
    [ -n "${!v:-}" ] && env+=("--setenv=$v=${!v}")
  done
  timeout --kill-after=30 1800 systemd-nspawn -q -D "$ROOT" --machine=pi-facegate-ci --register=no --keep-unit \
    --console=pipe --resolv-conf=copy-host --bind-ro="$(cd "$FACEDATA" && pwd)":/srv/facedata \
    --bind="$CACHE/pip-cache":/root/.cache/pip --bind="$CACHE/apt-archives":/var/cache/apt/archives \
    --setenv=PIP_DISABLE_PIP_VERSION_CHECK=1 "${env[@]}" "$@"
}

install_project() {
  nspawn_run bash "$CLONE/tools/install_pi.sh" 2>&1 | tee "$LOGS/install.log"
  grep -q '^install_pi: done' "$LOGS/install.log" || die "the installer failed (log: $LOGS/install.log)"
  # Run again with the unit file edited by hand: exactly that one change is put back and
  # counted (a change made inside a pipe once went uncounted: "nothing to change", and a
  # running service was not restarted after an update).
  echo "# edited by hand" >>"$ROOT/etc/systemd/system/pi-facegate.service"
  nspawn_run bash "$CLONE/tools/install_pi.sh" >"$LOGS/install-2.log" 2>&1 ||
    die "the second installer run failed (log: $LOGS/install-2.log)"
  grep -q '^install_pi: done: 1 change(s)$' "$LOGS/install-2.log" ||
    die "the second run with an edited unit: $(grep '^install_pi: done' "$LOGS/install-2.log"), want 1 change (log: $LOGS/install-2.log)"
  ! grep -q 'edited by hand' "$ROOT/etc/systemd/system/pi-facegate.service" || die "the edited unit was not put back"
  log "installer again with the unit edited by hand: $(grep '^install_pi: change' "$LOGS/install-2.log" | sed 's/install_pi: //')"
  # enrol the person of the replay, switch the installed config's camera to the replay
  nspawn_run bash "$CLONE/tools/systemd_container_inside.sh" prepare /srv/facedata 2>&1 |
    tee "$LOGS/prepare.log"
  [ "${PIPESTATUS[0]}" = 0 ] || die "preparing the root failed (log: $LOGS/prepare.log)"
}

# What CI adds to the installed unit: a replayed camera and simulated GPIO (the drop-in and
# the config edit), a 10 s watchdog so that the hung-camera check is short, and the check
# itself as a service that starts when the system is up.
prepare_checks() {
  local dropin="$ROOT/etc/systemd/system/pi-facegate.service.d"
  mkdir -p "$dropin" "$ROOT$RESULTS"
  cat >"$dropin/ci-replay.conf" <<'EOF'
# CI only (tools/systemd_container.sh): no camera and no GPIO in the container. The camera
# is switched to replay in /etc/pi-facegate/config.yaml; GPIO is gpiozero's MockFactory.
[Service]
ExecStart=
ExecStart=/opt/pi-facegate/venv/bin/facegate run --config /etc/pi-facegate/config.yaml --simulate-gpio
WatchdogSec=10
EOF
  cat >"$ROOT/etc/systemd/system/pi-facegate-ci-check.service" <<EOF
[Unit]
Description=pi-facegate CI check under a real systemd
After=multi-user.target

[Service]
Type=exec
ExecStart=/bin/bash $CLONE/tools/systemd_container_inside.sh check /srv/facedata $RESULTS
StandardOutput=journal+console
StandardError=journal+console

[Install]
WantedBy=multi-user.target
EOF
  ln -sf /etc/systemd/system/pi-facegate-ci-check.service \
    "$ROOT/etc/systemd/system/multi-user.target.wants/pi-facegate-ci-check.service"
  # no getty on the console (its prompt would mix with the check's lines)
  ln -sf /dev/null "$ROOT/etc/systemd/system/console-getty.service"
  mkdir -p "$ROOT/var/log/journal" # a persistent journal, to read after the container is gone
}

# --private-network: the booted system gets its own network namespace, and with it the
# CAP_NET_ADMIN that systemd needs to bring up loopback in the unit's PrivateNetwork=
# (without it: "Failed to configure loopback network device ... Operation not permitted").
boot() {
  local rc=0
  timeout --kill-after=30 "$BOOT_LIMIT" systemd-nspawn -q -D "$ROOT" --machine=pi-facegate-ci --boot --register=no \
    --keep-unit --private-network --bind-ro="$(cd "$FACEDATA" && pwd)":/srv/facedata --console=pipe </dev/null \
    >"$LOGS/boot.log" 2>&1 || rc=$?
  journalctl -D "$ROOT/var/log/journal" -u pi-facegate-ci-check.service --no-pager -o cat \
    2>/dev/null | tee "$LOGS/check.log" | grep -a '^\[ci-check' || true
  [ "$rc" = 0 ] || log "systemd-nspawn exited with status $rc (124: the check took over $BOOT_LIMIT s)"
  cp -a "$ROOT$RESULTS/." "$LOGS/" 2>/dev/null || true
  journalctl -D "$ROOT/var/log/journal" -u pi-facegate --no-pager -o short-precise \
    >"$LOGS/journal-pi-facegate.txt" 2>&1 || true
  grep -q '^RESULT ok' "$LOGS/result.txt" 2>/dev/null ||
    die "the check under systemd failed: $(tail -n 1 "$LOGS/result.txt" 2>/dev/null || echo 'no result') (logs: $LOGS)"
}

summary() {
  local name
  echo
  echo "systemd_container: Debian $SUITE amd64 under systemd-nspawn $(systemd-nspawn --version | head -n1 | awk '{print $2}'), $(nproc) host cores"
  phase_table
  grep -h '^SUMMARY ' "$LOGS/result.txt" | sed 's/^SUMMARY /  /'
  echo "  logs: $LOGS"
}

cleanup() {
  local rc=$?
  if [ "$KEEP" = 0 ] && [ -d "$ROOT" ]; then rm -rf --one-file-system "$ROOT"; fi
  [ "$rc" = 0 ] || log "exit status $rc (logs: $LOGS)"
  exit "$rc"
}

main() {
  while [ $# -gt 0 ]; do
    case $1 in
      --fresh) FRESH=1 ;;
      --keep) KEEP=1 ;;
      -h | --help)
        sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'
        exit 0
        ;;
      *) die "unknown option $1 (see --help)" ;;
    esac
    shift
  done
  [ "$(id -u)" = 0 ] || die "run as root (debootstrap and systemd-nspawn need it)"
  [ "$(uname -m)" = x86_64 ] || die "this check builds an amd64 root: run it on x86_64"
  [ -f "$FACEDATA/face_recognition_examples/examples/short_hamilton_clip.mp4" ] ||
    die "the shared face photos are not at $FACEDATA (set FACEGATE_TESTDATA)"
  mkdir -p "$LOGS"
  exec 9>"$CACHE/.lock"
  flock -n 9 || die "another tools/systemd_container.sh uses $CACHE"
  rm -f "$LOGS"/*.log "$LOGS"/*.txt
  trap cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  phase "host packages (nspawn, debootstrap)" host_packages
  phase "debootstrap (or cached root)" base_root
  phase "copy root, repo, host settings" fresh_root
  phase "installer (tools/install_pi.sh)" install_project
  prepare_checks
  phase "boot, checks, poweroff" boot
  summary
  log "PASSED"
}

main "$@"
