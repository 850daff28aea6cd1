#!/bin/sh
# The v2 parse benchmark, on demand: the hub, python3-hl7 and the npm
# parsers do the same work (parse each message with its full field index,
# read PID-3, PID-5 and every OBX-5) over one corpus, in the same run,
# single core, median of 5, timed in CPU time; prints MB/s, messages/s and
# the ratios against the targets.
#
#   tests/bench/v2_parse.sh CORPUS [NODE_MESSAGES] [PYTHON_MESSAGES]
#
# CORPUS: one message per line, segments joined by CR, e.g. made by
#   python3 ../shared/bench/gen_v2_corpus.py --count 100000 --seed 42 --out CORPUS
# The hub reads the whole corpus; the slower parsers read its first
# NODE_MESSAGES (default 20000) and PYTHON_MESSAGES (default 5000) messages,
# since MB/s does not depend on how many messages are read once the JIT is
# warm. npm parsers are installed into tests/bench/node/ (npm install there
# when node_modules is missing).
set -eu
if [ $# -lt 1 ]; then
    echo "usage: tests/bench/v2_parse.sh CORPUS [NODE_MESSAGES] [PYTHON_MESSAGES]" >&2
    exit 2
fi
corpus=$1
node_n=${2:-20000}
py_n=${3:-5000}
[ -f "$corpus" ] || { echo "v2_parse.sh: no corpus at $corpus" >&2; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=$root/build
cmake -S "$root" -B "$build" >/dev/null
cmake --build "$build" --target bench_v2_parse -j2 >/dev/null
if [ ! -d "$here/node/node_modules" ]; then
    (cd "$here/node" && npm install --no-audit --no-fund >/dev/null)
fi
out=$(mktemp)
trap 'rm -f "$out"' EXIT
echo "corpus: $corpus ($(wc -c <"$corpus") bytes)"
"$build/bench_v2_parse" "$corpus" --runs 5 | tee -a "$out"
/usr/bin/python3 "$here/v2_parse.py" "$corpus" "$py_n" 5 | tee -a "$out"
for p in simple-hl7 medplum; do
    node "$here/v2_parse.js" "$p" "$corpus" "$node_n" 5 | tee -a "$out"
done
# hl7-standard is two orders of magnitude slower: a small sample is enough.
node "$here/v2_parse.js" hl7-standard "$corpus" 500 5 | tee -a "$out"
python3 - "$out" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
by = {r["parser"]: r for r in rows}
hub = by["hub"]
npm = max((r for r in rows if r["parser"] not in ("hub", "python3-hl7")),
          key=lambda r: r["mb_s"])
py = by["python3-hl7"]
print()
print("%-14s %10s %12s %10s" % ("parser", "MB/s", "messages/s", "messages"))
for r in rows:
    print("%-14s %10.1f %12.0f %10d" % (r["parser"], r["mb_s"], r["msg_s"], r["messages"]))
print()
ok = True
def target(name, value, want):
    global ok
    good = value >= want
    ok = ok and good
    print("%-40s %10.1f  (target >= %g) %s" % (name, value, want, "ok" if good else "MISSED"))
target("hub MB/s", hub["mb_s"], 1000)
target("hub / fastest npm (%s)" % npm["parser"], hub["mb_s"] / npm["mb_s"], 25)
target("hub / python3-hl7", hub["mb_s"] / py["mb_s"], 300)
sys.exit(0 if ok else 1)
PY
