#!/usr/bin/env bash
# Flood benchmark: a legitimate client at a steady modest rate (GETs with an API key from
# 127.0.0.1) while attackers from other 127.0.0.0/8 addresses flood the proxy, one scenario
# at a time, against Rampart and then against nginx configured the same way (limit_req,
# limit_conn, header/body timeouts, HTTP/2 on a plain port):
#   unloaded  the legitimate client alone: its p99 is the reference
#   a-idle    2,000 idle connections (nothing sent, or a partial request line), reopened
#             as soon as the proxy closes them
#   b-flood   HTTP/1.1 keep-alive GETs as fast as possible from many addresses
#   c-slow    slowloris (header bytes) + slow POST (body bytes), one byte every 2 s
#   d-reset   HTTP/2 rapid reset (HEADERS + RST_STREAM CANCEL in a loop, prior knowledge)
# Goals per scenario: the legitimate client's success >= 99% and its p99 <= 5x its unloaded
# p99 (against the same proxy); the proxy's RSS is reported (peak over the scenario).
# It is a report: the exit status is 0 whether goals are met or not (FAIL lines say which).
#
# Usage: bench/flood.sh                      # release build, 20 s per scenario
#        DUR=5 RAMPART_BIN=target/debug/rampart bench/flood.sh
# Settings (environment): DUR (s per scenario, 20), RAMP (s of attack before measuring, 3),
#   COOLDOWN (s between scenarios, 2), LEGIT_RATE (req/s, 25), SCENARIOS ("a b c d"),
#   PROXIES ("rampart nginx"), IDLE_CONNS (2000), IDLE_IPS (100), FLOOD_IPS (64),
#   FLOOD_CONNS (per address, 4), FLOOD_PROCS (2), SLOW_CONNS (1000), SLOW_IPS (50),
#   SLOW_INTERVAL (2), RR_IPS (16), RR_CONNS (per address, 4), RR_PROCS (2),
#   OVERLOAD_MAX (1024), OVERLOAD_ANON (512), PIN (1: proxy on CPU 0, everything else on
#   CPU 1), RAMPART_BIN (default target/release/rampart, built here; set it to skip the
#   build), KEEP (1: keep the work directory with configs, logs and results.jsonl).
set -euo pipefail
cd "$(dirname "$0")/.."

DUR=${DUR:-20}; RAMP=${RAMP:-3}; COOLDOWN=${COOLDOWN:-2}; LEGIT_RATE=${LEGIT_RATE:-25}
SCENARIOS=${SCENARIOS:-a b c d}; PROXIES=${PROXIES:-rampart nginx}
IDLE_CONNS=${IDLE_CONNS:-2000}; IDLE_IPS=${IDLE_IPS:-100}
FLOOD_IPS=${FLOOD_IPS:-64}; FLOOD_CONNS=${FLOOD_CONNS:-4}; FLOOD_PROCS=${FLOOD_PROCS:-2}
SLOW_CONNS=${SLOW_CONNS:-1000}; SLOW_IPS=${SLOW_IPS:-50}; SLOW_INTERVAL=${SLOW_INTERVAL:-2}
RR_IPS=${RR_IPS:-16}; RR_CONNS=${RR_CONNS:-4}; RR_PROCS=${RR_PROCS:-2}
OVERLOAD_MAX=${OVERLOAD_MAX:-1024}; OVERLOAD_ANON=${OVERLOAD_ANON:-512}
QUEUE_DELAY=${QUEUE_DELAY:-50ms}   # server.overload.max_queue_delay
PIN=${PIN:-1}; KEEP=${KEEP:-0}

command -v nginx >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq nginx >/dev/null; }
command -v python3 >/dev/null 2>&1 || { echo "flood: needs python3 (3.11+)" >&2; exit 1; }
python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "flood: needs python3 >= 3.11" >&2; exit 1; }
if [ -z "${RAMPART_BIN:-}" ]; then
  cargo build --release --quiet
  BIN=target/release/rampart
else
  BIN=$RAMPART_BIN
fi
[ -x "$BIN" ] || { echo "flood: no Rampart binary at $BIN" >&2; exit 1; }

# 2,000 idle connections plus the rest: both the proxies and the attackers need descriptors.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
[ "$(ulimit -n)" = unlimited ] || [ "$(ulimit -n)" -ge $((IDLE_CONNS + 1000)) ] ||
  echo "flood: warning: ulimit -n is $(ulimit -n), below the $((IDLE_CONNS + 1000)) descriptors the idle scenario needs" >&2

