#!/usr/bin/env bash
# Mapping benchmarks (on demand, never in CI).
#
#   tests/bench/map_ingest.sh [CORPUS] [COUNT]
#
# 1. bench_map: conversions/s on one core (parse + map, the Bundle as JSON
#    text and as the jansson tree the record applies) over a
#    gen_v2_corpus.py corpus (--count 100000 --seed 42 when CORPUS does not
#    exist);
# 2. end-to-end MLLP ingest to committed record, 8 connections, durable
#    commits, over the corpus' ADT messages (the ones with tables on this
#    branch), with mapping on and, for comparison, off (channel "map": false).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${BUILD:-$root/build}
corpus=${1:-/tmp/hub-bench/corpus.hl7}
count=${2:-20000}
[ -x "$build/bench_map" ] && [ -x "$build/bench_mllp_load" ] || { echo "build first" >&2; exit 2; }
if [ ! -f "$corpus" ]; then
  mkdir -p "$(dirname "$corpus")"
  python3 "$root/../shared/bench/gen_v2_corpus.py" --count 100000 --seed 42 --out "$corpus" >/dev/null
fi
"$build/bench_map" "$corpus" --runs 3

tmp=$(mktemp -d)
trap 'for p in $tmp/*/serve.json; do [ -f "$p" ] && kill "$(python3 -c "import json,sys;print(json.load(open(sys.argv[1]))[\"pid\"])" "$p")" 2>/dev/null || true; done; rm -rf "$tmp"' EXIT
grep -a '^MSH|[^|]*|[^|]*|[^|]*|[^|]*|[^|]*|[^|]*|[^|]*|ADT' "$corpus" | head -n "$count" > "$tmp/adt.hl7"
for map in true false; do
  d="$tmp/data-$map"
  mkdir -p "$d"
  echo "{\"channels\": [{\"name\": \"bench\", \"port\": 0, \"map\": $map}]}" > "$tmp/cfg-$map.json"
  "$build/hub" serve --config "$tmp/cfg-$map.json" --data "$d" --http-port 0 --http-host 127.0.0.1 \
    --log-level error --set store.durable=true 2>"$tmp/log-$map" &
  for _ in $(seq 100); do [ -f "$d/serve.json" ] && break; sleep 0.1; done
  port=$(python3 -c "import json,sys;print(json.load(open(sys.argv[1]))['mllp_port'])" "$d/serve.json")
  printf 'map=%-5s ' "$map"
  "$build/bench_mllp_load" "127.0.0.1:$port" "$tmp/adt.hl7" -c 8 -n "$count" | tail -1
  kill "$(python3 -c "import json,sys;print(json.load(open(sys.argv[1]))['pid'])" "$d/serve.json")"
  wait || true
done
