#!/usr/bin/env bash
# WAF benchmark: nginx + ModSecurity v3 + CRS v4 (Debian's libnginx-mod-http-modsecurity)
# against Rampart with the same CRS rules from ../shared/crs, paranoia level 1, blocking on,
# one worker each, wrk on loopback. Benign GET, benign 1 KiB JSON POST, and a SQL injection
# that both must answer 403 in the same run, or the figures do not count.
# Usage: bench/waf.sh [duration_seconds] [connections]
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
DUR=${1:-10}
CONN=${2:-64}
CRS=$(cd ../shared/crs && pwd)
need=()
command -v wrk >/dev/null 2>&1 || need+=(wrk)
command -v nginx >/dev/null 2>&1 || need+=(nginx)
[ -f /usr/lib/nginx/modules/ngx_http_modsecurity_module.so ] || need+=(libnginx-mod-http-modsecurity)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
cargo build --release --quiet
BIN=target/release/rampart
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; for p in up ms; do [ -f $WORK/$p.pid ] && kill $(cat $WORK/$p.pid) 2>/dev/null; done; rm -rf $WORK' EXIT
UP=18190; MS=18191; RP=18192; RPN=18193; ADM=18194

BODY='{"id":12345,"name":"widget","price":9.99,"tags":["a","b"],"stock":true,"note":"benchmark-payload!!"}'
# A realistic 1 KiB JSON document for the POST case.
POST=$(python3 -c 'import json; print(json.dumps({"order": {"id": 81234, "customer": {"name": "Ada Lovelace", "email": "ada@example.com", "address": {"street": "12 Analytical Way", "city": "London", "zip": "N1 9GU"}}, "items": [{"sku": "SKU-%04d" % i, "qty": i % 3 + 1, "price": 19.99 + i, "note": "gift wrap please"} for i in range(9)], "currency": "GBP", "coupon": "WINTER-2026"}}, separators=(",", ":")))')
printf %s "$POST" > $WORK/post.json
cat > $WORK/post.lua <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = io.open("$WORK/post.json"); wrk.body = f:read("*a"); f:close()
LUA

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
    client_body_buffer_size 64k;
    location / { default_type application/json; return 200 '$BODY'; }
  }
}
NGX
# ModSecurity with CRS's recommended engine settings; JSON bodies by Content-Type, as
# modsecurity.conf-recommended does (rule 200001).
cat > $WORK/modsec.conf <<MS
SecRuleEngine On
SecRequestBodyAccess On
SecRequestBodyLimit 13107200
SecRequestBodyNoFilesLimit 131072
SecRequestBodyLimitAction Reject
SecResponseBodyAccess Off
SecAuditEngine Off
SecRule REQUEST_HEADERS:Content-Type "^application/json" "id:200001,phase:1,t:none,t:lowercase,pass,nolog,ctl:requestBodyProcessor=JSON"
Include $CRS/rules/crs-setup.conf.example
Include $CRS/rules/*.conf
MS
cat > $WORK/ms.conf <<NGX
load_module /usr/lib/nginx/modules/ngx_http_modsecurity_module.so;
worker_processes 1;
pid $WORK/ms.pid;
error_log $WORK/ms.err;
events { worker_connections 4096; }
http {
  access_log off;
  upstream up { server 127.0.0.1:$UP; keepalive 64; }
  server {
    listen 127.0.0.1:$MS;
    keepalive_requests 1000000;
    modsecurity on;
    modsecurity_rules_file $WORK/modsec.conf;
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
  - name: waf
    address: 127.0.0.1:$RP
  - name: nowaf
    address: 127.0.0.1:$RPN
admin:
  address: 127.0.0.1:$ADM
upstreams:
  up:
    targets: ["127.0.0.1:$UP"]
waf:
  rules:
    - $CRS/rules/crs-setup.conf.example
    - $CRS/rules/*.conf
  mode: block
  paranoia: 1
routes:
  - name: plain
    hosts: ["nowaf.bench"]
    paths: ["/"]
    upstream: up
    waf: { enabled: false }
  - name: protected
    paths: ["/"]
    upstream: up
access_log:
  target: off
server:
  threads: 1
YML

start_servers 2 up ms
MS_PID=$(nginx_worker $WORK/ms.pid)

SQLI='/item?id=1%20UNION%20SELECT%20password%20FROM%20users'
ms_sqli=$(curl -s -o /dev/null -w '%{http_code}' -H 'Host: bench.example' "http://127.0.0.1:$MS$SQLI")
rp_sqli=$(curl -s -o /dev/null -w '%{http_code}' -H 'Host: bench.example' "http://127.0.0.1:$RP$SQLI")
ms_post=$(curl -s -o /dev/null -w '%{http_code}' -H 'Host: bench.example' -H 'Content-Type: application/json' --data-binary @$WORK/post.json "http://127.0.0.1:$MS/orders")
rp_post=$(curl -s -o /dev/null -w '%{http_code}' -H 'Host: bench.example' -H 'Content-Type: application/json' --data-binary @$WORK/post.json "http://127.0.0.1:$RP/orders")
echo "SQL injection: nginx+ModSecurity $ms_sqli, Rampart $rp_sqli (both must be 403)"
echo "benign JSON POST (${#POST} bytes): nginx+ModSecurity $ms_post, Rampart $rp_post (both must be 200)"
if [ "$ms_sqli" != 403 ] || [ "$rp_sqli" != 403 ] || [ "$ms_post" != 200 ] || [ "$rp_post" != 200 ]; then
  echo "a WAF is not blocking (or blocks benign traffic): figures do not count"; exit 1
fi

ratio() { awk -v a=$1 -v b=$2 'BEGIN{printf "%.1fx", a/b}'; }
H=(-H "Host: bench.example" -H "User-Agent: Mozilla/5.0 (X11; Linux x86_64) bench" -H "Accept: application/json" -H "Accept-Language: en-GB,en;q=0.9")
echo "wrk -t1 -c$CONN -d${DUR}s, one worker each, CRS v4 paranoia 1, blocking"
G_MS=$(CPU_PID=$MS_PID run modsec-get "http://127.0.0.1:$MS/api/items?page=2&sort=name" "${H[@]}")
G_RP=$(CPU_PID=$RAMPART_PID run rampart-get "http://127.0.0.1:$RP/api/items?page=2&sort=name" "${H[@]}")
P_MS=$(CPU_PID=$MS_PID run modsec-post "http://127.0.0.1:$MS/orders" "${H[@]}" -s $WORK/post.lua)
P_RP=$(CPU_PID=$RAMPART_PID run rampart-post "http://127.0.0.1:$RP/orders" "${H[@]}" -s $WORK/post.lua)
S_MS=$(CPU_PID=$MS_PID run modsec-sqli "http://127.0.0.1:$MS$SQLI" "${H[@]}")
S_RP=$(CPU_PID=$RAMPART_PID run rampart-sqli "http://127.0.0.1:$RP$SQLI" "${H[@]}")
N_RP=$(CPU_PID=$RAMPART_PID run rampart-no-waf "http://127.0.0.1:$RPN/api/items?page=2&sort=name" -H "Host: nowaf.bench" -H "User-Agent: Mozilla/5.0 (X11; Linux x86_64) bench" -H "Accept: application/json")
printf "%-18s %12s %10s %10s %11s  %s\n" target "req/s" p50 p99 "cpu µs/req" notes
for r in "$G_MS" "$G_RP" "$P_MS" "$P_RP" "$S_MS" "$S_RP" "$N_RP"; do
  set -- $r
  name=$1; rps=$2; p50=$3; p99=$4; c=$5; shift 5
  printf "%-18s %12s %10s %10s %11s  %s\n" $name $rps $p50 $p99 $c "$*"
done
v() { echo "$1" | awk '{print $2}'; }
echo "benign GET:  rampart / modsecurity = $(ratio $(v "$G_RP") $(v "$G_MS")) (target >= 3x)"
echo "benign POST: rampart / modsecurity = $(ratio $(v "$P_RP") $(v "$P_MS")) (target >= 3x)"
echo "SQLi (403):  rampart / modsecurity = $(ratio $(v "$S_RP") $(v "$S_MS"))"
echo "benign GET with WAF / Rampart without = $(awk -v a=$(v "$G_RP") -v b=$(v "$N_RP") 'BEGIN{printf "%.1f%%", a/b*100}') (ambition >= 10%)"
