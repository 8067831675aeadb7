#!/usr/bin/env bash
# Soak: steady mixed traffic through a release build of Rampart while the config reloads
# every 10 s, an upstream target is killed and restarted every minute, Redis is restarted
# twice and the certificate rotates; reports requests sent and failed (each failure
# explained by a fault or counted as a bug), RSS and open file descriptors over the run.
#
#   bench/soak.sh                 # 30 minutes
#   bench/soak.sh -d 180          # 3 minutes
#   bench/soak.sh -d 600 -r 300   # 10 minutes at about 300 requests/s
#
# Exit 0 when no failure is unexplained and RSS and descriptors stay within their bounds.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v redis-server >/dev/null || { echo "soak: needs redis-server (apt-get install redis-server)" >&2; exit 1; }
command -v openssl >/dev/null || { echo "soak: needs openssl" >&2; exit 1; }
cargo build --release --quiet
exec python3 bench/soak.py --binary target/release/rampart "$@"
