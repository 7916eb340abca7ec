#!/usr/bin/env bash
# Row tiles for pruned sums (issue #18 point 4): the measurement of
# bench/gpu/sparse.sh (HCLT pruned by flows to 0.5 / 0.25 / 0.1, epoch time
# relative to dense, PyJuice on the same pruned circuits) with row tiles on
# (the default now), and each pruned circuit again with tiles off (the
# one-row form measured on 2026-12-06) in the same run, plus the modeled work
# of both (bench/sparse_tiles.py layout_work) to check the cost model.
# First the GPU tests of the tiled circuits (<= 70 s). One call, <= 5 minutes;
# the tiled circuits compile new kernel variants (program groups of 2..128
# one-row blocks) in their untimed warm-up steps.
#   bash bench/gpu/sparse_tiles.sh          (LATENTS=64 if 128 runs out of time)
# PROFILE=12 also prints the top 12 kernels of one eager step per keep (where the time goes).
# Keeps run 0.1 first (cheapest); a timeout keeps the keeps done.
# Writes $OUT/sparse_speed.json, $OUT/sparse_speed.md, $OUT/sparse_speed.log,
# $OUT/tiles_tests.log.
source bench/gpu/common.sh
: "${PCC_DATA_DIR:?set PCC_DATA_DIR to the folder with mnist/ (carry shared)}"
LATENTS=${LATENTS:-128}
rm -rf /tmp/t && mkdir -p /tmp/t && cp -r tests /tmp/t/
echo "== GPU tests: pruned_tiles conformance (triton, cuda) and the row-tile pass tests"
(cd /tmp/t && PYTHONPATH=/tmp/pcc timeout 70 python3 -m pytest -q -p no:cacheprovider \
    tests/conformance/test_conformance.py tests/passes/test_row_tiles.py \
    tests/triton/test_row_tiles_triton.py \
    -k "pruned_tiles or row_tiles" --backend triton --device cuda 2>&1 | tail -8 | tee "$OUT/tiles_tests.log") || true
echo "== sparse speed, latents $LATENTS, tiles on and off"
timeout --signal=INT 200 python3 -u bench/sparse_speed.py --latents "$LATENTS" \
    --keeps 1,0.1,0.25,0.5 --no-permute --rows --profile "${PROFILE:-0}" --out "$OUT" 2>&1 | tee "$OUT/sparse_speed.log"
status=${PIPESTATUS[0]}
cat "$OUT/sparse_speed.md"
exit "$status"
