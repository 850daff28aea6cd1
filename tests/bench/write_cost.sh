#!/usr/bin/env bash
# What one mapped v2 message costs the store (on demand, never in CI).
#
#   tests/bench/write_cost.sh KIND [COUNT] [CORPUS]
#
# KIND is ADT, ORU or all (the corpus' messages of that type). Starts
# `hub serve` (mapping on, durable commits) on a fresh data directory,
# sends COUNT messages (default 2000) over 8 MLLP connections, and prints
# per message: the server's CPU time (user+sys, from /proc/PID/stat), the
# bytes it wrote (/proc/PID/io write_bytes: WAL and checkpoints), and,
# after a clean stop, the database's pages, rows and versions per table.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${BUILD:-$root/build}
kind=${1:-all}
count=${2:-2000}
corpus=${3:-/tmp/hub-bench/corpus.hl7}
[ -x "$build/hub" ] && [ -x "$build/bench_mllp_load" ] || { echo "build first" >&2; exit 2; }
command -v sqlite3 >/dev/null || { echo "needs the sqlite3 CLI" >&2; exit 2; }
if [ ! -f "$corpus" ]; then
  mkdir -p "$(dirname "$corpus")"
  python3 "$root/../shared/bench/gen_v2_corpus.py" --count 100000 --seed 42 --out "$corpus" >/dev/null
fi
tmp=$(mktemp -d /tmp/hub-wcost.XXXXXX)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
case $kind in
  all) kind= ;;
esac
# MSH-9 is the ninth |-field of the line (MSH-1 is the separator itself)
awk -F'|' -v k="$kind" -v max="$count" '$1 == "MSH" && index($9, k) == 1 { print; if (++n == max) exit }' \
  "$corpus" >"$tmp/in.hl7"
n=$(wc -l <"$tmp/in.hl7")
d=$tmp/data
echo '{"channels": [{"name": "bench", "port": 0, "map": true}]}' >"$tmp/cfg.json"
"$build/hub" serve --config "$tmp/cfg.json" --data "$d" --http-port 0 --http-host 127.0.0.1 \
  --log-level error --set store.durable=true ${HUB_SET:+--set "$HUB_SET"} 2>"$tmp/log" &
pid=$!
for _ in $(seq 300); do [ -f "$d/serve.json" ] && break; sleep 0.02; done
port=$(python3 -c "import json,sys;print(json.load(open(sys.argv[1]))['mllp_port'])" "$d/serve.json")
cpu() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
wb() { awk '/^write_bytes/ {print $2}' "/proc/$pid/io"; }
c0=$(cpu); w0=$(wb)
out=$("$build/bench_mllp_load" "127.0.0.1:$port" "$tmp/in.hl7" -c 8 -n "$n" | tail -1)
c1=$(cpu); w1=$(wb)
hport=$(python3 -c "import json,sys;print(json.load(open(sys.argv[1]))['http_port'])" "$d/serve.json")
groups=$(curl -s "http://127.0.0.1:$hport/metrics" | awk '/^hub_store_commits_total/ {c=$2} /^hub_store_jobs_total/ {j=$2} END {printf "%d commits, %.1f jobs/commit", c, c ? j/c : 0}')
kill -TERM "$pid"; wait "$pid" || true; pid=
[ -n "${KEEP:-}" ] && cp "$d/hub.db" "$KEEP"
tck=$(getconf CLK_TCK)
echo "kind=${kind:-all} messages=$n load=$(cut -d' ' -f1 /proc/loadavg)"
echo "  $out"
awk -v c="$((c1 - c0))" -v t="$tck" -v w="$((w1 - w0))" -v n="$n" \
  'BEGIN {printf "  server cpu %.3f ms/msg (user+sys), written %.1f KiB/msg\n", 1000 * c / t / n, w / 1024 / n}'
echo "  $groups"
db=$d/hub.db
echo "  file $(($(stat -c %s "$db") / 1024)) KiB, $(sqlite3 "$db" 'PRAGMA page_count') pages of $(sqlite3 "$db" 'PRAGMA page_size') B"
for t in history resources ix_tok ix_date ix_num res_tok res_date res_num; do
  sqlite3 "$db" "SELECT '  $t rows/msg', printf('%.2f', count(*) * 1.0 / $n) FROM $t" 2>/dev/null | tr '|' ' ' || true
done
sqlite3 "$db" "SELECT '  versions/msg by type:', group_concat(type || '=' || printf('%.2f', c * 1.0 / $n), ' ') FROM (SELECT type, count(*) c FROM history GROUP BY type)" | tr '|' ' '
sqlite3 "$db" "SELECT '  rewrites (version>1) by type:', group_concat(type || '=' || c, ' ') FROM (SELECT type, count(*) c FROM history WHERE version > 1 GROUP BY type)" | tr '|' ' '
