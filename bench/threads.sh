#!/usr/bin/env bash
# Two cores (issue 22 §4): Rampart with `server.threads: 1` and with `server.threads: 2`,
# both up at once in front of the same nginx upstream, wrk alternating between them. wrk
# and the upstream are pinned to the last CPU (`taskset`), Rampart may use all of them.
# Target: CPU µs per request must not grow more than 10% from 1 to 2 threads.
# Usage: bench/threads.sh [seconds] [rounds] [connections]
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
DUR=${1:-5}; ROUNDS=${2:-4}; CONN=${3:-64}
for tool in wrk nginx; do
  command -v $tool >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq $tool >/dev/null; }
done
cargo build --release --quiet
BIN=target/release/rampart
LAST=$(( $(nproc) - 1 ))
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; [ -f $WORK/up.pid ] && kill $(cat $WORK/up.pid) 2>/dev/null; rm -rf $WORK; true' EXIT
taskset -c $LAST bash -c ". bench/lib.sh; json_upstream $WORK 18490"
for t in 1 2; do
  cat > $WORK/t$t.yaml <<Y
listeners: [{ name: p, address: "127.0.0.1:1849$t" }]
admin: { address: "127.0.0.1:1849$((t + 4))" }
access_log: { target: "off" }
server: { threads: $t }
upstreams: { u: { targets: ["127.0.0.1:18490"] } }
routes: [{ name: r, paths: ["/"], upstream: u }]
Y
done
$BIN serve --config $WORK/t1.yaml > $WORK/t1.log 2>&1 & T1=$!
$BIN serve --config $WORK/t2.yaml > $WORK/t2.log 2>&1 & T2=$!
sleep 1.5
# wrk on the last CPU only: the load generator does not take Rampart's second core.
WRK=$(command -v wrk)
wrk() { taskset -c $LAST "$WRK" "$@"; }
ROWS=()
for round in $(seq "$ROUNDS"); do
  ROWS+=("$(CPU_PID=$T1 run threads-1 http://127.0.0.1:18491/item)")
  ROWS+=("$(CPU_PID=$T2 run threads-2 http://127.0.0.1:18492/item)")
done
rows "${ROWS[@]}"
med() { median $1 $2 "${ROWS[@]}"; }
echo "medians: 1 thread $(med threads-1 2) req/s $(med threads-1 5) µs/req; 2 threads $(med threads-2 2) req/s $(med threads-2 5) µs/req"
awk -v a=$(med threads-1 5) -v b=$(med threads-2 5) -v ra=$(med threads-1 2) -v rb=$(med threads-2 2) \
  'BEGIN{printf "CPU per request, 2 threads vs 1: %+.1f%% (target <= +10%%); req/s %+.1f%%\n", (b/a-1)*100, (rb/ra-1)*100}'
