#!/usr/bin/env bash
# What tools/systemd_container.sh runs inside the Debian root: `prepare` before the boot
# (no systemd running: enrol a person, switch the installed config to a replayed camera),
# `check` as a service of the booted systemd (the unit with its full hardening, plus the
# CI drop-in: simulated GPIO, WatchdogSec=10). Each check prints "[ci-check] ok ..." or
# fails; the results file ends with "RESULT ok" or "RESULT FAILED: ..." and the container is
# powered off either way.
#
#   systemd_container_inside.sh prepare FACEDATA
#   systemd_container_inside.sh check FACEDATA RESULTS_DIR
set -euo pipefail

MODE=${1:?usage: systemd_container_inside.sh prepare|check FACEDATA [RESULTS_DIR]}
FACEDATA=${2:?face data folder}
RESULTS=${3:-/var/log/pi-facegate-ci}
EXAMPLES=$FACEDATA/face_recognition_examples/examples
CLIP=$EXAMPLES/short_hamilton_clip.mp4
UNIT=pi-facegate.service
CONFIG=/etc/pi-facegate/config.yaml
STATE=/var/lib/pi-facegate
PY=/opt/pi-facegate/venv/bin/python
FIFO_DIR=/srv/camera-fifo
WORK=/root/ci-check
RESULT_FILE=$RESULTS/result.txt

say() { echo "[ci-check $(date +%H:%M:%S)] $*"; }
ok() { say "ok    $*"; }
fail() {
  say "FAIL  $*"
  echo "RESULT FAILED: $*" >>"$RESULT_FILE"
  exit 1
}
as_facegate() { sudo -u facegate "$@"; }
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.1f", b - a}'; }
prop() { systemctl show -P "$1" "$UNIT"; }

# set_config KEY=VALUE...: edit the installed config in place (mode and owner kept); a value
# is YAML (so 15 is a number, true a boolean)
set_config() {
  "$PY" - "$CONFIG" "$@" <<'EOF'
import sys
import yaml

path, pairs = sys.argv[1], sys.argv[2:]
data = yaml.safe_load(open(path)) or {}
for pair in pairs:
    key, value = pair.split("=", 1)
    *parents, leaf = key.split(".")
    node = data
    for name in parents:
        if not isinstance(node.get(name), dict):
            node[name] = {}
        node = node[name]
    node[leaf] = yaml.safe_load(value)
with open(path, "w") as out:  # truncate and write: the file keeps its mode and owner
    yaml.safe_dump(data, out, sort_keys=False)
EOF
}

# events_since EPOCH: the event log's events from then on, as lines "kind person reason"
# (the log named directly: while a broken config is installed, the CLI refuses to read it)
events_since() {
  as_facegate facegate events --events "$STATE/events.db" --json | "$PY" -c '
import json, sys
since = float(sys.argv[1])
for e in json.load(sys.stdin):
    if float(e["time"]) >= since:
        d = e.get("detail") or {}
        print(e["kind"], (e.get("person") or "-").replace(" ", "_"), d.get("reason", "-"), sep="\t")
' "$1"
}

# wait_for SECONDS DESCRIPTION COMMAND...: poll COMMAND every 0.5 s until it succeeds
wait_for() {
  local limit=$1 what=$2 end
  shift 2
  end=$(($(date +%s) + limit))
  until "$@"; do
    [ "$(date +%s)" -lt "$end" ] || fail "$what: not within $limit s"
    sleep 0.5
  done
}

has_event() { events_since "$1" | awk -v k="$2" -v p="${3:-}" '$1 == k && (p == "" || $2 == p) {f = 1} END {exit !f}'; }
is_active() { [ "$(prop ActiveState)" = active ] && [ "$(prop SubState)" = running ]; }
restarted_since() { [ "$(prop NRestarts)" -gt "$1" ] && is_active; }

