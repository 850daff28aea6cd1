#!/usr/bin/env bash
# The patient index over MLLP (on demand, never in CI).
#
#   tests/bench/mpi.sh [N] [SEED] [CONNECTIONS]
#
# Generates N people seen by 3 source systems (bench_mpi gen: ADT^A04 with
# typos, nicknames, initials, upper case, date swaps, moves, married names,
# twins, same-name strangers), starts `hub serve` with the index on, sends
# them with `hub send`, and scores the golden links against the truth
# (precision, recall, F1) with patients linked per second (wall) and the
# hub's CPU seconds.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${BUILD:-$root/build}
n=${1:-10000}
seed=${2:-1}
conns=${3:-4}
[ -x "$build/bench_mpi" ] && [ -x "$build/hub" ] || { echo "build hub and bench_mpi first" >&2; exit 2; }
tmp=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; [ -n "${KEEP:-}" ] && echo "kept $tmp" || rm -rf "$tmp"' EXIT
"$build/bench_mpi" gen "$n" "$seed" "$tmp/adt.hl7" "$tmp/truth.tsv"
# MPI=false: the same ingest without the index (its cost by difference)
echo "{\"channels\": [{\"name\": \"bench\", \"port\": 0, \"validate\": false}]," \
  "\"mpi\": {\"enabled\": ${MPI:-true}}}" > "$tmp/hub.json"
"$build/hub" serve --config "$tmp/hub.json" --data "$tmp/data" --http-port 0 \
  --http-host 127.0.0.1 --log-level error 2>"$tmp/log" &
pid=$!
for _ in $(seq 100); do [ -f "$tmp/data/serve.json" ] && break; sleep 0.1; done
port=$(python3 -c "import json,sys;print(json.load(open(sys.argv[1]))['mllp_port'])" "$tmp/data/serve.json")
msgs=$(wc -l < "$tmp/adt.hl7")
t0=$(date +%s.%N)
"$build/hub" send "127.0.0.1:$port" "$tmp/adt.hl7" --connections "$conns" > "$tmp/send.log" || {
  echo "hub send failed:"; tail -5 "$tmp/send.log"; exit 1; }
t1=$(date +%s.%N)
cpu=$(awk '{print ($14 + $15) / 100}' "/proc/$pid/stat")
kill "$pid"; wait "$pid" || true; pid=
echo "messages=$msgs connections=$conns wall_s=$(echo "$t1 - $t0" | bc) hub_cpu_s=$cpu" \
  "patients_per_s=$(echo "$msgs / ($t1 - $t0)" | bc)"
db=$(ls "$tmp"/data/*.db | head -1)
[ "${MPI:-true}" = true ] && "$build/bench_mpi" eval "$db" "$tmp/truth.tsv"
exit 0
