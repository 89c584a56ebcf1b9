#!/usr/bin/env bash
# Prove pi-facegate on the Raspberry Pi's own software without a Pi: a Debian 12 (Bookworm,
# what Raspberry Pi OS is built on) arm64 root made with debootstrap, run under qemu-user via
# binfmt_misc. Inside it, tools/install_pi.sh runs exactly as a Pi user runs it (twice: the
# second run must change nothing), then the real appliance runs once with the Pi 4's CPU model
# (QEMU_CPU=cortex-a72) and once with the Pi 5's (cortex-a76): enrol from photos, identify
# other photos (the right people, and "unknown" for a stranger), and the door daemon on a
# short replay with simulated GPIO, whose grant is read back from the event log. The
# detector backend each CPU gets is checked: LiteRT on the Pi 4 (mediapipe would die with
# SIGILL there), MediaPipe on the Pi 5. Emulation is slow (about 0.5 s a frame on a 2-core
# x86-64 machine, ~80x its native speed): it proves correctness, not speed. It prints the wall
# time of each phase and the emulated time per frame. binfmt_misc stays mounted and the
# qemu-aarch64 entry enabled afterwards (as the binfmt-support service would leave them).
#
#   sudo tools/pi_emulation.sh [--fresh] [--keep]
#
#   --fresh   build the Debian root again with debootstrap even if a cached one exists
#   --keep    leave the emulated root in CACHE/run after the run (its mounts are removed)
#
# Environment: FACEGATE_EMU_CACHE (default /var/cache/pi-facegate-emu) holds the pristine
# root, apt's and pip's download caches and the logs of the last run; FACEGATE_EMU_MIRROR
# (default: this host's Debian mirror); FACEGATE_EMU_CPUS (default "cortex-a72 cortex-a76");
# FACEGATE_TESTDATA (default ../shared/facedata), bound read-only into the root.
# Each run starts from a copy of the pristine root, so the installer always runs from scratch.
# Needs root, and installs qemu-user-static, binfmt-support and debootstrap if missing.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${FACEGATE_EMU_CACHE:-/var/cache/pi-facegate-emu}
SUITE=bookworm
ARCH=arm64
# Raspberry Pi OS has systemd and sudo; the README's commands use both.
BASE_PACKAGES=ca-certificates,sudo,systemd
read -r -a CPUS <<<"${FACEGATE_EMU_CPUS:-cortex-a72 cortex-a76}"
FACEDATA=${FACEGATE_TESTDATA:-$HERE/../shared/facedata}
FRESH=0
KEEP=0

BASE="$CACHE/base-$SUITE-$ARCH"
ROOT="$CACHE/run"
LOGS="$CACHE/logs"
CLONE=/home/pi/pi-facegate # where the "Pi user's clone" lives inside the root
IN_FACEDATA=/home/pi/shared/facedata

declare -A SECONDS_OF=()
PHASES=()
TAG=pi_emulation
# shellcheck source=tools/root_common.sh
source "$HERE/tools/root_common.sh"
MOUNTS=() # mount points inside ROOT, in mount order

host_packages() { need_packages qemu-user-static binfmt-support debootstrap; }

# binfmt_misc runs arm64 binaries through qemu-aarch64-static. The F flag makes the kernel open
# the interpreter now, so it works inside the chroot without a copy of qemu there.
binfmt() {
  local entry=/proc/sys/fs/binfmt_misc/qemu-aarch64
  if ! mountpoint -q /proc/sys/fs/binfmt_misc; then
    mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
  fi
  if [ ! -e "$entry" ] || ! head -n1 "$entry" | grep -qx enabled; then
    update-binfmts --enable qemu-aarch64
  fi
  grep -q '^flags:.*F' "$entry" || die "binfmt entry qemu-aarch64 lacks the F flag: $(grep flags "$entry")"
  log "binfmt_misc: qemu-aarch64 $(head -n1 "$entry"), $(grep '^flags' "$entry"), $(qemu-aarch64-static --version | head -n1)"
}


# ------------------------------------------------------------------------------ the roots
mounts_under() { awk -v r="$1" '$5 == r || index($5, r "/") == 1 {print $5}' /proc/self/mountinfo; }

# rm -rf, but never through a mount point: a bound /dev or ../shared must not be emptied.
safe_remove() {
  local dir=$1
  [ -e "$dir" ] || return 0
  if [ -n "$(mounts_under "$dir")" ]; then
    die "refusing to delete $dir: still mounted: $(mounts_under "$dir" | tr '\n' ' ')"
  fi
  rm -rf --one-file-system "$dir"
}

