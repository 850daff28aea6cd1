#!/usr/bin/env bash
# MLLP ingest benchmark (on demand, never in CI).
#
#   tests/bench/mllp_ingest.sh [CORPUS] [RUNS]
#
# ACKed messages/s and p50/p99 ACK latency of `hub serve` with 1 and 8
# connections, durable commits on (and, for comparison, off), on the default
# channel (which maps every message into the record) and on a journal-only
# channel (validate, journal, ACK), over a
# gen_v2_corpus.py corpus (made with --count 100000 --seed 42 when CORPUS
# does not exist); in the same run the same load against Node MLLP servers
# that ACK without storing anything (@medplum/hl7, simple-hl7); ratios; and
# `hub serve` start-up time. Each figure is the median of RUNS runs
# (default 3), each against a fresh data directory. Server CPU per message
# (user + system of every server thread, from /proc) is printed beside the
# rates: on a shared machine it moves much less than messages/s; the load
# average is printed at the start and the end.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${BUILD:-$root/build}
corpus=${1:-/tmp/hub-bench/corpus.hl7}
runs=${2:-3}
n8=${N8:-100000}   # messages per 8-connection run
n1=${N1:-20000}    # messages per 1-connection run
load=$build/bench_mllp_load
hub=$build/hub
[ -x "$load" ] && [ -x "$hub" ] || { echo "build first: make build" >&2; exit 2; }

if [ ! -f "$corpus" ]; then
  gen="$root/../shared/bench/gen_v2_corpus.py"
  [ -f "$gen" ] || { echo "no corpus and no generator at $gen" >&2; exit 2; }
  mkdir -p "$(dirname "$corpus")"
  python3 "$gen" --count 100000 --seed 42 --out "$corpus" >/dev/null
fi

tmp=$(mktemp -d /tmp/hub-bench.XXXXXX)
# Servers are started inside $(...) subshells, so their pids go to a file.
pidfile=$tmp/pids
cleanup() {
  [ -f "$pidfile" ] && while read -r p; do kill "$p" 2>/dev/null || true; done <"$pidfile"
  rm -rf "$tmp"
}
trap cleanup EXIT

# $1 = durable true|false; $2 = map (default true): false serves one channel
# that journals and validates without mapping to FHIR (issue 4's own path;
# the default channel also maps every message into the record, issue 7's).
# Prints the MLLP port.
start_hub() {
  local d="$tmp/data.$RANDOM$RANDOM" conf=()
  if [ "${2:-true}" = false ]; then
    printf '{"channels":[{"name":"journal","host":"127.0.0.1","port":0,"map":false}]}\n' \
      >"$tmp/journal.json"
    conf=(--config "$tmp/journal.json")
  fi
  "$hub" serve --data "$d" --mllp-port 0 --http-port 0 --mllp-host 127.0.0.1 \
    --http-host 127.0.0.1 --log-level error --set "store.durable=$1" "${conf[@]}" \
    >"$tmp/hub.log" 2>&1 &
  echo $! >"$tmp/server.pid"
  echo $! >>"$pidfile"
  for _ in $(seq 500); do [ -f "$d/serve.json" ] && break; sleep 0.01; done
  python3 -c "import json,sys;print(json.load(open(sys.argv[1]))['mllp_port'])" "$d/serve.json"
}

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

# run_load PORT CONNS COUNT -> "rate p50 p99"
run_load() {
  "$load" "127.0.0.1:$1" "$corpus" -c "$2" -n "$3" | awk '
    /rate=/ { for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
              gsub("/s", "", v["rate"]); gsub("ms", "", v["p50"]); gsub("ms", "", v["p99"]);
              print v["rate"], v["p50"], v["p99"], v["acked"], v["messages"] }'
}

# The server's CPU time (user + system, all threads) in clock ticks.
server_ticks() { awk '{print $14 + $15}' "/proc/$(cat "$tmp/server.pid")/stat"; }

declare -A R
measure() { # name conns count starter...
  local name=$1 conns=$2 count=$3; shift 3
  local rates=() p50s=() p99s=() cpus=()
  for _ in $(seq "$runs"); do
    local port; port=$("$@")
    local t0; t0=$(server_ticks)
    local out; out=$(run_load "$port" "$conns" "$count")
    local t1; t1=$(server_ticks)
    read -r rate p50 p99 acked total <<<"$out"
    [ "$acked" = "$total" ] || echo "warning: $name: $acked of $total ACKed with AA" >&2
    rates+=("$rate"); p50s+=("$p50"); p99s+=("$p99")
    cpus+=("$(awk -v t=$((t1 - t0)) -v hz="$(getconf CLK_TCK)" -v n="$count" \
      'BEGIN { printf "%.1f", t / hz * 1e6 / n }')")
    stop_server
  done
  R[$name.rate]=$(printf '%s\n' "${rates[@]}" | median)
  R[$name.p50]=$(printf '%s\n' "${p50s[@]}" | median)
  R[$name.p99]=$(printf '%s\n' "${p99s[@]}" | median)
  R[$name.cpu]=$(printf '%s\n' "${cpus[@]}" | median)
  printf '%-28s %3d conn  %9.0f msg/s  p50 %7.3f ms  p99 %7.3f ms  server cpu %6.1f us/msg\n' \
    "$name" "$conns" "${R[$name.rate]}" "${R[$name.p50]}" "${R[$name.p99]}" "${R[$name.cpu]}"
}

