#!/usr/bin/env bash
# Runs Midge and Debian's mosquitto side by side on the same scenarios, alternating brokers
# within one run, and writes the medians and Midge/Mosquitto ratios into docs/performance.md.
#
#   bench/compare.sh [--reps N] [--duration S] [--quick] [--no-doc]
#
# Phase 1 pins each broker to core 0 and the load tool to core 1: the figure that matters is
# the broker's CPU time per delivered message, read from /proc by the load tool. Phase 2
# lets Midge use every core (the load tool shares them) to show it scales past one core.
# Only loopback ports are used; every broker started here is stopped here.
set -euo pipefail
cd "$(dirname "$0")/.."

reps=3
duration=5
quick=0
write_doc=1
while [ $# -gt 0 ]; do
  case "$1" in
    --reps) reps="$2"; shift 2 ;;
    --duration) duration="$2"; shift 2 ;;
    --quick) quick=1; shift ;;
    --no-doc) write_doc=0; shift ;;
    *) echo "usage: $0 [--reps N] [--duration S] [--quick] [--no-doc]" >&2; exit 2 ;;
  esac
done

if ! command -v mosquitto >/dev/null 2>&1; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get install -y --no-install-recommends mosquitto >/dev/null \
    || { $sudo apt-get update >/dev/null && $sudo apt-get install -y --no-install-recommends mosquitto >/dev/null; }
fi
command -v taskset >/dev/null || { echo "taskset (util-linux) is required" >&2; exit 1; }

cargo build --release -q -p midge -p midge-bench
midge_bin=$PWD/target/release/midge
bench_bin=$PWD/target/release/midge-bench
work=$(mktemp -d)
results=$work/results.jsonl
broker_pid=""
cleanup() {
  if [ -n "$broker_pid" ]; then kill "$broker_pid" 2>/dev/null || true; wait "$broker_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# start_broker <midge|mosquitto> <cpu list or "all">: sets $port and $broker_pid.
start_broker() {
  local which=$1 cpus=$2
  port=$(free_port)
  cat > "$work/broker.conf" <<CONF
listener $port 127.0.0.1
allow_anonymous true
CONF
  local cmd
  if [ "$which" = midge ]; then cmd=("$midge_bin" -c "$work/broker.conf"); else cmd=(mosquitto -c "$work/broker.conf"); fi
  if [ "$cpus" != all ]; then cmd=(taskset -c "$cpus" "${cmd[@]}"); fi
  # Idle-connection scenarios need descriptors; 20,000 is this machine's hard limit.
  ( ulimit -n "$(ulimit -Hn)"; exec "${cmd[@]}" ) >"$work/$which.log" 2>&1 &
  broker_pid=$!
  for _ in $(seq 100); do
    if python3 -c "import socket,sys; socket.create_connection(('127.0.0.1',$port),0.2)" 2>/dev/null; then
      return 0
    fi
    sleep 0.05
  done
  echo "broker $which did not start; log:" >&2; cat "$work/$which.log" >&2; exit 1
}

stop_broker() {
  kill "$broker_pid" 2>/dev/null || true
  wait "$broker_pid" 2>/dev/null || true
  broker_pid=""
}

# run_case <phase> <name> <broker> <broker cpus> <tool cpus> <midge-bench args...>
run_case() {
  local phase=$1 name=$2 which=$3 bcpus=$4 tcpus=$5; shift 5
  local line
  start_broker "$which" "$bcpus"
  sleep 0.3
  local pin=()
  if [ "$tcpus" != all ]; then pin=(taskset -c "$tcpus"); fi
  line=$( (ulimit -n "$(ulimit -Hn)"; "${pin[@]}" "$bench_bin" "$@" --port "$port" --broker-pid "$broker_pid" --json) 2>/dev/null | tail -n 1 || true)
  stop_broker
  if [ -z "$line" ] || [ "${line:0:1}" != "{" ]; then
    line='{"ok":false,"failures":["no result"]}'
  fi
  printf '{"phase":"%s","case":"%s","broker":"%s","result":%s}\n' "$phase" "$name" "$which" "$line" >> "$results"
  echo "  $phase / $name / $which done" >&2
}

d=(--duration "$duration")
cases=(
  "qos0-16B|throughput --qos 0 --payload 16 ${d[*]}"
  "qos0-1KiB|throughput --qos 0 --payload 1024 ${d[*]}"
  "qos1-16B|throughput --qos 1 --payload 16 ${d[*]}"
  "qos2-16B|throughput --qos 2 --payload 16 ${d[*]}"
  "fanout-1to100|fanout --subscribers 100 --qos 0 --payload 16 ${d[*]}"
  "fanin-100to1|fanin --publishers 100 --qos 0 --payload 16 ${d[*]}"
  "latency-10k|latency --rate 10000 --qos 0 --payload 16 ${d[*]}"
  "idle-19000|connections --clients 19000 --rate 2000 --hold 5"
)
if [ "$quick" = 1 ]; then
  cases=("qos0-16B|throughput --qos 0 --payload 16 ${d[*]}" "qos1-16B|throughput --qos 1 --payload 16 ${d[*]}" "idle-2000|connections --clients 2000 --rate 2000 --hold 2")
fi
scale_cases=(
  "scale-qos0-4x4|throughput --qos 0 --payload 16 --publishers 4 --subscribers 4 --topics 4 ${d[*]}"
  "scale-qos1-4x4|throughput --qos 1 --payload 16 --publishers 4 --subscribers 4 --topics 4 ${d[*]}"
)

echo "phase 1: each broker pinned to core 0, load tool on core 1 ($reps repetitions)" >&2
for rep in $(seq "$reps"); do
  for c in "${cases[@]}"; do
    name=${c%%|*}; args=${c#*|}
    # Alternate which broker goes first, so drift in the machine hits both alike.
    if [ $((rep % 2)) = 1 ]; then order=(midge mosquitto); else order=(mosquitto midge); fi
    for b in "${order[@]}"; do
      # shellcheck disable=SC2086
      run_case pinned "$name" "$b" 0 1 $args
    done
  done
done

if [ "$quick" = 0 ]; then
  echo "phase 2: Midge on every core, Mosquitto (single-threaded) likewise unpinned" >&2
  for rep in $(seq "$reps"); do
    for c in "${scale_cases[@]}"; do
      name=${c%%|*}; args=${c#*|}
      for b in midge mosquitto; do
        # shellcheck disable=SC2086
        run_case allcores "$name" "$b" all all $args --threads 2
      done
    done
  done
fi

python3 bench/summarise.py "$results" "$write_doc"