base_key() { echo "$SUITE $ARCH minbase $BASE_PACKAGES"; }

build_base() {
  local mirror=${FACEGATE_EMU_MIRROR:-$(host_mirror)} tmp="$BASE.tmp"
  safe_remove "$tmp"
  safe_remove "$BASE"
  log "debootstrap $SUITE $ARCH from $mirror (packages: minbase + $BASE_PACKAGES)"
  mkdir -p "$CACHE"
  if ! debootstrap --arch="$ARCH" --variant=minbase --include="$BASE_PACKAGES" \
    "$SUITE" "$tmp" "$mirror" >"$LOGS/debootstrap.log" 2>&1; then
    tail -n 20 "$LOGS/debootstrap.log" >&2
    die "debootstrap failed (log: $LOGS/debootstrap.log)"
  fi
  # services never start inside the root
  printf '#!/bin/sh\nexit 101\n' >"$tmp/usr/sbin/policy-rc.d"
  chmod 0755 "$tmp/usr/sbin/policy-rc.d"
  # the same suites as this host's apt (updates, security) when this host is Debian 12 too
  if grep -qs "Suites: $SUITE" /etc/apt/sources.list.d/debian.sources; then
    cp /etc/apt/sources.list.d/debian.sources "$tmp/etc/apt/sources.list.d/debian.sources"
    rm -f "$tmp/etc/apt/sources.list"
  fi
  base_key >"$tmp/.pi-facegate-emu-base"
  mv "$tmp" "$BASE"
}

base_root() {
  if [ "$FRESH" = 0 ] && [ "$(cat "$BASE/.pi-facegate-emu-base" 2>/dev/null)" = "$(base_key)" ]; then
    log "reusing the cached Debian root $BASE (--fresh rebuilds it)"
    return
  fi
  build_base
}

# A Pi-like /proc/cpuinfo for each CPU model (qemu 7.2 shows the host's x86 one, on which
# ai_edge_litert and MediaPipe crash), with as many cores as /sys shows.
write_cpuinfo() {
  local cpu=$1 out=$2 n features part variant revision model boardrev i
  n=$(nproc --all)
  case $cpu in
    cortex-a72)
      features="fp asimd evtstrm crc32 cpuid" part=0xd08 variant=0x0 revision=3
      model="Raspberry Pi 4 Model B Rev 1.4" boardrev=c03114
      ;;
    cortex-a76)
      features="fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp"
      part=0xd0b variant=0x4 revision=1 model="Raspberry Pi 5 Model B Rev 1.0" boardrev=d04170
      ;;
    *) die "no cpuinfo for CPU model $cpu (known: cortex-a72, cortex-a76)" ;;
  esac
  {
    for ((i = 0; i < n; i++)); do
      printf 'processor\t: %d\nBogoMIPS\t: 108.00\nFeatures\t: %s\nCPU implementer\t: 0x41\n' "$i" "$features"
      printf 'CPU architecture: 8\nCPU variant\t: %s\nCPU part\t: %s\nCPU revision\t: %s\n\n' "$variant" "$part" "$revision"
    done
    printf 'Revision\t: %s\nSerial\t\t: 100000000badc0de\nModel\t\t: %s\n' "$boardrev" "$model"
  } >"$out"
}

# What pip and apt need to reach the package indexes exactly as this host does: its CA
# certificates, its pip settings, its resolver and hosts.
host_settings() {
  cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
  cp /etc/hosts "$ROOT/etc/hosts"
  [ -f /etc/pip.conf ] && cp /etc/pip.conf "$ROOT/etc/pip.conf"
  if [ -d /etc/xdg/pip ]; then
    mkdir -p "$ROOT/etc/xdg"
    cp -a /etc/xdg/pip "$ROOT/etc/xdg/"
  fi
  # the host's CA bundle as the root's, and as a local certificate, so that an
  # update-ca-certificates run by apt inside keeps it
  cp /etc/ssl/certs/ca-certificates.crt "$ROOT/etc/ssl/certs/ca-certificates.crt"
  cp /etc/ssl/certs/ca-certificates.crt "$ROOT/usr/local/share/ca-certificates/pi-facegate-emu-host.crt"
  # sudo keeps qemu's CPU model for the commands it runs (the README's `sudo -u facegate ...`)
  echo 'Defaults env_keep += "QEMU_CPU"' >"$ROOT/etc/sudoers.d/pi-facegate-emu"
  chmod 0440 "$ROOT/etc/sudoers.d/pi-facegate-emu"
}