# ------------------------------------------------------------------------------- prepare
prepare() {
  as_facegate facegate enroll "Lin-Manuel Miranda" "$EXAMPLES/lin-manuel-miranda.png"
  set_config camera.type=replay "camera.replay.path=$CLIP" camera.replay.fps=15 camera.replay.loop=true
  as_facegate facegate config check "$CONFIG"
  cp -a "$CONFIG" "$CONFIG.ci-good"
}

# --------------------------------------------------------------------------------- checks
check_boot_start() {
  wait_for 180 "the unit active after boot" is_active
  ok "pi-facegate started at boot (enabled by the installer): $(prop ActiveState)/$(prop SubState)"
}

check_start_ready_grant() {
  systemctl stop "$UNIT"
  local t0 t1 since
  since=$(date +%s)
  t0=$(now)
  systemctl start "$UNIT" || fail "systemctl start failed: $(systemctl status "$UNIT" --no-pager | tail -n 5)"
  t1=$(now)
  is_active || fail "after systemctl start: $(prop ActiveState)/$(prop SubState)"
  START_SECONDS=$(secs "$t0" "$t1")
  ok "systemctl start returned when READY=1 arrived (Type=notify): ${START_SECONDS} s"
  local g0
  g0=$(now)
  wait_for 90 "a grant for Lin-Manuel Miranda from the replay" has_event "$since" granted Lin-Manuel_Miranda
  GRANT_SECONDS=$(secs "$g0" "$(now)")
  has_event "$since" unlocked || fail "a grant without the relay's unlock"
  ok "the door granted Lin-Manuel Miranda ${GRANT_SECONDS} s after READY; the relay unlocked"
}

check_status_text() {
  local text
  text=$(prop StatusText)
  [ -n "$text" ] || fail "no STATUS text in systemctl show"
  systemctl status "$UNIT" --no-pager >"$WORK/status.txt" || true
  grep -q "Status: \"" "$WORK/status.txt" || fail "systemctl status shows no Status line: $(head -n 8 "$WORK/status.txt")"
  ok "systemctl status shows: Status: \"$text\""
}

check_journal_fields() {
  journalctl -u "$UNIT" -o json --no-pager >"$WORK/journal.json"
  "$PY" - "$WORK/journal.json" <<'EOF' || fail "journal fields (above)"
import json
import sys

entries = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
grants = [e for e in entries if e.get("EVENT_KIND") == "granted"]
if not grants:
    sys.exit("no journal entry with EVENT_KIND=granted")
g = grants[-1]
want = {"PERSON": "Lin-Manuel Miranda", "SYSLOG_IDENTIFIER": None, "CODE_FILE": None, "PRIORITY": "6"}
missing = [k for k, v in want.items() if k not in g or (v is not None and g[k] != v)]
if missing:
    sys.exit(f"the grant's journal entry lacks {missing}: {sorted(g)}")
print(f"[ci-check] ok    journalctl -o json: EVENT_KIND=granted PERSON={g['PERSON']} DISTANCE={g.get('DISTANCE')} LOGGER={g.get('LOGGER', g.get('SYSLOG_IDENTIFIER'))} ({len(entries)} entries)")
EOF
}

check_reload() {
  local pid since
  pid=$(prop MainPID)
  since=$(date +%s)
  set_config access.cooldown_seconds=7
  systemctl reload "$UNIT"
  wait_for 30 "config_reloaded after systemctl reload" has_event "$since" config_reloaded
  [ "$(prop MainPID)" = "$pid" ] && is_active || fail "reload with a good config changed the process"
  ok "systemctl reload with a good config: config_reloaded, same process ($pid)"
  since=$(date +%s)
  printf 'matching: &a [*a]\n' >>"$CONFIG" # the recursive alias of bug 5
  systemctl reload "$UNIT"
  wait_for 30 "config_rejected after a broken config" has_event "$since" config_rejected
  sleep 2
  [ "$(prop MainPID)" = "$pid" ] && is_active || fail "a broken config on reload stopped the daemon"
  cat "$CONFIG.ci-good" >"$CONFIG"
  systemctl reload "$UNIT"
  ok "systemctl reload with a broken config (recursive alias): config_rejected, kept running ($pid)"
}

