# Shared by the benchmark scripts (sourced): wrk runs that print one result row.
# Needs CONN, DUR and WORK set by the caller.

# run NAME URL [extra wrk args]: a 2 s warm-up, then DUR seconds; prints
# "NAME req/s p50 p99 notes" (notes: non-2xx responses and socket errors).
run() { # name url [extra wrk args]
  local name=$1 url=$2; shift 2
  wrk -t1 -c$CONN -d2s "$@" $url >/dev/null 2>&1 # warm-up
  wrk -t1 -c$CONN -d${DUR}s --latency "$@" $url > $WORK/$name.txt 2>&1
  local rps p50 p99 errs
  rps=$(awk '/Requests\/sec/ {print $2}' $WORK/$name.txt)
  p50=$(awk '$1=="50%" {print $2}' $WORK/$name.txt)
  p99=$(awk '$1=="99%" {print $2}' $WORK/$name.txt)
  errs=$(awk '/Non-2xx|Socket errors/' $WORK/$name.txt | tr '\n' ' ')
  echo "$name $rps $p50 $p99 $errs"
}