# The clone a Pi user would have: tracked and new files, no venvs, caches or build output.
copy_repo() { copy_clone "$ROOT$CLONE"; }

fresh_root() {
  release_stale_mounts
  safe_remove "$ROOT"
  cp -a "$BASE" "$ROOT"
  host_settings
  copy_repo
  local cpu
  for cpu in "${CPUS[@]}"; do write_cpuinfo "$cpu" "$CACHE/cpuinfo-$cpu"; done
}

# ------------------------------------------------------------------------------- mounts
bind() { # bind SRC DEST [ro]
  [ -e "$2" ] || mkdir -p "$2"
  mount --bind "$1" "$2"
  MOUNTS+=("$2")
  if [ "${3:-}" = ro ]; then mount -o remount,bind,ro "$2"; fi
}

mount_all() {
  mount -t proc proc "$ROOT/proc"
  MOUNTS+=("$ROOT/proc")
  # without /sys XNNPACK is silently off and MediaPipe aborts in NumCPUs
  mount --rbind /sys "$ROOT/sys"
  MOUNTS+=("$ROOT/sys")
  mount --make-rslave "$ROOT/sys"
  mount --rbind /dev "$ROOT/dev"
  MOUNTS+=("$ROOT/dev")
  mount --make-rslave "$ROOT/dev"
  bind "$(cd "$FACEDATA" && pwd)" "$ROOT$IN_FACEDATA" ro
  mkdir -p "$CACHE/pip-cache" "$CACHE/apt-archives/partial"
  bind "$CACHE/pip-cache" "$ROOT/root/.cache/pip"
  bind "$CACHE/apt-archives" "$ROOT/var/cache/apt/archives"
}

# Mounts a killed earlier run left behind (ours: all lie under ROOT), innermost first.
release_stale_mounts() {
  local m
  for m in $(mounts_under "$ROOT" | sort -r); do
    log "unmounting $m, left by an earlier run"
    umount -R "$m" 2>/dev/null || umount -R -l "$m" || true
  done
}

