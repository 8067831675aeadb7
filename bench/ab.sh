#!/usr/bin/env bash
# A/B of two Rampart binaries on the plain-proxy path: both run at once (one worker each,
# access log off) in front of the same nginx upstream, and wrk alternates between them for
# ROUNDS rounds, so both see the same host conditions. Prints each round's requests/s and
# CPU µs per request of that binary's process; compare the medians and the best rounds.
# Usage: bench/ab.sh OLD_BINARY NEW_BINARY [seconds] [rounds]
# (e.g. a release build of an older commit in a git worktree, and target/release/rampart)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
OLD_BIN=${1:?old binary}; NEW_BIN=${2:?new binary}; DUR=${3:-5}; ROUNDS=${4:-6}; CONN=32
command -v wrk >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
command -v nginx >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq nginx >/dev/null; }
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; [ -f $WORK/up.pid ] && kill $(cat $WORK/up.pid) 2>/dev/null; rm -rf $WORK' EXIT
json_upstream $WORK 18190
for v in old new; do
  if [ $v = old ]; then port=18191; adm=18193; else port=18192; adm=18194; fi
  cat > $WORK/$v.yaml <<Y
listeners: [{ name: p, address: "127.0.0.1:$port" }]
admin: { address: "127.0.0.1:$adm" }
access_log: { target: "off" }
server: { threads: 1 }
upstreams: { u: { targets: ["127.0.0.1:18190"] } }
routes: [{ name: r, paths: ["/"], upstream: u }]
Y
done
$OLD_BIN serve --config $WORK/old.yaml > $WORK/old.log 2>&1 & OLD=$!
$NEW_BIN serve --config $WORK/new.yaml > $WORK/new.log 2>&1 & NEW=$!
sleep 1.5
echo "round         req/s        p50        p99 cpu µs/req"
for round in $(seq "$ROUNDS"); do
  CPU_PID=$OLD run old-$round http://127.0.0.1:18191/api/items
  CPU_PID=$NEW run new-$round http://127.0.0.1:18192/api/items
done
