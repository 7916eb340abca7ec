#!/usr/bin/env bash
# The race (bench/race.py) on one H100 against PyJuice 2.6.3, in two calls of
# <= 9 minutes each (the 2026-11-24 s5 runs took that split):
#   PART=1 bash bench/gpu/race.sh     # hclt32, hclt128, hclt512, bsp (4 sparsities)
#   PART=2 bash bench/gpu/race.sh     # pd32, pd128, rat64, hmm256, hmm1024
# Rerun after any change to the sum kernels (backends/triton/sum_*.py, dots.py,
# em_kernels.py): the published race figures must come from today's kernels.
# Results: $OUT/race-<gpu>-<date>-<TAG>.{md,json} and race.log.
source bench/gpu/common.sh
PART=${PART:-1}
TAG=${TAG:-part$PART}
case "$PART" in
    1) CASES=hclt32,hclt128,hclt512,bsp; LIMIT=110 ;;
    2) CASES=pd32,pd128,rat64,hmm256,hmm1024; LIMIT=80 ;;
    *) echo "PART must be 1 or 2, not $PART" >&2; exit 2 ;;
esac
timeout --signal=INT 540 python3 -u bench/race.py --cases "$CASES" --samples 60000 --repeats 3 \
    --time-limit "$LIMIT" --out-dir "$OUT" --tag "$TAG" 2>&1 | tee "$OUT/race.log"
exit "${PIPESTATUS[0]}"