# Processes still running inside the root (gpg-agent, a stray daemon) would hold it busy.
kill_root_processes() {
  local link pid
  for link in /proc/[0-9]*/root; do
    pid=${link#/proc/}
    pid=${pid%/root}
    [ "$(readlink "$link" 2>/dev/null)" = "$ROOT" ] || continue
    log "stopping process $pid left inside the root: $(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | cut -c1-80)"
    kill "$pid" 2>/dev/null || true
  done
}

cleanup() {
  local rc=$? i m
  set +e
  kill_root_processes
  for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do
    m=${MOUNTS[$i]}
    mountpoint -q "$m" || continue
    umount -R "$m" 2>/dev/null || umount -R -l "$m"
  done
  MOUNTS=()
  if [ -n "$(mounts_under "$ROOT")" ]; then
    log "WARNING: still mounted under $ROOT: $(mounts_under "$ROOT" | tr '\n' ' ')"
    rc=1
  elif [ "$KEEP" = 0 ] && [ -d "$ROOT" ]; then
    rm -rf --one-file-system "$ROOT"
  fi
  [ "$rc" = 0 ] || log "exit status $rc (logs: $LOGS)"
  exit "$rc"
}

# in_root CPU COMMAND...: run a command in the root, with a clean environment, as root, for
# at most LIMIT seconds (a hang must fail CI, not eat its 90 minutes)
LIMIT=1800
in_root() {
  local cpu=$1
  shift
  local env=(PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root
    LANG=C.UTF-8 TERM=dumb QEMU_CPU="$cpu" PIP_DISABLE_PIP_VERSION_CHECK=1)
  local v
  for v in PIP_INDEX_URL PIP_EXTRA_INDEX_URL PIP_TRUSTED_HOST PIP_DEFAULT_TIMEOUT PIP_RETRIES; do
    [ -n "${!v:-}" ] && env+=("$v=${!v}")
  done
  timeout --kill-after=30 "$LIMIT" chroot "$ROOT" /usr/bin/env -i "${env[@]}" "$@"
}

# ------------------------------------------------------------------------------- phases
check_root() {
  in_root cortex-a72 /usr/bin/uname -m | grep -qx aarch64 || die "the root does not run as aarch64"
}

install_first() {
  in_root cortex-a72 bash "$CLONE/tools/install_pi.sh" 2>&1 | tee "$LOGS/install-1.log"
}

# Everything the installer owns, with content, mode, owner and time: must not move on a rerun.
installed_state() {
  (
    cd "$ROOT"
    find opt/pi-facegate etc/pi-facegate var/lib/pi-facegate etc/systemd/system \
      usr/local/bin/facegate etc/passwd etc/group etc/shadow etc/gshadow \
      -printf '%p %y %m %u %g %s %T@\n' | LC_ALL=C sort
    find opt/pi-facegate etc/pi-facegate etc/systemd/system usr/local/bin/facegate -type f \
      -print0 | LC_ALL=C sort -z | xargs -0 sha256sum
  )
}

install_again() {
  local before="$LOGS/installed-before.txt" after="$LOGS/installed-after.txt" out="$LOGS/install-2.log"
  installed_state >"$before"
  touch "$LOGS/install-2.stamp"
  in_root cortex-a72 bash "$CLONE/tools/install_pi.sh" 2>&1 | tee "$out"
  installed_state >"$after"
  if ! diff -u "$before" "$after" >"$LOGS/installed-diff.txt"; then
    head -n 40 "$LOGS/installed-diff.txt" >&2
    die "the second installer run changed installed files (diff: $LOGS/installed-diff.txt)"
  fi
  grep -q '^install_pi: done: nothing to change$' "$out" || die "the second installer run reported changes"
  ! grep -q 'Successfully installed' "$out" || die "pip installed something on the second run"
  log "idempotent: the second run changed nothing ($(wc -l <"$before") installed files and dirs compared)"
  log "files newer than the second run's start (outside caches, /tmp and /run):"
  (cd "$ROOT" && find . -xdev -newer "$LOGS/install-2.stamp" \
    ! -path './tmp/*' ! -path './var/cache/*' ! -path './root/.cache/*' ! -path './var/log/*' \
    ! -path './home/pi/shared*' ! -path './proc*' ! -path './sys*' ! -path './dev*' ! -path './run/*' |
    sed 's/^/    /' | head -n 20) || true
}

run_cpu() {
  local cpu=$1 expect=$2 out="$LOGS/appliance-$1.log"
  bind "$CACHE/cpuinfo-$cpu" "$ROOT/proc/cpuinfo"
  LIMIT=900 in_root "$cpu" bash "$CLONE/tools/pi_emulation_inside.sh" "$cpu" "$expect" "$IN_FACEDATA" 2>&1 |
    tee "$out"
  umount "$ROOT/proc/cpuinfo"
  unset 'MOUNTS[${#MOUNTS[@]}-1]'
  grep -q "^RESULT $cpu ok" "$out" || die "the appliance failed on $cpu (log: $out)"
}

expected_backend() {
  case $1 in
    cortex-a72) echo litert ;;
    *) echo mediapipe ;;
  esac
}

summary() {
  local name cpu
  echo
  echo "pi_emulation: Debian $SUITE $ARCH under $(qemu-aarch64-static --version | head -n1), $(nproc) host cores"
  phase_table
  for cpu in "${CPUS[@]}"; do
    grep -h "^SUMMARY $cpu " "$LOGS/appliance-$cpu.log" | sed 's/^SUMMARY /  /'
  done
  echo "  logs: $LOGS"
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
  [ "$(id -u)" = 0 ] || die "run as root (debootstrap, chroot and mounts need it)"
  [ "$(uname -m)" = x86_64 ] || [ "$(uname -m)" = aarch64 ] || die "unsupported host $(uname -m)"
  [ -f "$FACEDATA/face_recognition_examples/examples/short_hamilton_clip.mp4" ] ||
    die "the shared face photos are not at $FACEDATA (set FACEGATE_TESTDATA)"
  mkdir -p "$LOGS"
  exec 9>"$CACHE/.lock"
  flock -n 9 || die "another tools/pi_emulation.sh uses $CACHE"
  rm -f "$LOGS"/*.log "$LOGS"/*.txt "$LOGS"/*.stamp
  trap cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  phase "host packages (qemu, debootstrap)" host_packages
  binfmt
  phase "debootstrap (or cached root)" base_root
  phase "copy root, repo, host settings" fresh_root
  mount_all
  check_root
  phase "installer, first run" install_first
  grep -q '^install_pi: done' "$LOGS/install-1.log" || die "the installer failed (log: $LOGS/install-1.log)"
  phase "installer, second run (idempotent)" install_again
  local cpu
  for cpu in "${CPUS[@]}"; do
    phase "appliance on $cpu" run_cpu "$cpu" "$(expected_backend "$cpu")"
  done
  summary
  log "PASSED"
}

main "$@"