stop_server() {
  [ -f "$tmp/server.pid" ] || return 0
  local p; p=$(cat "$tmp/server.pid")
  kill -TERM "$p" 2>/dev/null || true
  for _ in $(seq 500); do kill -0 "$p" 2>/dev/null || break; sleep 0.01; done
  rm -f "$tmp/server.pid"
}
hub_durable() { start_hub true; }
hub_fast() { start_hub false; }
journal_durable() { start_hub true false; }
journal_fast() { start_hub false false; }

node_dir="$root/tests/bench/node"
have_node=false
if command -v node >/dev/null && command -v npm >/dev/null; then
  if [ -d "$node_dir/node_modules" ] || (cd "$node_dir" && npm ci --silent >/dev/null 2>&1); then
    have_node=true
  fi
fi
start_node() { # $1 = medplum|simple
  local port=$((20000 + RANDOM % 20000))
  node "$node_dir/server.js" "$1" "$port" >"$tmp/node.log" 2>&1 &
  echo $! >"$tmp/server.pid"
  echo $! >>"$pidfile"
  for _ in $(seq 300); do grep -q listening "$tmp/node.log" 2>/dev/null && break; sleep 0.02; done
  echo "$port"
}
node_medplum() { start_node medplum; }
node_simple() { start_node simple; }

echo "corpus: $corpus ($(wc -l <"$corpus") messages); runs: $runs (median); cores: $(nproc);" \
  "load: $(cut -d' ' -f1-3 /proc/loadavg)"
measure "hub durable (1)" 1 "$n1" hub_durable
measure "hub durable (8)" 8 "$n8" hub_durable
measure "hub non-durable (1)" 1 "$n1" hub_fast
measure "hub non-durable (8)" 8 "$n8" hub_fast
measure "journal-only durable (1)" 1 "$n1" journal_durable
measure "journal-only durable (8)" 8 "$n8" journal_durable
measure "journal-only non-dur. (1)" 1 "$n1" journal_fast
measure "journal-only non-dur. (8)" 8 "$n8" journal_fast
if $have_node; then
  measure "node @medplum/hl7 (1)" 1 "$n1" node_medplum
  measure "node @medplum/hl7 (8)" 8 "$n8" node_medplum
  measure "node simple-hl7 (1)" 1 "$n1" node_simple
  measure "node simple-hl7 (8)" 8 "$n8" node_simple
else
  echo "node/npm not available: Node comparison skipped"
fi

# Start-up: from exec to "ready" (both listeners up, store open).
ups=()
for _ in $(seq 5); do
  d="$tmp/up.$RANDOM"
  "$hub" serve --data "$d" --mllp-port 0 --http-port 0 --log-format json >"$tmp/up.log" 2>&1 &
  p=$!
  for _ in $(seq 500); do [ -f "$d/serve.json" ] && break; sleep 0.01; done
  kill -TERM $p; wait $p || true
  # second start on the existing store: the usual case
  "$hub" serve --data "$d" --mllp-port 0 --http-port 0 --log-format json >"$tmp/up.log" 2>&1 &
  p=$!
  rm -f "$d/serve.json"
  for _ in $(seq 500); do [ -f "$d/serve.json" ] && break; sleep 0.01; done
  kill -TERM $p; wait $p || true
  ups+=("$(grep -o 'startup_ms=[0-9.]*' "$tmp/up.log" | tail -1 | cut -d= -f2)")
done
startup=$(printf '%s\n' "${ups[@]}" | median)

echo
echo "targets: 1 conn >= 4500/s durable; 8 conn >= 30000/s durable and >= 2x Node;"
echo "         non-durable >= 14000/s (1 conn), >= 80000/s (8 conn); ready < 20 ms"
printf 'hub durable, 1 conn:       %9.0f msg/s\n' "${R["hub durable (1).rate"]}"
printf 'hub durable, 8 conn:       %9.0f msg/s\n' "${R["hub durable (8).rate"]}"
printf 'hub non-durable, 1 conn:   %9.0f msg/s\n' "${R["hub non-durable (1).rate"]}"
printf 'hub non-durable, 8 conn:   %9.0f msg/s\n' "${R["hub non-durable (8).rate"]}"
for k in "durable (1)" "durable (8)" "non-dur. (1)" "non-dur. (8)"; do
  printf 'journal-only %-13s %9.0f msg/s\n' "$k:" "${R["journal-only $k.rate"]}"
done
if $have_node; then
  best=$(printf '%s\n' "${R["node @medplum/hl7 (8).rate"]}" "${R["node simple-hl7 (8).rate"]}" | sort -g | tail -1)
  printf 'best Node server, 8 conn:  %9.0f msg/s (stores nothing)\n' "$best"
  awk -v h="${R["hub durable (8).rate"]}" -v n="$best" 'BEGIN { printf "ratio hub durable / Node (8 conn): %.2fx\n", h / n }'
fi
printf 'hub serve ready in:        %9.2f ms (median of 5, existing store)\n' "$startup"
echo "load at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