check_kill9() {
  local pid restarts since
  pid=$(prop MainPID)
  restarts=$(prop NRestarts)
  since=$(date +%s)
  kill -9 "$pid"
  wait_for 60 "a restart after kill -9" restarted_since "$restarts"
  [ "$(prop MainPID)" != "$pid" ] || fail "same MainPID after kill -9"
  wait_for 30 "the restarted daemon's started event" has_event "$since" started
  ok "kill -9 of $pid: restarted by systemd as $(prop MainPID) (NRestarts $restarts -> $(prop NRestarts))"
}

# A camera that stops delivering inside a read (the driver hangs): a replay from a FIFO whose
# writer sends 200 frames to each reader and then stalls, the pipe held open. The frame loop
# blocks in the read, stops pinging, and the watchdog (10 s here) must restart the service.
fifo_writer() {
  mkdir -p "$FIFO_DIR"
  rm -f "$FIFO_DIR/camera.mjpg"
  mkfifo -m 0644 "$FIFO_DIR/camera.mjpg"
  "$PY" - "$CLIP" "$FIFO_DIR/camera.mjpg" 200 >"$WORK/fifo-writer.log" 2>&1 <<'EOF' &
import os, select, sys
import cv2

clip, fifo, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
cap = cv2.VideoCapture(clip)
frames = []
while True:
    ok, frame = cap.read()
    if not ok:
        break
    frames.append(cv2.imencode(".jpg", frame)[1].tobytes())
while True:
    fd = os.open(fifo, os.O_WRONLY)  # waits for the next reader
    try:
        for i in range(count):
            os.write(fd, frames[i % len(frames)])
    except BrokenPipeError:
        pass
    print(f"delivered {count} frames, now stalling", flush=True)
    poll = select.poll()
    poll.register(fd, select.POLLERR)
    poll.poll()  # until the reader is gone (killed by the watchdog)
    os.close(fd)
EOF
  FIFO_WRITER=$!
}

check_hung_camera() {
  local restarts since t0
  systemctl stop "$UNIT"
  fifo_writer
  set_config "camera.replay.path=$FIFO_DIR/camera.mjpg" camera.replay.loop=false
  since=$(date +%s)
  systemctl start "$UNIT"
  restarts=$(prop NRestarts) # a manual start resets the count: read it after
  t0=$(now)
  wait_for 120 "a watchdog restart of the hung camera" restarted_since "$restarts"
  HUNG_SECONDS=$(secs "$t0" "$(now)")
  journalctl -u "$UNIT" --since "@$since" --no-pager >"$WORK/hung.txt"
  grep -qi "watchdog timeout" "$WORK/hung.txt" || fail "restarted, but not by the watchdog: $(grep -i 'pi-facegate.service:' "$WORK/hung.txt" | tail -n 3)"
  ok "hung camera: the watchdog killed the stalled daemon and systemd restarted it (${HUNG_SECONDS} s after start; '$(grep -io 'watchdog timeout[^.]*' "$WORK/hung.txt" | head -n1)')"
  systemctl stop "$UNIT"
  kill "$FIFO_WRITER" 2>/dev/null || true
  cat "$CONFIG.ci-good" >"$CONFIG"
  systemctl reset-failed "$UNIT" 2>/dev/null || true
  systemctl start "$UNIT"
  is_active || fail "not active again after the hung-camera check"
}

check_clean_stop() {
  local since
  since=$(date +%s)
  systemctl stop "$UNIT"
  [ "$(prop Result)" = success ] || fail "systemctl stop: Result=$(prop Result)"
  [ "$(prop ExecMainStatus)" = 0 ] || fail "systemctl stop: exit status $(prop ExecMainStatus)"
  has_event "$since" stopped || fail "no stopped event after systemctl stop"
  ok "systemctl stop: exit status 0, Result=success, the daemon recorded 'stopped'"
}

