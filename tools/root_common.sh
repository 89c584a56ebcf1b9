# Shared by tools/pi_emulation.sh and tools/systemd_container.sh (sourced, not run): their
# log lines, phase timing, host packages, the host's Debian mirror and the copy of the clone
# a Pi user would have. The sourcing script sets TAG (its name in log lines) and HERE (the
# repository), and declares SECONDS_OF (-A) and PHASES.

log() { printf '[%s %s] %s\n' "$TAG" "$(date +%H:%M:%S)" "$*"; }
die() {
  printf '[%s] FAILED: %s\n' "$TAG" "$*" >&2
  exit 1
}

# phase NAME COMMAND...: run it, record and print its wall time
phase() {
  local name=$1 start end
  shift
  log "== $name"
  start=$(date +%s.%N)
  "$@"
  end=$(date +%s.%N)
  SECONDS_OF[$name]=$(awk -v a="$start" -v b="$end" 'BEGIN {printf "%.0f", b - a}')
  PHASES+=("$name")
  log "== $name: ${SECONDS_OF[$name]} s"
}

# the phases' table, for the summary
phase_table() {
  local name
  printf '  %-34s %8s\n' phase "wall s"
  for name in "${PHASES[@]}"; do printf '  %-34s %8s\n' "$name" "${SECONDS_OF[$name]}"; done
}

# need_packages PACKAGE...: apt-get install those this host lacks
need_packages() {
  local p missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing on this host: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

# The Debian mirror this host's apt uses (deb822 or one-line format), else Debian's default.
host_mirror() {
  local uri
  uri=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null | grep -v security || true)
  [ -n "$uri" ] || uri=$(awk '$1 == "deb" && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
  echo "${uri:-http://deb.debian.org/debian}"
}

# copy_clone DEST: the clone a Pi user would have (tracked and new files; no venvs, caches or
# build output)
copy_clone() {
  local dest=$1
  mkdir -p "$dest"
  if git -C "$HERE" rev-parse --git-dir >/dev/null 2>&1; then
    (
      cd "$HERE"
      git ls-files -z --cached --others --exclude-standard |
        while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done |
        tar --null -T - -cf -
    ) | tar -C "$dest" -xf -
  else
    tar -C "$HERE" --exclude='.venv*' --exclude=.git --exclude=var --exclude=__pycache__ \
      --exclude='*.egg-info' -cf - . | tar -C "$dest" -xf -
  fi
}
