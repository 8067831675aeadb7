#!/usr/bin/env bash
# Response cache benchmark (issue 26 §1): Rampart answering from its cache against Rampart
# proxying the same request, and nginx's proxy_cache against nginx proxying, in one run.
# The upstream is nginx answering the 100-byte JSON body with `Cache-Control: max-age=3600`
# (the plain routes ignore it). One worker/thread each; ROUNDS interleaved rounds, medians.
# Goal: Rampart's cache hits >= Rampart's plain proxy (req/s, same run).
# Usage: bench/cache.sh [duration_seconds] [connections]
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
DUR=${1:-5}
CONN=${2:-32}
ROUNDS=${ROUNDS:-3}
command -v wrk >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
command -v nginx >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq nginx >/dev/null; }
cargo build --release --quiet
BIN=target/release/rampart
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; for p in up px; do [ -f $WORK/$p.pid ] && kill $(cat $WORK/$p.pid) 2>/dev/null; done; rm -rf $WORK' EXIT
UP=18190; PX=18191; RP=18192; ADM=18193
BODY='{"id":12345,"name":"widget","price":9.99,"tags":["a","b"],"stock":true,"note":"benchmark-payload!!"}'
cat > $WORK/up.conf <<NGX
worker_processes 1;
pid $WORK/up.pid;
events { worker_connections 4096; }
http { access_log off; server { listen 127.0.0.1:$UP; keepalive_requests 1000000;
  location / { default_type application/json; add_header Cache-Control "max-age=3600";
    return 200 '$BODY'; } } }
NGX
mkdir -p $WORK/ngx-cache
# root: the worker writes its cache files under the private work directory.
cat > $WORK/px.conf <<NGX
user root;
worker_processes 1;
pid $WORK/px.pid;
events { worker_connections 4096; }
http {
  access_log off;
  proxy_cache_path $WORK/ngx-cache keys_zone=c:10m max_size=128m;
  upstream up { server 127.0.0.1:$UP; keepalive 64; }
  server {
    listen 127.0.0.1:$PX;
    keepalive_requests 1000000;
    location /cached/ { proxy_pass http://up; proxy_http_version 1.1;
      proxy_set_header Connection ""; proxy_cache c; proxy_cache_lock on; }
    location / { proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
NGX
cat > $WORK/rampart.yaml <<YML
listeners:
  - name: bench
    address: 127.0.0.1:$RP
admin:
  address: 127.0.0.1:$ADM
upstreams:
  up:
    targets: ["127.0.0.1:$UP"]
routes:
  - name: cached
    paths: ["/cached"]
    upstream: up
    cache: {}
  - name: plain
    paths: ["/"]
    upstream: up
access_log:
  target: off
server:
  threads: 1
YML
start_servers 1.5 up px
PX_PID=$(nginx_worker $WORK/px.pid)
curl -fsS -o /dev/null http://127.0.0.1:$RP/cached/item
curl -fsS -D - -o /dev/null http://127.0.0.1:$RP/cached/item | grep -qi '^cache-status: rampart; hit' \
  || { echo "Rampart's second request was not a cache hit"; exit 1; }
echo "wrk -t1 -c$CONN -d${DUR}s, GET with a 100-byte JSON response, one worker each, $ROUNDS rounds"
ROWS=()
for _ in $(seq $ROUNDS); do
  ROWS+=("$(CPU_PID=$RAMPART_PID run rampart-proxy http://127.0.0.1:$RP/item)")
  ROWS+=("$(CPU_PID=$RAMPART_PID run rampart-cache-hit http://127.0.0.1:$RP/cached/item)")
  ROWS+=("$(CPU_PID=$PX_PID run nginx-proxy http://127.0.0.1:$PX/item)")
  ROWS+=("$(CPU_PID=$PX_PID run nginx-cache-hit http://127.0.0.1:$PX/cached/item)")
done
rows "${ROWS[@]}"
med() { median $1 $2 "${ROWS[@]}"; }
ratio() { awk -v a=$1 -v b=$2 'BEGIN{printf "%.1f%%", a/b*100}'; }
echo "medians (req/s, cpu µs/req): rampart proxy $(med rampart-proxy 2) $(med rampart-proxy 5); rampart cache hit $(med rampart-cache-hit 2) $(med rampart-cache-hit 5); nginx proxy $(med nginx-proxy 2) $(med nginx-proxy 5); nginx cache hit $(med nginx-cache-hit 2) $(med nginx-cache-hit 5)"
echo "rampart cache hit / rampart proxy = $(ratio $(med rampart-cache-hit 2) $(med rampart-proxy 2)) by req/s, $(ratio $(med rampart-proxy 5) $(med rampart-cache-hit 5)) by CPU (target >= 100%)"
echo "nginx cache hit / nginx proxy = $(ratio $(med nginx-cache-hit 2) $(med nginx-proxy 2)) by req/s"
echo "rampart cache hit / nginx cache hit = $(ratio $(med rampart-cache-hit 2) $(med nginx-cache-hit 2)) by req/s, $(ratio $(med nginx-cache-hit 5) $(med rampart-cache-hit 5)) by CPU"
