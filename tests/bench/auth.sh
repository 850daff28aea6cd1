#!/usr/bin/env bash
# Cost of security (on demand, never in CI; needs wrk and node with
# tests/e2e/node's npm packages):
#
#   tests/bench/auth.sh [RUNS] [SECONDS]
#
# Reads by id (32 connections) and creates (32 connections, durable) per
# second against `hub serve` with auth and audit OFF (no token, no audit
# rows) and ON (--auth: every request carries a Bearer token from
# /auth/token, checked; every read queued for the audit trail and written
# in its batch's row for this client and address, every create audited in
# its transaction), in one run: the two servers alternate, each
# figure is the median of RUNS runs (default 3) of SECONDS seconds (default
# 5), each against a fresh server. Target: ON at most 15% slower.
# Also the server's CPU time per request (user + system from /proc, as
# tests/bench/cpu_per_req.sh), which a busy shared machine distorts much
# less than requests/s.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${BUILD:-$root/build}
runs=${1:-3}
secs=${2:-5}
hub=$build/hub
lua=$root/tests/bench/wrk/auth_req.lua
node_dir=$root/tests/e2e/node
[ -x "$hub" ] || { echo "build first: make build" >&2; exit 2; }
command -v wrk >/dev/null || { echo "wrk is missing: apt install wrk" >&2; exit 2; }
[ -d "$node_dir/node_modules/jose" ] || (cd "$node_dir" && npm ci --silent) || {
  echo "npm jose is missing (npm ci in tests/e2e/node)" >&2; exit 2; }

tmp=$(mktemp -d /tmp/hub-auth-bench.XXXXXX)
cleanup() { [ -f "$tmp/pid" ] && kill "$(cat "$tmp/pid")" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
node "$node_dir/smart_client.mjs" keys ES384 "$tmp"

start_hub() { # on|off -> prints "port token"
  local d="$tmp/data.$RANDOM$RANDOM" flags
  if [ "$1" = on ]; then flags=(--auth); else flags=(--set audit=false); fi
  "$hub" serve --data "$d" --mllp-port 0 --http-port 0 --mllp-host 127.0.0.1 \
    --http-host 127.0.0.1 --log-level error --set store.durable=true \
    --set "http.threads=${HUB_HTTP_THREADS:-2}" --set http.rate_limit=0 "${flags[@]}" \
    >"$tmp/hub.log" 2>&1 &
  echo $! >"$tmp/pid"
  for _ in $(seq 1000); do [ -f "$d/serve.json" ] && break; sleep 0.01; done
  local port tok=-
  port=$(python3 -c "import json,sys;print(json.load(open(sys.argv[1]))['http_port'])" "$d/serve.json")
  if [ "$1" = on ]; then
    "$hub" clients add bench --jwks "$tmp/jwks.json" --scope 'system/*.cruds' --data "$d" >/dev/null
    local jwt
    jwt=$(node "$node_dir/smart_client.mjs" assert "$tmp" bench "http://127.0.0.1:$port/auth/token")
    tok=$(curl -sf "http://127.0.0.1:$port/auth/token" -d grant_type=client_credentials \
      -d client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer \
      -d "client_assertion=$jwt" --data-urlencode 'scope=system/*.cruds' |
      python3 -c 'import json,sys;print(json.load(sys.stdin)["access_token"])')
  fi
  echo "$port $tok"
}
stop_hub() {
  local p; p=$(cat "$tmp/pid"); kill -TERM "$p" 2>/dev/null || true
  for _ in $(seq 500); do kill -0 "$p" 2>/dev/null || break; sleep 0.01; done
  rm -f "$tmp/pid"
}
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

declare -A V C
for s in read create; do
  for mode in off on; do V[$mode.$s]=""; C[$mode.$s]=""; done
  for _ in $(seq "$runs"); do
    for mode in off on; do
      read -r port tok < <(start_hub "$mode")
      auth=(); [ "$tok" != - ] && auth=(-H "Authorization: Bearer $tok")
      id=$(curl -sf -X POST "http://127.0.0.1:$port/fhir/Patient" "${auth[@]}" \
        -H 'Content-Type: application/fhir+json' \
        -d '{"resourceType":"Patient","name":[{"family":"Benchmark"}],"gender":"other"}' |
        python3 -c 'import json,sys;print(json.load(sys.stdin)["id"])')
      path=/fhir/Patient; [ $s = read ] && path=/fhir/Patient/$id
      pid=$(cat "$tmp/pid")
      c0=$(awk '{print $14 + $15}' "/proc/$pid/stat")
      out=$(wrk -t2 -c32 -d"${secs}s" -s "$lua" "http://127.0.0.1:$port" -- "$s" "$path" "$tok" | grep '^RESULT')
      c1=$(awk '{print $14 + $15}' "/proc/$pid/stat")
      stop_hub
      nreq=$(sed -n 's/.*requests=\([0-9]*\).*/\1/p' <<<"$out")
      C[$mode.$s]+="$(awk -v a="$c0" -v b="$c1" -v n="$nreq" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.2f", (b - a) / hz * 1e6 / n }') "
      errs=$(sed -n 's/.*errors=\([0-9]*\).*/\1/p' <<<"$out")
      [ "$errs" = 0 ] || echo "warning: $mode $s had $errs non-2xx/errors" >&2
      V[$mode.$s]+="$(sed -n 's/.*rps=\([0-9.]*\).*/\1/p' <<<"$out") "
    done
  done
done
echo "runs: $runs x ${secs}s (median); cores: $(nproc); load: $(cut -d' ' -f1-3 /proc/loadavg)"
for s in read create; do
  off=$(tr ' ' '\n' <<<"${V[off.$s]}" | grep . | median)
  on=$(tr ' ' '\n' <<<"${V[on.$s]}" | grep . | median)
  awk -v s="$s" -v a="$off" -v b="$on" -v ra="${V[off.$s]}" -v rb="${V[on.$s]}" 'BEGIN {
    printf "%-7s off %9.0f/s  on %9.0f/s  on/off %.3f (%+.1f%%)   runs off: %s on: %s\n",
      s, a, b, b / a, (b / a - 1) * 100, ra, rb }'
done
for s in read create; do
  off=$(tr ' ' '\n' <<<"${C[off.$s]}" | grep . | median)
  on=$(tr ' ' '\n' <<<"${C[on.$s]}" | grep . | median)
  awk -v s="$s" -v a="$off" -v b="$on" 'BEGIN {
    printf "%-7s server cpu per request: off %.1f us  on %.1f us  on/off %.3f\n", s, a, b, b / a }'
done
echo "target: on at most 15% slower than off"
