#!/usr/bin/env bash
# Issue #18's prune-grow figure with the schedule that took HCLT-128 to 1.176 bpd
# (bench/results/mnist_recipe-h100-2026-12-06.md), about 7 minutes: HCLT-128 on all 60k
# training images (SparsePC phases without the full-batch tail), then PG_ROUNDS (1) rounds of
# prune to 0.25 of the sum edges by flows + grow x2 (noise PG_NOISE, 0.3) with their own
# small-step phases, PG_ROUND_MINUTES (3.5) of EM each: one long round, not two short ones, and
# noise 0.3, not 0.1 (bench/results/prune_grow-cpu-2026-12-07.md). The fair baseline is the HCLT
# trained PG_MINUTES + the round minutes. PG_MODES=hclt,prune-grow,pyjuice adds PyJuice on the
# same HCLT with the same phases (about 2 more minutes: the 2026-12-07 run lost it to the 540 s timeout).
# PG_HOLD_OUT (0.05, as the sparse-PC paper): that fraction of the 60k held out; the table's
# 'test bpd at best valid' is the figure to compare (session 16's 1.1541 was the test curve's
# minimum, an epoch picked on test; its final 1.1605). PG_HOLD_OUT=0: all 60k, no valid.
# Needs PCC_DATA_DIR with mnist/ (carry shared). Writes $OUT/mnist.{json,md} and mnist_pg.log.
#   PCC_DATA_DIR=$PWD/shared/data bash bench/gpu/mnist_pg.sh
source bench/gpu/common.sh
: "${PCC_DATA_DIR:?set PCC_DATA_DIR to the folder with mnist/}"
timeout --signal=INT "${PG_TIMEOUT:-540}" python3 -u bench/mnist.py --modes "${PG_MODES:-hclt,prune-grow}" \
    --minutes "${PG_MINUTES:-1.5}" --hclt-latents 128 --train-on train+valid $( [ "${PG_HOLD_OUT:-0.05}" != 0 ] && echo --hold-out "${PG_HOLD_OUT:-0.05}") --pseudocount 0.005 \
    --phases 0.9:0.1:80,0.1:0.01:80 \
    --pg-rounds "${PG_ROUNDS:-1}" --pg-minutes "${PG_ROUND_MINUTES:-3.5}" --pg-keep 0.25 --pg-factor 2 --pg-noise "${PG_NOISE:-0.3}" --pg-phases 0.3:0.05:40,0.05:0.005:50 \
    --out "$OUT" 2>&1 | tee "$OUT/mnist_pg.log"
status=${PIPESTATUS[0]}
[ -f "$OUT/mnist.md" ] && cat "$OUT/mnist.md"
exit "$status"
