#!/usr/bin/env bash
# Memory and large configs (issue 22 §7): Rampart's RSS idle, with the OWASP CRS loaded,
# with 10,000 routes, and after 1,000,000 distinct rate-limit keys; how long a 10,000-route
# config takes to reload, and whether any request failed meanwhile.
# Usage: bench/memory.sh [keys]   (default 1000000)
set -euo pipefail
cd "$(dirname "$0")/.."
KEYS=${1:-1000000}
CONN=32
DUR=5
for tool in wrk nginx; do
  command -v $tool >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq $tool >/dev/null; }
done
cargo build --release --quiet
BIN=target/release/rampart
CRS=$(cd ../shared/crs && pwd)
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; [ -f $WORK/up.pid ] && kill $(cat $WORK/up.pid) 2>/dev/null; rm -rf $WORK; true' EXIT
. bench/lib.sh
UP=18290; RP=18291; ADM=18292
json_upstream $WORK $UP

rss_kib() { awk '/VmRSS/ {print $2}' /proc/$1/status; }
generation() { curl -fsS http://127.0.0.1:$ADM/readyz | sed 's/.*"config_generation":\([0-9]*\).*/\1/'; }
head_yaml() {
  cat <<YML
listeners:
  - name: bench
    address: 127.0.0.1:$RP
admin:
  address: 127.0.0.1:$ADM
upstreams:
  up:
    targets: ["127.0.0.1:$UP"]
access_log:
  target: off
server:
  threads: 1
YML
}
# start CONFIG: Rampart on it; sets PID and T (seconds until ready).
start() {
  local t0=$(date +%s.%N)
  $BIN serve --config $1 > $WORK/rampart.log 2>&1 &
  PID=$!
  until curl -fsS -o /dev/null http://127.0.0.1:$ADM/readyz 2>/dev/null; do
    kill -0 $PID 2>/dev/null || { cat $WORK/rampart.log; exit 1; }
    sleep 0.05
  done
  T=$(awk -v a=$t0 -v b=$(date +%s.%N) 'BEGIN{printf "%.2f", b-a}')
}
stop() { kill $PID; wait $PID 2>/dev/null || true; }
settle() { # requests to touch every lazily built structure, then a pause
  wrk -t1 -c$CONN -d2s "http://127.0.0.1:$RP$1" >/dev/null 2>&1
  sleep 1
}

printf "%-34s %10s %12s  %s\n" config "RSS MiB" "ready in s" notes
{ head_yaml; printf 'routes:\n  - name: all\n    paths: ["/"]\n    upstream: up\n'; } > $WORK/plain.yaml
start $WORK/plain.yaml; settle /item
printf "%-34s %10.1f %12s\n" "one route" "$(awk -v k=$(rss_kib $PID) 'BEGIN{print k/1024}')" $T
stop

{ head_yaml; cat <<YML
waf:
  rules:
    - $CRS/rules/crs-setup.conf.example
    - $CRS/rules/*.conf
  mode: block
  paranoia: 1
routes:
  - name: all
    paths: ["/"]
    upstream: up
YML
} > $WORK/crs.yaml
start $WORK/crs.yaml; settle /item
printf "%-34s %10.1f %12s\n" "one route + CRS v4 PL1" "$(awk -v k=$(rss_kib $PID) 'BEGIN{print k/1024}')" $T
stop

routes() { # N routes with distinct paths (and a rate limit each, as real routes have)
  head_yaml; echo "routes:"
  for i in $(seq 1 $1); do
    printf '  - name: r%d\n    paths: ["/r/%d"]\n    upstream: up\n' $i $i
  done
}
routes 10000 > $WORK/routes.yaml
start $WORK/routes.yaml; settle /r/5000/item
printf "%-34s %10.1f %12s\n" "10,000 routes" "$(awk -v k=$(rss_kib $PID) 'BEGIN{print k/1024}')" $T
# Reload a changed 10,000-route config while wrk runs against one of its routes.
G0=$(generation)
wrk -t1 -c$CONN -d6s "http://127.0.0.1:$RP/r/5000/item" > $WORK/reload-wrk.txt 2>&1 &
WRK=$!
sleep 2
sed -i 's|paths: \["/r/10000"\]|paths: ["/r/10000b"]|' $WORK/routes.yaml
t0=$(date +%s.%N)
kill -HUP $PID
until [ "$(generation)" != "$G0" ]; do sleep 0.01; done
RELOAD=$(awk -v a=$t0 -v b=$(date +%s.%N) 'BEGIN{printf "%.2f", b-a}')
wait $WRK
ERRS=$(awk '/Non-2xx|Socket errors/' $WORK/reload-wrk.txt | tr '\n' ' ')
REQS=$(awk '/requests in/ {print $1}' $WORK/reload-wrk.txt)
printf "%-34s %10.1f %12s  reload %ss (target <= 1 s); %s requests during it, failures: %s\n" \
  "10,000 routes, after a reload" "$(awk -v k=$(rss_kib $PID) 'BEGIN{print k/1024}')" - $RELOAD $REQS "${ERRS:-none}"
stop

# Distinct rate-limit keys: every request a new X-K value.
{ head_yaml; cat <<YML
routes:
  - name: keyed
    paths: ["/"]
    upstream: up
    rate_limit: [{ key: "header:X-K", rate: 1000/s }]
YML
} > $WORK/keys.yaml
cat > $WORK/keys.lua <<'LUA'
local n = 0
local base = 0
function init(args) base = tonumber(args[1]) * 100000000 end
function request()
  n = n + 1
  return wrk.format("GET", "/item", { ["X-K"] = "key-" .. (base + n) })
end
LUA
start $WORK/keys.yaml; settle /item
BEFORE=$(rss_kib $PID)
SENT=0; ROUND=1
while [ $SENT -lt $KEYS ]; do
  wrk -t1 -c$CONN -d20s -s $WORK/keys.lua "http://127.0.0.1:$RP" -- $ROUND > $WORK/keys-wrk.txt 2>&1
  SENT=$((SENT + $(awk '/requests in/ {print $1}' $WORK/keys-wrk.txt)))
  ROUND=$((ROUND + 1))
done
sleep 1
AFTER=$(rss_kib $PID)
printf "%-34s %10.1f %12s  %d distinct keys: +%.1f MiB (%.0f bytes per key; target <= 200 MB for 1,000,000)\n" \
  "rate limit, after the keys" "$(awk -v k=$AFTER 'BEGIN{print k/1024}')" - $SENT \
  "$(awk -v a=$AFTER -v b=$BEFORE 'BEGIN{print (a-b)/1024}')" "$(awk -v a=$AFTER -v b=$BEFORE -v n=$SENT 'BEGIN{print (a-b)*1024/n}')"
stop
