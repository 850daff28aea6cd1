#!/usr/bin/env bash
# FHIR REST benchmark (on demand, never in CI; needs wrk: `apt install wrk`).
#
#   tests/bench/fhir_rest.sh [RUNS] [SECONDS]
#
# HUB_SERVE_FLAGS adds `hub serve` options (e.g. "--set mpi.enabled=false":
# creates without the patient index, which is on by default).
#
# Requests/s and p50/p99 latency (wrk) of `hub serve`'s FHIR API: read by id
# at 1 and 32 connections, create at 32 connections (durable commits),
# update with If-Match at 32 connections (each connection its own
# resource); in the same run the same requests against an in-memory Node
# FHIR server (@medplum/fhir-router's MemoryRepository behind node:http,
# tests/bench/node/fhir_server.js); ratios. Each figure is the median of
# RUNS runs (default 3) of SECONDS seconds (default 10), each against a
# fresh server.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${BUILD:-$root/build}
runs=${1:-3}
secs=${2:-10}
hub=$build/hub
lua=$root/tests/bench/wrk
[ -x "$hub" ] || { echo "build first: make build" >&2; exit 2; }
command -v wrk >/dev/null || { echo "wrk is missing: apt install wrk" >&2; exit 2; }

tmp=$(mktemp -d /tmp/hub-fhir-bench.XXXXXX)
pidfile=$tmp/pids
cleanup() {
  [ -f "$pidfile" ] && while read -r p; do kill "$p" 2>/dev/null || true; done <"$pidfile"
  rm -rf "$tmp"
}
trap cleanup EXIT

start_hub() { # prints the HTTP port
  local d="$tmp/data.$RANDOM$RANDOM"
  "$hub" serve --data "$d" --mllp-port 0 --http-port 0 --mllp-host 127.0.0.1 \
    --http-host 127.0.0.1 --log-level error --set store.durable=true \
    --set "http.threads=${HUB_HTTP_THREADS:-2}" --set http.rate_limit=0 ${HUB_SERVE_FLAGS:-} \
    >"$tmp/hub.log" 2>&1 &
  echo $! >"$tmp/server.pid"
  echo $! >>"$pidfile"
  for _ in $(seq 1000); do [ -f "$d/serve.json" ] && break; sleep 0.01; done
  python3 -c "import json,sys;print(json.load(open(sys.argv[1]))['http_port'])" "$d/serve.json"
}

node_dir="$root/tests/bench/node"
have_node=false
if command -v node >/dev/null && command -v npm >/dev/null; then
  if [ -d "$node_dir/node_modules/@medplum/fhir-router" ] ||
     (cd "$node_dir" && npm ci --silent >/dev/null 2>&1); then
    have_node=true
  fi
fi
start_node() {
  local port=$((20000 + RANDOM % 20000))
  node "$node_dir/fhir_server.js" "$port" >"$tmp/node.log" 2>&1 &
  echo $! >"$tmp/server.pid"
  echo $! >>"$pidfile"
  for _ in $(seq 1000); do grep -q listening "$tmp/node.log" 2>/dev/null && break; sleep 0.02; done
  echo "$port"
}

stop_server() {
  [ -f "$tmp/server.pid" ] || return 0
  local p; p=$(cat "$tmp/server.pid")
  kill -TERM "$p" 2>/dev/null || true
  for _ in $(seq 500); do kill -0 "$p" 2>/dev/null || break; sleep 0.01; done
  rm -f "$tmp/server.pid"
}

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

# Data every scenario needs: one Patient to read, 32 to update.
seed() { # port
  local base="http://127.0.0.1:$1/fhir" id
  id=$(curl -sf -X POST "$base/Patient" -H 'Content-Type: application/fhir+json' \
    -d '{"resourceType":"Patient","name":[{"family":"Benchmark","given":["Read"]}],"gender":"other","birthDate":"1970-01-01","identifier":[{"system":"urn:bench","value":"r-1"}]}' |
    python3 -c 'import json,sys;print(json.load(sys.stdin)["id"])')
  for n in $(seq 32); do
    curl -sf -o /dev/null -X PUT "$base/Patient/bench-$n" -H 'Content-Type: application/fhir+json' \
      -d "{\"resourceType\":\"Patient\",\"id\":\"bench-$n\",\"active\":true}"
  done
  echo "$id"
}

# scenario -> wrk arguments
run_wrk() { # port scenario read_id
  local url="http://127.0.0.1:$1"
  case "$2" in
    read1) wrk -t1 -c1 -d"${secs}s" -s "$lua/fhir_read.lua" "$url" -- "/fhir/Patient/$3" ;;
    read32) wrk -t2 -c32 -d"${secs}s" -s "$lua/fhir_read.lua" "$url" -- "/fhir/Patient/$3" ;;
    create32) wrk -t2 -c32 -d"${secs}s" -s "$lua/fhir_create.lua" "$url" -- "/fhir/Patient" ;;
    update32) wrk -t32 -c32 -d"${secs}s" -s "$lua/fhir_update.lua" "$url" -- "/fhir/Patient/bench-" ;;
  esac | grep '^RESULT'
}

declare -A R
scenarios="read1 read32 create32 update32"
measure() { # server-name starter
  local name=$1 starter=$2
  for s in $scenarios; do
    local rates=() p50s=() p99s=() errs=0
    for _ in $(seq "$runs"); do
      local port id out
      port=$("$starter")
      id=$(seed "$port")
      out=$(run_wrk "$port" "$s" "$id")
      stop_server
      local rps p50 p99 e
      rps=$(sed -n 's/.*rps=\([0-9.]*\).*/\1/p' <<<"$out")
      p50=$(sed -n 's/.*p50=\([0-9.]*\).*/\1/p' <<<"$out")
      p99=$(sed -n 's/.*p99=\([0-9.]*\).*/\1/p' <<<"$out")
      e=$(sed -n 's/.*errors=\([0-9]*\).*/\1/p' <<<"$out")
      rates+=("$rps"); p50s+=("$p50"); p99s+=("$p99"); errs=$((errs + e))
    done
    R[$name.$s.rps]=$(printf '%s\n' "${rates[@]}" | median)
    R[$name.$s.p50]=$(printf '%s\n' "${p50s[@]}" | median)
    R[$name.$s.p99]=$(printf '%s\n' "${p99s[@]}" | median)
    printf '%-8s %-9s %10.0f req/s  p50 %7.3f ms  p99 %7.3f ms  non-2xx/errors %d\n' "$name" "$s" \
      "${R[$name.$s.rps]}" "${R[$name.$s.p50]}" "${R[$name.$s.p99]}" "$errs"
  done
}

echo "runs: $runs x ${secs}s (median); cores: $(nproc); wrk $(wrk -v 2>&1 | head -1 | awk '{print $2}')"
measure hub start_hub
if $have_node; then
  measure medplum start_node
else
  echo "node/npm not available: Node comparison skipped"
fi

echo
echo "targets: read >= 100000/s at 32 conn (>= 3x Node); create >= 10000/s durable; p99 < 10 ms"
if $have_node; then
  for s in $scenarios; do
    awk -v s="$s" -v h="${R[hub.$s.rps]}" -v n="${R[medplum.$s.rps]}" \
      'BEGIN { printf "ratio hub / medplum %-9s %6.2fx\n", s, h / n }'
  done
fi