# Every unlock of the whole run was a face grant: none came from a reload, a kill, a hang, a
# restart or a stop. Unlocked and granted events pair up one to one.
check_door_never_unlocked_otherwise() {
  events_since 0 >"$WORK/events.tsv"
  local grants unlocks others
  grants=$(awk '$1 == "granted"' "$WORK/events.tsv" | wc -l)
  unlocks=$(awk '$1 == "unlocked"' "$WORK/events.tsv" | wc -l)
  others=$(awk '$1 == "unlocked" && $3 != "face"' "$WORK/events.tsv" | wc -l)
  [ "$others" = 0 ] || fail "unlocks not from a face grant: $(awk '$1 == "unlocked" && $3 != "face"' "$WORK/events.tsv" | head -n 3)"
  [ "$grants" = "$unlocks" ] || fail "$grants grants but $unlocks unlocks"
  awk '$1 == "granted" && $2 != "Lin-Manuel_Miranda"' "$WORK/events.tsv" | grep -q . && fail "a grant for someone else"
  GRANTS=$grants
  ok "door: $unlocks unlocks in the whole run, each for a face grant of Lin-Manuel Miranda; none from reloads, kills, the hang or stops"
}

check_sandbox() {
  journalctl -u "$UNIT" --no-pager -o cat >"$WORK/journal.txt"
  if grep -Ei 'operation not permitted|EPERM|SIGSYS|bad system call|seccomp|permission denied' "$WORK/journal.txt" >"$WORK/denied.txt"; then
    fail "the sandbox refused something: $(head -n 3 "$WORK/denied.txt")"
  fi
  grep -q 'Traceback' "$WORK/journal.txt" && fail "a Python traceback in the journal: $(grep -A3 Traceback "$WORK/journal.txt" | head -n 6)"
  ok "journal: no EPERM, SIGSYS, seccomp or permission denial, no traceback ($(wc -l <"$WORK/journal.txt") lines)"
}

check_security_score() {
  systemd-analyze security "$UNIT" --no-pager >"$WORK/security.txt" 2>&1 || true
  SECURITY=$(grep -o 'Overall exposure level for [^:]*: [0-9.]*' "$WORK/security.txt" | awk '{print $NF}')
  [ -n "$SECURITY" ] || fail "systemd-analyze security printed no score: $(tail -n 3 "$WORK/security.txt")"
  awk -v s="$SECURITY" 'BEGIN {exit !(s <= 1.5)}' || fail "systemd-analyze security: $SECURITY (> 1.5)"
  ok "systemd-analyze security $UNIT (running, with the CI drop-in): $SECURITY"
}

check() {
  mkdir -p "$RESULTS" "$WORK"
  : >"$RESULT_FILE"
  trap 'rc=$?; [ $rc = 0 ] || grep -q "^RESULT" "$RESULT_FILE" || echo "RESULT FAILED: status $rc" >>"$RESULT_FILE"; journalctl -u "$UNIT" --no-pager >"$RESULTS/journal.txt" 2>&1; cp -a "$WORK/." "$RESULTS/" 2>/dev/null; systemctl poweroff --no-block' EXIT
  say "systemd $(systemctl --version | head -n1 | awk '{print $2}'), $(systemd-detect-virt), cgroup $(stat -fc %T /sys/fs/cgroup)"
  local t0
  t0=$(now)
  check_boot_start
  check_start_ready_grant
  check_status_text
  check_journal_fields
  check_reload
  check_kill9
  check_hung_camera
  check_clean_stop
  check_door_never_unlocked_otherwise
  check_sandbox
  check_security_score
  printf 'SUMMARY start_to_ready=%ss ready_to_grant=%ss hung_camera_restart=%ss grants=%s security=%s checks=%ss\n' \
    "$START_SECONDS" "$GRANT_SECONDS" "$HUNG_SECONDS" "$GRANTS" "$SECURITY" "$(secs "$t0" "$(now)")" | tee -a "$RESULT_FILE"
  echo "RESULT ok" >>"$RESULT_FILE"
}

case $MODE in
  prepare) prepare ;;
  check) check ;;
  *) echo "unknown mode $MODE" >&2; exit 2 ;;
esac
