#!/usr/bin/env bash
# QoS 1 throughput of Midge without persistence, with persistence (acknowledged once
# written to the OS) and with persistence_fsync true (acknowledged once on disk), same
# parameters, broker pinned to core 0 and the load tool to core 1. Subscribers open
# persistent sessions (--persistent-subscribers) so that every delivery goes through the
# store; "memory, clean" is the same run with clean-session subscribers, the figure of
# docs/performance.md's main table. Prints one line per run.
#
#   bench/persistence.sh [--reps N] [--duration S]
set -euo pipefail
cd "$(dirname "$0")/.."
reps=2
duration=5
while [ $# -gt 0 ]; do
  case "$1" in
    --reps) reps="$2"; shift 2 ;;
    --duration) duration="$2"; shift 2 ;;
    *) echo "usage: $0 [--reps N] [--duration S]" >&2; exit 2 ;;
  esac
done
command -v taskset >/dev/null || { echo "taskset (util-linux) is required" >&2; exit 1; }
cargo build --release -q -p midge -p midge-bench
midge_bin=$PWD/target/release/midge
bench_bin=$PWD/target/release/midge-bench
work=$(mktemp -d)
broker_pid=""
cleanup() {
  if [ -n "$broker_pid" ]; then kill "$broker_pid" 2>/dev/null || true; wait "$broker_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
# run <label> <extra config lines> <extra bench options>
run() {
  local label=$1 conf=$2 opts=$3
  rm -f "$work"/midge.db*
  port=$(free_port)
  printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence_location %s/\n%b' \
    "$port" "$work" "$conf" > "$work/broker.conf"
  taskset -c 0 "$midge_bin" -c "$work/broker.conf" >"$work/midge.log" 2>&1 &
  broker_pid=$!
  for _ in $(seq 100); do
    python3 -c "import socket; socket.create_connection(('127.0.0.1',$port),0.2)" 2>/dev/null && break
    sleep 0.05
  done
  # shellcheck disable=SC2086
  json=$(taskset -c 1 "$bench_bin" throughput --port "$port" --qos 1 --payload 16 \
    --duration "$duration" --broker-pid "$broker_pid" --json $opts 2>/dev/null | tail -1) || true
  kill "$broker_pid"; wait "$broker_pid" 2>/dev/null || true; broker_pid=""
  python3 - "$label" "$json" <<'PY'
import json, sys
label, line = sys.argv[1], sys.argv[2]
try:
    r = json.loads(line)
except ValueError:
    print(f"{label:24} no result: {line!r}")
    sys.exit()
b = r.get("broker") or {}
p50 = r["latency_us"]["p50"]; p99 = r["latency_us"]["p99"]
print(f"{label:24} {r['received_per_s']:>10,.0f} msg/s  {b.get('cpu_us_per_msg', 0):6.2f} CPU µs/msg  "
      f"p50 {p50:>6,} µs  p99 {p99:>7,} µs  lost {r['lost']}  dup {r['duplicates']}  ok {r['ok']}")
PY
}
for rep in $(seq "$reps"); do
  echo "# repetition $rep"
  run "memory, clean" "" ""
  run "memory, persistent subs" "" "--persistent-subscribers"
  run "persistence (OS)" "persistence true\n" "--persistent-subscribers"
  run "persistence (fsync)" "persistence true\npersistence_fsync true\n" "--persistent-subscribers"
done