# CPUs: the proxy under test alone on CPU 0; the upstream, the legitimate client and the
# attackers (niced to 10, so the legitimate client and the upstream come first) on CPU 1.
if [ "$PIN" = 1 ] && [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null; then
  ON_PROXY="taskset -c 0"; ON_TOOLS="taskset -c 1"; PINNING="proxy on CPU 0; upstream, clients and attackers on CPU 1"
else
  ON_PROXY=""; ON_TOOLS=""; PINNING="no CPU pinning"
fi

WORK=$(mktemp -d)
# Every server runs in the foreground as a job of this script (nginx with daemon off), so
# the script knows their pids, stops them and reaps them.
UP_PID=""; PROXY_PID=""
stop_pid() { # PID [SIGNAL]: signal it, wait up to 10 s, then SIGKILL
  local pid=$1 sig=${2:-TERM} i
  [ -n "$pid" ] || return 0
  kill -$sig "$pid" 2>/dev/null || return 0
  for i in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
cleanup() {
  local p
  for p in $(jobs -p); do kill "$p" 2>/dev/null || true; done
  stop_pid "$PROXY_PID" INT
  stop_pid "$UP_PID"
  if [ "$KEEP" = 1 ]; then echo "flood: kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

NOFILE=$(ulimit -n); [ "$NOFILE" = unlimited ] && NOFILE=65536
UP=18390; RP=18391; ADM=18392; NX=18393; NX2=18394
API_KEY=rk_flood_legit_client_0123456789abcdefghij
API_KEY_SHA=$(printf %s "$API_KEY" | sha256sum | cut -d' ' -f1)

# The proxies' settings, the same where both have them: 50 connections and 50 requests/s
# (burst 100) per client address, 5 s to send a header block, 10 s for a body.
cat > $WORK/rampart.yaml <<YML
listeners:
  - name: public
    address: 127.0.0.1:$RP          # HTTP/1.1 and h2c (prior knowledge) on one port
    max_connections_per_ip: 50
admin:
  address: 127.0.0.1:$ADM
upstreams:
  app:
    targets: ["127.0.0.1:$UP"]
    timeouts: { connect: 1s, read: 10s }
consumers:
  - id: legit-app
    api_keys: [{ sha256: $API_KEY_SHA }]
auth:
  api_key: { header: X-API-Key }
rate_limit:
  - { key: client_ip, rate: 50/s, burst: 100 }
limits:
  max_request_body: 1MiB
  max_header_bytes: 16KiB
  request_header_timeout: 5s
  request_body_timeout: 10s
  min_request_body_rate: 1KiB
  min_response_rate: 1KiB
  response_write_timeout: 10s
routes:
  - name: api
    paths: ["/api"]
    upstream: app
    auth: { methods: [api_key] }
  - name: public
    paths: ["/"]
    upstream: app
access_log:
  target: "off"
server:
  threads: 1
  overload:
    max_in_flight: $OVERLOAD_MAX
    shed_anonymous_at: $OVERLOAD_ANON
    max_queue_delay: $QUEUE_DELAY
  max_connections: 20000
YML
cat > $WORK/px.conf <<NGX
worker_processes 1;
worker_rlimit_nofile $NOFILE;
pid $WORK/px.pid;
error_log $WORK/px.err;
events { worker_connections 16384; }
http {
  access_log off;
  limit_req_zone \$binary_remote_addr zone=perip:10m rate=50r/s;
  limit_conn_zone \$binary_remote_addr zone=connip:10m;
  limit_req_status 429;
  limit_conn_status 503;
  limit_req_log_level warn;         # below error_log's level: refusals are not logged (nor by Rampart)
  limit_conn_log_level warn;
  upstream up { server 127.0.0.1:$UP; keepalive 64; }
  server {
    listen 127.0.0.1:$NX;
    listen 127.0.0.1:$NX2 http2;    # nginx 1.22: a plain http2 port speaks only h2c
    client_header_timeout 5s;
    client_body_timeout 10s;
    send_timeout 10s;
    client_max_body_size 1m;
    limit_req zone=perip burst=100 nodelay;
    limit_conn connip 50;
    location / {
      proxy_pass http://up;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_connect_timeout 1s;
      proxy_read_timeout 10s;
    }
  }
}
NGX
"$BIN" validate --config $WORK/rampart.yaml >/dev/null
nginx -t -q -c $WORK/px.conf -p $WORK -e $WORK/px.err

wait_port() { # PORT: until something accepts on it (30 s at most)
  local i
  for i in $(seq 300); do
    (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0
    sleep 0.1
  done
  echo "flood: nothing listens on $1" >&2; return 1
}

# The upstream: the 100-byte JSON answer of lib.sh's json_upstream, plus /upload, which reads the whole body before it
# answers (through a buffering proxy_pass to itself), as an application would: a slow POST
# then holds its connection until the proxy in front cuts it.
BODY='{"id":12345,"name":"widget","price":9.99,"tags":["a","b"],"stock":true,"note":"benchmark-payload!!"}'
cat > $WORK/up.conf <<NGX
worker_processes 1;
worker_rlimit_nofile $NOFILE;
pid $WORK/up.pid;
error_log $WORK/up.err;
events { worker_connections 8192; }
http {
  access_log off;
  server {
    listen 127.0.0.1:$UP;
    keepalive_requests 1000000;
    client_max_body_size 2m;
    location / { default_type application/json; return 200 '$BODY'; }
    location = /upload { proxy_pass http://127.0.0.1:$UP/uploaded; }
    location = /uploaded { default_type application/json; return 200 '{"stored":true}'; }
  }
}
NGX
$ON_TOOLS nginx -g 'daemon off;' -c $WORK/up.conf -p $WORK -e $WORK/up.err &
UP_PID=$!
wait_port $UP

RESULTS=$WORK/results.jsonl
echo "flood: ${DUR} s per scenario after ${RAMP} s of attack, legitimate client ${LEGIT_RATE} req/s from 127.0.0.1; $PINNING"
echo "flood: Rampart $BIN (threads: 1), nginx $(nginx -v 2>&1 | sed 's/.*nginx\///') (1 worker); work dir $WORK"

# start_proxy PROXY: a fresh process of it (every scenario gets one, so memory and state
# left by the previous scenario do not count in the next); sets PROXY_PID, PORT (HTTP/1),
# H2PORT (h2c), PIDS (sampled for RSS and CPU) and CPORTS (whose connections are counted).
start_proxy() {
  case $1 in
    rampart)
      $ON_PROXY "$BIN" serve --config $WORK/rampart.yaml >> $WORK/rampart.log 2>&1 &
      PROXY_PID=$!; PORT=$RP; H2PORT=$RP; CPORTS=$RP
      wait_port $RP
      PIDS=$PROXY_PID
      ;;
    nginx)
      $ON_PROXY nginx -g 'daemon off;' -c $WORK/px.conf -p $WORK -e $WORK/px.err &
      PROXY_PID=$!; PORT=$NX; H2PORT=$NX2; CPORTS=$NX,$NX2
      wait_port $NX
      PIDS=$(pgrep -P $PROXY_PID | head -1) # the worker does the work: its RSS and CPU
      ;;
  esac
}
stop_proxy() { # Rampart: SIGINT, Pingora's fast shutdown (SIGTERM waits the grace period)
  stop_pid "$PROXY_PID" INT
  PROXY_PID=""
}

# scenario PROXY NAME KIND [flood.py args]: one scenario against a fresh PROXY
scenario() {
  local proxy=$1 name=$2 kind=$3; shift 3
  start_proxy $proxy
  $ON_TOOLS python3 bench/flood.py scenario --proxy $proxy --name $name --kind $kind \
    --port $PORT --h2port $H2PORT --pid $PIDS --ports $CPORTS --dur $DUR --ramp $RAMP \
    --rate $LEGIT_RATE --key $API_KEY --baseline-p99 "${BASE_P99:-0}" --out $RESULTS "$@"
  stop_proxy
  sleep $COOLDOWN
}

for proxy in $PROXIES; do
  case $proxy in rampart|nginx) ;; *) echo "flood: unknown proxy $proxy (rampart or nginx)" >&2; continue ;; esac
  echo
  BASE_P99=0
  scenario $proxy unloaded none
  BASE_P99=$(tail -1 $RESULTS | python3 -c 'import json,sys; print(json.load(sys.stdin)["legit"]["p99_ms"])')
  for s in $SCENARIOS; do
    case $s in
      a) scenario $proxy a-idle idle --net 1 --ips $IDLE_IPS --conns $IDLE_CONNS ;;
      b) scenario $proxy b-flood h1flood --net 2 --ips $FLOOD_IPS --per-ip $FLOOD_CONNS --procs $FLOOD_PROCS ;;
      c) scenario $proxy c-slow slow --net 3 --ips $SLOW_IPS --conns $SLOW_CONNS --interval $SLOW_INTERVAL ;;
      d) scenario $proxy d-reset rapidreset --net 4 --ips $RR_IPS --per-ip $RR_CONNS --procs $RR_PROCS ;;
      *) echo "flood: unknown scenario $s (a, b, c or d)" >&2 ;;
    esac
  done
done

echo
echo "Summary (${DUR} s per scenario, legitimate client ${LEGIT_RATE} req/s; $PINNING):"
echo
python3 bench/flood.py report $RESULTS
