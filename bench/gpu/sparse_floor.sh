#!/usr/bin/env bash
# Pruned HCLT-128 toward its floor (issue #18 point 4, branch sparsefloor; CPU model:
# bench/results/sparse_floor-cpu-2026-12-07.md). Times the default code (unequal runs,
# stored tile flows, odd DENSE groups as one-row runs, the row-tile pass's read costs,
# packed EM) against the previous code ('round2' of bench/step_model.py `variant`: the
# same switches off, compiled under them) in the same run, keeps 1 / 0.1 / 0.25 / 0.5 in
# that order (a timeout keeps the keeps done), PROFILE top kernels of one eager step per
# keep; then PyJuice on the same pruned circuits (a second call, last).
# First the GPU tests of the new paths (<= 45 s); then <= 160 s pcc, <= 70 s PyJuice.
#   PCC_DATA_DIR=$PWD/shared/data bash bench/gpu/sparse_floor.sh     (<= 5 minutes)
# Writes $OUT/sparse_speed.{json,md,log}, $OUT/pyjuice/sparse_speed.{json,md,log},
# $OUT/floor_tests.log.
source bench/gpu/common.sh
: "${PCC_DATA_DIR:?set PCC_DATA_DIR to the folder with mnist/ (carry shared)}"
LATENTS=${LATENTS:-128}
rm -rf /tmp/t && mkdir -p /tmp/t && cp -r tests /tmp/t/
echo "== GPU tests: unequal runs, tile flows, pruned_tiles conformance (triton, cuda)"
(cd /tmp/t && PYTHONPATH=/tmp/pcc timeout 45 python3 -m pytest -q -p no:cacheprovider \
    tests/triton/test_unequal_runs.py tests/triton/test_tile_flows.py \
    tests/conformance/test_conformance.py -k "runs or tile or pruned_tiles" \
    --backend triton --device cuda 2>&1 | tail -8 | tee "$OUT/floor_tests.log") || true
echo "== sparse speed, latents $LATENTS: default vs round2, PROFILE ${PROFILE:-10}"
status=0
timeout --signal=INT 160 python3 -u bench/sparse_speed.py --latents "$LATENTS" \
    --keeps 1,0.1,0.25,0.5 --no-permute --ab "${AB-round2}" --profile "${PROFILE:-10}" \
    --no-pyjuice --out "$OUT" 2>&1 | tee "$OUT/sparse_speed.log" || status=1
cat "$OUT/sparse_speed.md" || status=1
if [ "${SKIP_PYJUICE:-0}" != 1 ]; then     # SKIP_PYJUICE=1: 70 s less
echo "== PyJuice on the same pruned circuits"
mkdir -p "$OUT/pyjuice"
timeout --signal=INT 70 python3 -u bench/sparse_speed.py --latents "$LATENTS" \
    --keeps 1,0.1,0.25,0.5 --no-permute --pyjuice-only --out "$OUT/pyjuice" 2>&1 \
    | tee "$OUT/pyjuice/sparse_speed.log" || true
cat "$OUT/pyjuice/sparse_speed.md" || true
fi
exit "$status"
