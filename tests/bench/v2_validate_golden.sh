#!/bin/sh
# Golden findings and ACKs of the v2 validator, to compare before and after
# a change: the first 20000 messages of the generated corpus and every file
# of /work/shared/corpus/hl7v2, default policy and the example site profile.
#
#   tests/bench/v2_validate_golden.sh BUILD_DIR [CORPUS] > golden.txt
#   cmp golden-before.txt golden-after.txt
set -eu
build=${1:?usage: v2_validate_golden.sh BUILD_DIR [CORPUS]}
corpus=${2:-/tmp/bench/corpus.hl7}
files=$(find /work/shared/corpus/hl7v2 -type f ! -name INDEX.tsv | LC_ALL=C sort)
# shellcheck disable=SC2086
exec "$build/bench_v2_golden" --corpus "$corpus" --messages 20000 $files
