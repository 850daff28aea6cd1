#!/usr/bin/env bash
# Start-up time of `hub serve` (on demand, never in CI).
#
#   tests/bench/startup.sh [RUNS]        (default 5)
#
# Creates a store once (first start, not counted), then starts the hub RUNS
# times on that existing store, reads `startup_ms` from its ready line (both
# listeners up, store open, tables loaded), stops it with SIGTERM, and prints
# every run and the median, with the CPU time the process used up to ready
# (`cpu_ms`, all threads) and the load average: other work on the machine's
# cores stretches the wall time. Issue 4's target: median startup_ms under
# 20 ms. BUILD=dir picks another build (default ./build).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${BUILD:-$root/build}
runs=${1:-5}
[ -x "$build/hub" ] || { echo "build first: $build/hub" >&2; exit 2; }
tmp=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$tmp"' EXIT

# One start: prints "startup_ms cpu_ms", or fails after 10 s without a ready
# line (cpu_ms is 0 from builds that do not log it).
start_once() {
  local log="$tmp/log" ms= cpu=
  : > "$log"
  "$build/hub" serve --data "$tmp/data" --mllp-port 0 --http-port 0 \
    --mllp-host 127.0.0.1 --http-host 127.0.0.1 --log-level info --log-format text \
    2>"$log" &
  pid=$!
  for _ in $(seq 1000); do
    ms=$(sed -n 's/.* ready .*startup_ms=\([0-9.]*\).*/\1/p' "$log")
    [ -n "$ms" ] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.01
  done
  cpu=$(sed -n 's/.* ready .*cpu_ms=\([0-9.]*\).*/\1/p' "$log")
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  pid=
  [ -n "$ms" ] || { echo "no ready line:" >&2; cat "$log" >&2; return 1; }
  echo "$ms ${cpu:-0}"
}

median() { # NAME: the median of the numbers on stdin
  sort -n | awk -v what="$1" '{v[NR]=$1} END {
    m = NR % 2 ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2
    printf "median %s=%.2f (min %.2f, max %.2f, %d runs)\n", what, m, v[1], v[NR], NR }'
}

start_once >/dev/null # creates the store
walls=() cpus=()
for i in $(seq "$runs"); do
  read -r ms cpu < <(start_once)
  walls+=("$ms")
  cpus+=("$cpu")
  echo "run $i: startup_ms=$ms cpu_ms=$cpu"
done
printf '%s\n' "${walls[@]}" | median startup_ms
printf '%s\n' "${cpus[@]}" | median cpu_ms
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
