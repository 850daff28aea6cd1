#!/usr/bin/env bash
# CPU time a server spends per request (user + system, from /proc), over
# one wrk run: a figure that a busy machine distorts much less than
# requests/s. On demand (needs wrk).
#
#   tests/bench/cpu_per_req.sh PID WRK-ARGS...
#   e.g. tests/bench/cpu_per_req.sh $(pgrep -n hub) -t2 -c32 -d5s \
#          -s tests/bench/wrk/fhir_read.lua http://127.0.0.1:8080 -- /fhir/Patient/ID
set -euo pipefail
pid=$1; shift
cpu() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
t0=$(cpu)
out=$(wrk "$@" | grep '^RESULT')
t1=$(cpu)
n=$(sed -n 's/.*requests=\([0-9]*\).*/\1/p' <<<"$out")
awk -v a="$t0" -v b="$t1" -v n="$n" -v hz="$(getconf CLK_TCK)" -v o="$out" 'BEGIN {
  us = (b - a) / hz * 1e6 / n
  printf "%s cpu_us_per_req=%.1f (all of 2 cores: %.0f req/s)\n", o, us, 2e6 / us }'
