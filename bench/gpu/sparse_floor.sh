#!/usr/bin/env bash
# Pruned HCLT-128 toward its floor (issue #18 point 4). Branch sparseprice: small
# block-sparse groups priced against the DENSE store and the row tiles (CPU model:
# bench/results/sparse_price-cpu-2026-12-07.md). Times the default code against
# 'unpriced' (bench/step_model.py `variant`: those groups stored block-sparse unpriced,
# main before sparseprice; compiled under it; not timed where its Layout is the
# default's) in the same run, keeps 1 / 0.5 / 0.25 / 0.1 in that order (the last run
# lost keep 0.5 to the timeout; a timeout keeps the keeps done), PROFILE top kernels
# of one eager step per keep; then PyJuice on the same pruned circuits (a second call).
# First the GPU tests of the pruned paths (<= 40 s); then <= 200 s pcc, <= 50 s PyJuice.
#   PCC_DATA_DIR=$PWD/shared/data bash bench/gpu/sparse_floor.sh     (<= 5 minutes)
#   SKIP_PYJUICE=1: no PyJuice (50 s less); KEEPS=1,0.25: fewer keeps; AB=: no variant
# Writes $OUT/sparse_speed.{json,md,log}, $OUT/pyjuice/sparse_speed.{json,md,log},
# $OUT/floor_tests.log.
source bench/gpu/common.sh
: "${PCC_DATA_DIR:?set PCC_DATA_DIR to the folder with mnist/ (carry shared)}"
LATENTS=${LATENTS:-128}
KEEPS=${KEEPS:-1,0.5,0.25,0.1}
rm -rf /tmp/t && mkdir -p /tmp/t && cp -r tests /tmp/t/
echo "== [$(date -u +%T)] GPU tests: priced blocks, unequal runs, tile flows (triton, cuda)"
(cd /tmp/t && PYTHONPATH=/tmp/pcc timeout 40 python3 -m pytest -q -p no:cacheprovider \
    tests/passes/test_storage_price.py tests/triton/test_unequal_runs.py \
    tests/triton/test_tile_flows.py --backend triton --device cuda 2>&1 | tail -8 \
    | tee "$OUT/floor_tests.log") || true
echo "== [$(date -u +%T)] sparse speed, latents $LATENTS, keeps $KEEPS: default vs ${AB-unpriced}"
status=0
timeout --signal=INT 200 python3 -u bench/sparse_speed.py --latents "$LATENTS" \
    --keeps "$KEEPS" --no-permute --ab "${AB-unpriced}" --profile "${PROFILE:-10}" \
    --no-pyjuice --out "$OUT" 2>&1 | tee "$OUT/sparse_speed.log" || status=1
cat "$OUT/sparse_speed.md" || status=1
if [ "${SKIP_PYJUICE:-0}" != 1 ]; then     # SKIP_PYJUICE=1: 50 s less
echo "== [$(date -u +%T)] PyJuice on the same pruned circuits"
mkdir -p "$OUT/pyjuice"
timeout --signal=INT 50 python3 -u bench/sparse_speed.py --latents "$LATENTS" \
    --keeps "$KEEPS" --no-permute --pyjuice-only --out "$OUT/pyjuice" 2>&1 \
    | tee "$OUT/pyjuice/sparse_speed.log" || true
cat "$OUT/pyjuice/sparse_speed.md" || true
fi
echo "== [$(date -u +%T)] done"
exit "$status"
