# Shared by the benchmark scripts (sourced): wrk runs that print one result row.
# Needs CONN, DUR and WORK set by the caller.

# CPU time a process (all its threads) has used so far, in clock ticks; 0 without a pid.
cpu_ticks() {
  if [ -n "${1:-}" ] && [ -r "/proc/$1/stat" ]; then
    awk '{print $14 + $15}' "/proc/$1/stat"
  else
    echo 0
  fi
}

# run NAME URL [extra wrk args]: a 2 s warm-up, then DUR seconds; prints
# "NAME req/s p50 p99 cpu notes" (notes: non-2xx responses and socket errors).
# cpu: CPU microseconds the process CPU_PID (the server under test, when set) spent per
# request. On a shared VM, requests/s moves with the neighbours (steal time); CPU time per
# request does not, so it is the steadier way to compare two servers.
run() { # name url [extra wrk args]
  local name=$1 url=$2; shift 2
  wrk -t1 -c$CONN -d2s "$@" $url >/dev/null 2>&1 # warm-up
  local t0 t1
  t0=$(cpu_ticks "${CPU_PID:-}")
  wrk -t1 -c$CONN -d${DUR}s --latency "$@" $url > $WORK/$name.txt 2>&1
  t1=$(cpu_ticks "${CPU_PID:-}")
  local rps p50 p99 errs reqs cpu=-
  rps=$(awk '/Requests\/sec/ {print $2}' $WORK/$name.txt)
  p50=$(awk '$1=="50%" {print $2}' $WORK/$name.txt)
  p99=$(awk '$1=="99%" {print $2}' $WORK/$name.txt)
  errs=$(awk '/Non-2xx|Socket errors/' $WORK/$name.txt | tr '\n' ' ')
  reqs=$(awk '/requests in/ {print $1}' $WORK/$name.txt)
  if [ -n "${CPU_PID:-}" ] && [ "${reqs:-0}" -gt 0 ]; then
    cpu=$(awk -v t=$((t1 - t0)) -v hz="$(getconf CLK_TCK)" -v n="$reqs" \
      'BEGIN{printf "%.1f", t * 1e6 / hz / n}')
  fi
  echo "$name $rps $p50 $p99 $cpu $errs"
}

# The worker process of a one-worker nginx started with pid file $1.
nginx_worker() { pgrep -P "$(cat "$1")" | head -1; }

# start_servers SECONDS NAME...: nginx with each $WORK/NAME.conf, then Rampart on
# $WORK/rampart.yaml (sets RAMPART_PID); waits SECONDS for them to listen.
start_servers() {
  local wait=$1 c; shift
  for c in "$@"; do nginx -c $WORK/$c.conf -p $WORK -e $WORK/$c.err; done
  $BIN serve --config $WORK/rampart.yaml > $WORK/rampart.log 2>&1 &
  RAMPART_PID=$!
  sleep $wait
}

# json_upstream DIR PORT: a one-worker nginx on 127.0.0.1:PORT answering the 100-byte JSON
# body to everything (pid in DIR/up.pid); the upstream of the A/B and instruction scripts.
json_upstream() {
  local dir=$1 port=$2
  local body='{"id":12345,"name":"widget","price":9.99,"tags":["a","b"],"stock":true,"note":"benchmark-payload!!"}'
  cat > "$dir/up.conf" <<NGX
worker_processes 1;
pid $dir/up.pid;
error_log $dir/up.err;
events { worker_connections 4096; }
http { access_log off; server { listen 127.0.0.1:$port; keepalive_requests 1000000;
  location / { default_type application/json; return 200 '$body'; } } }
NGX
  nginx -c "$dir/up.conf" -p "$dir" -e "$dir/up.err"
}


# median NAME FIELD ROW...: the median of FIELD over the rows (from run) named NAME.
median() {
  local n=$1 f=$2; shift 2
  printf '%s\n' "$@" | awk -v n=$n -v f=$f '$1==n {print $f}' | sort -g |
    awk '{a[NR]=$1} END{print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'
}

# rows ROW...: rows from run under one header.
rows() {
  printf "%-20s %12s %10s %10s %11s  %s\n" target "req/s" p50 p99 "cpu µs/req" notes
  local r
  for r in "$@"; do
    set -- $r
    local name=$1 rps=$2 p50=$3 p99=$4 cpu=$5; shift 5
    printf "%-20s %12s %10s %10s %11s  %s\n" $name $rps $p50 $p99 $cpu "$*"
  done
}
