#!/bin/sh
# Builds the libFuzzer targets with clang, ASan and UBSan into build-fuzz/
# and runs one of them for a given time, printing the execution count.
#   tests/fuzz/run.sh TARGET SECONDS [extra libFuzzer flags...]
#   tests/fuzz/run.sh fuzz_v2 600
# Crashers land in tests/fuzz/artifacts/TARGET/ (git-ignored); copy a
# minimised one into tests/fuzz/corpus/TARGET/ so the normal test run
# replays it. New inputs found go to build-fuzz/corpus-TARGET/, not to the
# committed seeds.
set -eu
if [ $# -lt 2 ]; then
    echo "usage: tests/fuzz/run.sh TARGET SECONDS [libFuzzer flags...]" >&2
    exit 2
fi
target=$1
secs=$2
shift 2
case $secs in
    ''|*[!0-9]*) echo "run.sh: SECONDS must be a number" >&2; exit 2 ;;
esac
root=$(cd "$(dirname "$0")/../.." && pwd)
seeds=$root/tests/fuzz/corpus/$target
if [ ! -f "$root/tests/fuzz/$target.c" ] || [ ! -d "$seeds" ]; then
    echo "run.sh: no target tests/fuzz/$target.c with seeds in tests/fuzz/corpus/$target" >&2
    exit 2
fi
build=$root/build-fuzz
cmake -S "$root" -B "$build" -DCMAKE_C_COMPILER=clang -DHUB_FUZZ=ON \
    -DHUB_SANITIZE=address,undefined -DHUB_TESTS=OFF -DHUB_BENCH=OFF \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" --target "$target" -j2 >/dev/null
work=$build/corpus-$target
art=$root/tests/fuzz/artifacts/$target
mkdir -p "$work" "$art"
log=$build/$target.log
echo "fuzzing $target for $secs s (log: $log)"
dict=
[ -f "$root/tests/fuzz/$target.dict" ] && dict="-dict=$root/tests/fuzz/$target.dict"
set +e
"$build/$target" $dict -max_total_time="$secs" -print_final_stats=1 \
    -artifact_prefix="$art/" -max_len=8192 "$@" "$work" "$seeds" >"$log" 2>&1
rc=$?
set -e
execs=$(grep -E '^stat::number_of_executed_units' "$log" | awk '{print $2}')
echo "$target: exit $rc, executions: ${execs:-unknown}"
if [ $rc -ne 0 ]; then
    grep -E 'ERROR|SUMMARY|runtime error|deadly' "$log" | head -20
    echo "artifacts in $art"
fi
exit $rc
