#!/usr/bin/env bash
# Instructions per plain keep-alive GET through a Rampart binary, counted by callgrind: the
# same binary and inputs give the same count whatever else the host is doing, so this is the
# steady before/after check where wall-clock and CPU-time figures drown in a VM's noise.
# Runs N1 then N2 sequential requests on one connection (to an nginx upstream) and prints
# (instructions(N2) - instructions(N1)) / (N2 - N1): start-up and shutdown cancel out.
# Usage: bench/instructions.sh BINARY [N1] [N2]
# CACHE=1: the route caches (`cache: {}`), so every request after the first is a cache hit.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
BIN=${1:?binary}; N1=${2:-1000}; N2=${3:-3000}
for tool in valgrind nginx; do
  command -v $tool >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq $tool >/dev/null; }
done
count() { # requests -> total instructions
  local W; W=$(mktemp -d)
  json_upstream $W 18290
  cat > $W/r.yaml <<Y
listeners: [{ name: p, address: "127.0.0.1:18291" }]
admin: { address: "127.0.0.1:18293" }
access_log: { target: "off" }
server: { threads: 1, watch_interval: 0s }
upstreams: { u: { targets: ["127.0.0.1:18290"] } }
routes: [{ name: r, paths: ["/"], upstream: u${CACHE:+, cache: {\}} }]
Y
  valgrind --tool=callgrind --callgrind-out-file=$W/cg.out "$BIN" serve --config $W/r.yaml > $W/log 2>&1 &
  local vp=$!
  for _ in $(seq 120); do (exec 3<>/dev/tcp/127.0.0.1/18291) 2>/dev/null && break; sleep 0.5; done
  python3 - "$1" <<'PY'
import socket, sys
n = int(sys.argv[1])
s = socket.create_connection(("127.0.0.1", 18291))
req = b"GET /api/items HTTP/1.1\r\nHost: localhost\r\nUser-Agent: bench\r\n\r\n"
buf = b""
for _ in range(n):
    s.sendall(req)
    while True:
        h = buf.find(b"\r\n\r\n")
        if h >= 0:
            head = buf[:h].decode()
            cl = next((int(l.split(":", 1)[1]) for l in head.split("\r\n")[1:]
                       if l.lower().startswith("content-length:")), 0)
            if len(buf) >= h + 4 + cl:
                assert head.startswith("HTTP/1.1 200"), head
                buf = buf[h + 4 + cl:]
                break
        buf += s.recv(65536)
PY
  kill -TERM $vp; wait $vp 2>/dev/null || true
  kill "$(cat $W/up.pid)"
  grep -E '^(summary|totals):' $W/cg.out | head -1 | awk '{print $2}'
  rm -rf $W
}
a=$(count "$N1"); b=$(count "$N2")
echo "$BIN: $(( (b - a) / (N2 - N1) )) instructions per request ($N1 → $N2 requests: $a → $b)"
