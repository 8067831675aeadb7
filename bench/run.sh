#!/usr/bin/env bash
# Plain-proxy benchmark: wrk against the upstream directly, nginx as a reverse proxy, and
# Rampart, one worker/thread each, on loopback. The upstream is nginx answering a 100-byte
# JSON body. Prints requests/s, p50/p99 latency and each one's ratio to direct.
# Usage: bench/run.sh [duration_seconds] [connections]
set -euo pipefail
cd "$(dirname "$0")/.."
DUR=${1:-10}
CONN=${2:-32}
for tool in wrk nginx; do
  command -v $tool >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq $tool >/dev/null; }
done
cargo build --release --quiet
BIN=target/release/rampart
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; [ -f $WORK/up.pid ] && kill $(cat $WORK/up.pid) 2>/dev/null; [ -f $WORK/px.pid ] && kill $(cat $WORK/px.pid) 2>/dev/null; rm -rf $WORK' EXIT

UP=18090; PX=18091; RP=18092; ADM=18093
BODY='{"id":12345,"name":"widget","price":9.99,"tags":["a","b"],"stock":true,"note":"benchmark-payload!!"}'
[ ${#BODY} -eq 100 ] || { echo "body is ${#BODY} bytes, want 100"; exit 1; }

cat > $WORK/up.conf <<NGX
worker_processes 1;
pid $WORK/up.pid;
error_log $WORK/up.err;
events { worker_connections 4096; }
http {
  access_log off;
  server {
    listen 127.0.0.1:$UP;
    keepalive_requests 1000000;
    location / { default_type application/json; return 200 '$BODY'; }
  }
}
NGX
cat > $WORK/px.conf <<NGX
worker_processes 1;
pid $WORK/px.pid;
error_log $WORK/px.err;
events { worker_connections 4096; }
http {
  access_log off;
  upstream up { server 127.0.0.1:$UP; keepalive 64; }
  server {
    listen 127.0.0.1:$PX;
    keepalive_requests 1000000;
    location / {
      proxy_pass http://up;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
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
  - name: all
    paths: ["/"]
    upstream: up
access_log:
  target: off
server:
  threads: 1
YML

nginx -c $WORK/up.conf -p $WORK -e $WORK/up.err
nginx -c $WORK/px.conf -p $WORK -e $WORK/px.err
$BIN serve --config $WORK/rampart.yaml > $WORK/rampart.log 2>&1 &
sleep 1.5

run() { # name port
  wrk -t1 -c$CONN -d2s http://127.0.0.1:$2/item >/dev/null 2>&1 # warm-up
  wrk -t1 -c$CONN -d${DUR}s --latency http://127.0.0.1:$2/item > $WORK/$1.txt 2>&1
  local rps p50 p99 errs
  rps=$(awk '/Requests\/sec/ {print $2}' $WORK/$1.txt)
  p50=$(awk '$1=="50%" {print $2}' $WORK/$1.txt)
  p99=$(awk '$1=="99%" {print $2}' $WORK/$1.txt)
  errs=$(awk '/Non-2xx|Socket errors/' $WORK/$1.txt | tr '\n' ' ')
  echo "$1 $rps $p50 $p99 $errs"
}
echo "wrk -t1 -c$CONN -d${DUR}s, GET with a 100-byte JSON response, one worker each"
R_DIRECT=$(run direct $UP)
R_NGINX=$(run nginx $PX)
R_RAMPART=$(run rampart $RP)
DIRECT=$(echo "$R_DIRECT" | awk '{print $2}')
printf "%-10s %12s %10s %10s %10s  %s\n" target "req/s" p50 p99 "÷direct" notes
for r in "$R_DIRECT" "$R_NGINX" "$R_RAMPART"; do
  set -- $r
  name=$1; rps=$2; p50=$3; p99=$4; shift 4
  printf "%-10s %12s %10s %10s %9.1f%%  %s\n" $name $rps $p50 $p99 "$(awk -v a=$rps -v b=$DIRECT 'BEGIN{print a/b*100}')" "$*"
done
NGINX=$(echo "$R_NGINX" | awk '{print $2}')
RAMPART=$(echo "$R_RAMPART" | awk '{print $2}')
printf "rampart / nginx = %.1f%% (target >= 90%%)\n" "$(awk -v a=$RAMPART -v b=$NGINX 'BEGIN{print a/b*100}')"
