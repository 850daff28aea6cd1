#!/usr/bin/env bash
# Start-up time of `hub serve` (on demand, never in CI).
#
#   tests/bench/startup.sh [RUNS]        (default 5)
#
# Creates a store once (first start, not counted), then starts the hub RUNS
# times on that existing store, reads `startup_ms` from its ready line (both
# listeners up, store open, tables loaded), stops it with SIGTERM, and prints
# every run and the median. Issue 4's target: median under 20 ms.
# BUILD=dir picks another build (default ./build).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${BUILD:-$root/build}
runs=${1:-5}
[ -x "$build/hub" ] || { echo "build first: $build/hub" >&2; exit 2; }
tmp=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$tmp"' EXIT

# One start: prints startup_ms, or fails after 10 s without a ready line.
start_once() {
  local log="$tmp/log"
  : > "$log"
  "$build/hub" serve --data "$tmp/data" --mllp-port 0 --http-port 0 \
    --mllp-host 127.0.0.1 --http-host 127.0.0.1 --log-level info --log-format text \
    2>"$log" &
  pid=$!
  local ms=
  for _ in $(seq 1000); do
    ms=$(sed -n 's/.* ready .*startup_ms=\([0-9.]*\).*/\1/p' "$log")
    [ -n "$ms" ] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.01
  done
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  pid=
  [ -n "$ms" ] || { echo "no ready line:" >&2; cat "$log" >&2; return 1; }
  echo "$ms"
}

start_once >/dev/null # creates the store
all=()
for i in $(seq "$runs"); do
  ms=$(start_once)
  all+=("$ms")
  echo "run $i: startup_ms=$ms"
done
printf '%s\n' "${all[@]}" | sort -n | awk '{v[NR]=$1} END {
  m = NR % 2 ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2
  printf "median startup_ms=%.2f (min %.2f, max %.2f, %d runs)\n", m, v[1], v[NR], NR }'
