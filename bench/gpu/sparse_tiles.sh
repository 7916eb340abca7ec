#!/usr/bin/env bash
# Row tiles for pruned sums (issue #18 point 4): the measurement of
# bench/gpu/sparse.sh (HCLT pruned by flows to 0.5 / 0.25 / 0.1, epoch time
# relative to dense, PyJuice on the same pruned circuits) with row tiles on
# (the default), and each pruned circuit again under the code variants AB
# (default "before": the row tiles' node flows per (child block, parent row)
# pair and their dots in fp32, the code before 2026-12-07; also "allruns",
# "tiles16": bench/step_model.py `variant`) in the same run, plus the
# modeled work (bench/sparse_tiles.py layout_work).
# First the GPU tests of the tiled circuits and of the tile flows (<= 70 s).
# One call, <= 5 minutes; the tiled circuits compile new kernel variants
# (program groups of 2..128 one-row blocks) in their untimed warm-up steps.
#   bash bench/gpu/sparse_tiles.sh          (LATENTS=64 if 128 runs out of time)
#   AB=before,allruns bash bench/gpu/sparse_tiles.sh   (AB= : no variants)
# PROFILE=12 also prints the top 12 kernels of one eager step per keep (where the time goes).
# Round 2 (branch sparsestep2): the row-tile pass may store a pruned group DENSE
# (tile_dense) and runs remainders as one-row tiles; bench/step_model.py models the
# pruned step at 1.11 / 1.20 / 2.02x of dense for keep 0.5 / 0.25 / 0.1 (round 1:
# 1.36 / 1.51 / 2.72x), bench/results/sparse_step-cpu-2026-12-07.md.
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
    tests/triton/test_row_tiles_triton.py tests/triton/test_tile_flows.py \
    -k "pruned_tiles or row_tiles or tile" --backend triton --device cuda 2>&1 | tail -8 | tee "$OUT/tiles_tests.log") || true
echo "== sparse speed, latents $LATENTS, row tiles, code variants ${AB-before}"
timeout --signal=INT 200 python3 -u bench/sparse_speed.py --latents "$LATENTS" \
    --keeps 1,0.1,0.25,0.5 --no-permute --ab "${AB-before}" --profile "${PROFILE:-0}" --out "$OUT" 2>&1 | tee "$OUT/sparse_speed.log"
status=${PIPESTATUS[0]}
cat "$OUT/sparse_speed.md"
exit "$status"
