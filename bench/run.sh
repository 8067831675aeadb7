#!/usr/bin/env bash
# Plain-proxy benchmark: wrk against the upstream directly, nginx as a reverse proxy, and
# Rampart, one worker/thread each, on loopback. The upstream is nginx answering a 100-byte
# JSON body. Prints requests/s, p50/p99 latency and each one's ratio to direct.
# Usage: bench/run.sh [duration_seconds] [connections]
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
DUR=${1:-10}
CONN=${2:-32}
for tool in wrk nginx haproxy caddy; do
  command -v $tool >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq $tool >/dev/null; }
done
cargo build --release --quiet
cargo build --release --quiet -p rampart-gateway --example bare_proxy
BIN=target/release/rampart
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; [ -f $WORK/up.pid ] && kill $(cat $WORK/up.pid) 2>/dev/null; [ -f $WORK/px.pid ] && kill $(cat $WORK/px.pid) 2>/dev/null; rm -rf $WORK' EXIT

UP=18090; PX=18091; RP=18092; ADM=18093; PXS=18094; RPS=18095; BP=18096; BPS=18097
HA=18098; CA=18099
openssl genrsa -out $WORK/jwt-key.pem 2048 >/dev/null 2>&1
openssl rsa -in $WORK/jwt-key.pem -pubout -out $WORK/jwt-pub.pem >/dev/null 2>&1
API_KEY=rk_benchmark_key_0123456789abcdefghijklmnop
API_KEY_SHA=$(printf %s "$API_KEY" | sha256sum | cut -d' ' -f1)
b64url() { base64 -w0 | tr '+/' '-_' | tr -d '='; }
JWT_HEAD=$(printf '{"alg":"RS256","typ":"JWT"}' | b64url)
JWT_BODY=$(printf '{"iss":"https://idp.bench","sub":"bench","aud":"bench-api","exp":%d}' $(( $(date +%s) + 86400 )) | b64url)
JWT_SIG=$(printf %s "$JWT_HEAD.$JWT_BODY" | openssl dgst -sha256 -sign $WORK/jwt-key.pem -binary | b64url)
JWT="$JWT_HEAD.$JWT_BODY.$JWT_SIG"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
  -subj /CN=localhost -addext subjectAltName=DNS:localhost \
  -keyout $WORK/key.pem -out $WORK/cert.pem >/dev/null 2>&1
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
  server {
    listen 127.0.0.1:$PXS ssl;
    ssl_certificate $WORK/cert.pem;
    ssl_certificate_key $WORK/key.pem;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_cache off;
    ssl_session_tickets off;
    keepalive_requests 1000000;
    location / {
      proxy_pass http://up;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
NGX
# The peers as plain reverse proxies: one thread each, keep-alive to the upstream.
cat > $WORK/haproxy.cfg <<HAP
global
  nbthread 1
  maxconn 4096
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  http-reuse always
frontend fe
  bind 127.0.0.1:$HA
  default_backend be
backend be
  server up 127.0.0.1:$UP
HAP
cat > $WORK/Caddyfile <<CAD
{
  admin off
  auto_https off
}
http://127.0.0.1:$CA {
  reverse_proxy 127.0.0.1:$UP
}
CAD
cat > $WORK/rampart.yaml <<YML
listeners:
  - name: bench
    address: 127.0.0.1:$RP
  - name: bench-tls
    address: 127.0.0.1:$RPS
    tls:
      certificates:
        - { cert: $WORK/cert.pem, key: $WORK/key.pem }
admin:
  address: 127.0.0.1:$ADM
upstreams:
  up:
    targets: ["127.0.0.1:$UP"]
consumers:
  - id: bench-app
    api_keys: [{ sha256: $API_KEY_SHA }]
auth:
  jwt:
    - issuer: https://idp.bench
      audiences: [bench-api]
      algorithms: [RS256]
      keys: [{ pem: $WORK/jwt-pub.pem }]
      allow_unknown_subjects: true
redis: redis://127.0.0.1:6379
routes:
  - name: limited
    paths: ["/limited"]
    upstream: up
    rate_limit: [{ key: client_ip, rate: 10000000/s }]
  - name: limited-redis
    paths: ["/limited-redis"]
    upstream: up
    rate_limit: [{ key: client_ip, rate: 10000000/s, backend: redis }]
  - name: key
    paths: ["/key"]
    upstream: up
    auth: { methods: [api_key] }
  - name: jwt
    paths: ["/jwt"]
    upstream: up
    auth: { methods: [jwt] }
  - name: all
    paths: ["/"]
    upstream: up
access_log:
  target: off
server:
  threads: 1
YML

start_servers 1.5 up px
UP_PID=$(nginx_worker $WORK/up.pid)
PX_PID=$(nginx_worker $WORK/px.pid)
# The data plane alone: Pingora with one fixed upstream and nothing of Rampart's.
target/release/examples/bare_proxy 127.0.0.1:$BP 127.0.0.1:$UP 127.0.0.1:$BPS $WORK/cert.pem $WORK/key.pem \
  > $WORK/bare.log 2>&1 &
BARE_PID=$!
haproxy -f $WORK/haproxy.cfg -db > $WORK/haproxy.log 2>&1 &
HA_PID=$!
# GOMAXPROCS=1: Go's scheduler on one thread, as the others run one worker.
GOMAXPROCS=1 XDG_DATA_HOME=$WORK XDG_CONFIG_HOME=$WORK \
  caddy run --config $WORK/Caddyfile --adapter caddyfile > $WORK/caddy.log 2>&1 &
CA_PID=$!
sleep 1

table() { # rows from run(), printed under one header
  printf "%-24s %12s %10s %10s %11s  %s\n" target "req/s" p50 p99 "cpu µs/req" notes
  for r in "$@"; do
    set -- $r
    local name=$1 rps=$2 p50=$3 p99=$4 cpu=$5; shift 5
    printf "%-24s %12s %10s %10s %11s  %s\n" $name $rps $p50 $p99 $cpu "$*"
  done
}
cpu() { echo "$1" | awk '{print $5}'; }
# CPU per request of A relative to B as a throughput-like ratio: B's cost / A's cost.
cpu_ratio() { awk -v a=$(cpu "$1") -v b=$(cpu "$2") 'BEGIN{printf "%.1f%%", b/a*100}'; }
echo "wrk -t1 -c$CONN -d${DUR}s, GET with a 100-byte JSON response, one worker each"
R_DIRECT=$(CPU_PID=$UP_PID run direct http://127.0.0.1:$UP/item)
R_NGINX=$(CPU_PID=$PX_PID run nginx http://127.0.0.1:$PX/item)
R_RAMPART=$(CPU_PID=$RAMPART_PID run rampart http://127.0.0.1:$RP/item)
R_BARE=$(CPU_PID=$BARE_PID run pingora-bare http://127.0.0.1:$BP/item)
R_HAPROXY=$(CPU_PID=$HA_PID run haproxy http://127.0.0.1:$HA/item)
R_CADDY=$(CPU_PID=$CA_PID run caddy http://127.0.0.1:$CA/item)
DIRECT=$(echo "$R_DIRECT" | awk '{print $2}')
printf "%-10s %12s %10s %10s %10s %11s  %s\n" target "req/s" p50 p99 "÷direct" "cpu µs/req" notes
for r in "$R_DIRECT" "$R_NGINX" "$R_RAMPART" "$R_BARE" "$R_HAPROXY" "$R_CADDY"; do
  set -- $r
  name=$1; rps=$2; p50=$3; p99=$4; c=$5; shift 5
  printf "%-10s %12s %10s %10s %9.1f%% %11s  %s\n" $name $rps $p50 $p99 "$(awk -v a=$rps -v b=$DIRECT 'BEGIN{print a/b*100}')" $c "$*"
done
NGINX=$(echo "$R_NGINX" | awk '{print $2}')
RAMPART=$(echo "$R_RAMPART" | awk '{print $2}')
printf "rampart / nginx = %.1f%% (target >= 90%%)\n" "$(awk -v a=$RAMPART -v b=$NGINX 'BEGIN{print a/b*100}')"
HAPROXY=$(echo "$R_HAPROXY" | awk '{print $2}')
CADDY=$(echo "$R_CADDY" | awk '{print $2}')
printf "rampart / haproxy = %.1f%%; rampart / caddy = %.1f%% (target > 100%%) (by CPU: %s, %s)\n" \
  "$(awk -v a=$RAMPART -v b=$HAPROXY 'BEGIN{print a/b*100}')" "$(awk -v a=$RAMPART -v b=$CADDY 'BEGIN{print a/b*100}')" \
  "$(cpu_ratio "$R_RAMPART" "$R_HAPROXY")" "$(cpu_ratio "$R_RAMPART" "$R_CADDY")"
echo "by CPU per request: nginx cost / rampart cost = $(cpu_ratio "$R_RAMPART" "$R_NGINX")"
BARE=$(echo "$R_BARE" | awk '{print $2}')
printf "bare pingora / nginx = %.1f%%; rampart / bare pingora = %.1f%% (by CPU: %s, %s)\n" \
  "$(awk -v a=$BARE -v b=$NGINX 'BEGIN{print a/b*100}')" "$(awk -v a=$RAMPART -v b=$BARE 'BEGIN{print a/b*100}')" \
  "$(cpu_ratio "$R_BARE" "$R_NGINX")" "$(cpu_ratio "$R_RAMPART" "$R_BARE")"

ratio() { awk -v a=$1 -v b=$2 'BEGIN{printf "%.1f%%", a/b*100}'; }
echo
echo "HTTPS (same ECDSA P-256 certificate; TLS 1.3 by default; no session resumption)"
T_NGINX_KA=$(CPU_PID=$PX_PID run nginx-tls-keepalive https://localhost:$PXS/item)
T_RAMPART_KA=$(CPU_PID=$RAMPART_PID run rampart-tls-keepalive https://localhost:$RPS/item)
T_NGINX_HS=$(CPU_PID=$PX_PID run nginx-tls-handshake https://localhost:$PXS/item -H "Connection: close")
T_RAMPART_HS=$(CPU_PID=$RAMPART_PID run rampart-tls-handshake https://localhost:$RPS/item -H "Connection: close")
T_BARE_KA=$(CPU_PID=$BARE_PID run bare-tls-keepalive https://localhost:$BPS/item)
T_BARE_HS=$(CPU_PID=$BARE_PID run bare-tls-handshake https://localhost:$BPS/item -H "Connection: close")
table "$T_NGINX_KA" "$T_RAMPART_KA" "$T_BARE_KA" "$T_NGINX_HS" "$T_RAMPART_HS" "$T_BARE_HS"
echo "keep-alive: rampart / nginx = $(ratio $(echo $T_RAMPART_KA | awk '{print $2}') $(echo $T_NGINX_KA | awk '{print $2}')) (target >= 90%)"
echo "new handshakes: rampart / nginx = $(ratio $(echo $T_RAMPART_HS | awk '{print $2}') $(echo $T_NGINX_HS | awk '{print $2}')) (target >= 90%)"
echo "by CPU per request: keep-alive $(cpu_ratio "$T_RAMPART_KA" "$T_NGINX_KA"), new handshakes $(cpu_ratio "$T_RAMPART_HS" "$T_NGINX_HS")"
echo "bare pingora / nginx: keep-alive $(ratio $(echo $T_BARE_KA | awk '{print $2}') $(echo $T_NGINX_KA | awk '{print $2}')), new handshakes $(ratio $(echo $T_BARE_HS | awk '{print $2}') $(echo $T_NGINX_HS | awk '{print $2}'))"

echo
# The three routes differ by a few percent, less than one run's noise on a shared host:
# ROUNDS interleaved rounds (no auth, API key, JWT, again...) and the medians are compared.
ROUNDS=${ROUNDS:-3}
echo "Authentication (plain HTTP, same run): no auth vs API key vs RS256 JWT, $ROUNDS interleaved rounds"
A_ROWS=()
for _ in $(seq $ROUNDS); do
  A_ROWS+=("$(CPU_PID=$RAMPART_PID run no-auth http://127.0.0.1:$RP/item)")
  A_ROWS+=("$(CPU_PID=$RAMPART_PID run api-key http://127.0.0.1:$RP/key -H "X-API-Key: $API_KEY")")
  A_ROWS+=("$(CPU_PID=$RAMPART_PID run jwt-rs256 http://127.0.0.1:$RP/jwt -H "Authorization: Bearer $JWT")")
done
# The same ~600-byte Authorization header on the unauthenticated route: how much of the JWT
# route's cost is the bigger request rather than verification.
A_NONE_H=$(CPU_PID=$RAMPART_PID run no-auth+jwt-header http://127.0.0.1:$RP/item -H "Authorization: Bearer $JWT")
table "${A_ROWS[@]}" "$A_NONE_H"
med() { median $1 $2 "${A_ROWS[@]}"; }
echo "medians: no auth $(med no-auth 2) req/s $(med no-auth 5) µs/req; api key $(med api-key 2) req/s $(med api-key 5) µs/req; jwt $(med jwt-rs256 2) req/s $(med jwt-rs256 5) µs/req"
echo "api key / no auth = $(ratio $(med api-key 2) $(med no-auth 2)) by req/s, $(ratio $(med no-auth 5) $(med api-key 5)) by CPU (target >= 90%)"
echo "jwt rs256 / no auth = $(ratio $(med jwt-rs256 2) $(med no-auth 2)) by req/s, $(ratio $(med no-auth 5) $(med jwt-rs256 5)) by CPU (target >= 90%)"

echo
echo "Rate limiting (plain HTTP, same run; limits high enough that nothing is rejected)"
L_NONE=$(CPU_PID=$RAMPART_PID run no-limit http://127.0.0.1:$RP/item)
L_LOCAL=$(CPU_PID=$RAMPART_PID run local-limit http://127.0.0.1:$RP/limited)
L_REDIS=$(CPU_PID=$RAMPART_PID run redis-limit http://127.0.0.1:$RP/limited-redis)
table "$L_NONE" "$L_LOCAL" "$L_REDIS"
echo "local limit / no limit = $(ratio $(echo $L_LOCAL | awk '{print $2}') $(echo $L_NONE | awk '{print $2}')) (target >= 95%)"
echo "by CPU per request: local limit $(cpu_ratio "$L_LOCAL" "$L_NONE"), redis limit $(cpu_ratio "$L_REDIS" "$L_NONE")"
