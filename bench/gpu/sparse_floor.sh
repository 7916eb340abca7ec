#!/usr/bin/env bash
# Pruned HCLT toward its floor (issue #18 point 4), HCLT-128 by default, LATENTS=256
# for the size where sum edges weigh more (bench/results/sparse_big-cpu-2026-12-07.md).
# Times the default code against an A/B variant (bench/step_model.py `variant`;
# compiled, planned and timed under it; not timed where its Layout is the default's)
# in the same run, keeps in KEEPS order (a timeout keeps the keeps done), PROFILE top
# kernels of one eager step per keep; then PyJuice on the same pruned circuits.
#   AB default: 'unpriced' at LATENTS=128 (small blocks stored block-sparse unpriced,
#   main before sparseprice); 'runs256' at LATENTS>=256 (the plan's unequal runs of
#   one-row blocks up to 256 rows: a pruned group of 129..256 rows one run, its node
#   flows stored, not added atomically by two runs; CPU model 1.28x -> 1.09x dense at
#   keep 0.1; its kernels: tests/passes/test_run_rows.py, run first below).
# First the GPU tests of the pruned paths (<= 60 s); then <= PCC_TIMEOUT s pcc (200),
# <= 50 s PyJuice.
#   PCC_DATA_DIR=$PWD/shared/data bash bench/gpu/sparse_floor.sh     (<= 5 minutes)
#   LATENTS=256 PROFILE=0 KEEPS=1,0.1,0.25,0.5 SKIP_PYJUICE=1 (HCLT-256: ~4 minutes,
#   keep 0.5 may be cut at 200 s; PCC_TIMEOUT=300 for all four)
#   SKIP_PYJUICE=1: no PyJuice (50 s less); KEEPS=1,0.25: fewer keeps; AB=: no variant;
#   PJ_TIMEOUT=300: PyJuice's limit (its compile of a pruned circuit takes more than 50 s)
# Writes $OUT/sparse_speed.{json,md,log}, $OUT/pyjuice/sparse_speed.{json,md,log},
# $OUT/floor_tests.log.
source bench/gpu/common.sh
: "${PCC_DATA_DIR:?set PCC_DATA_DIR to the folder with mnist/ (carry shared)}"
LATENTS=${LATENTS:-128}
KEEPS=${KEEPS:-1,0.5,0.25,0.1}
PCC_TIMEOUT=${PCC_TIMEOUT:-200}
if [ "$LATENTS" -ge 256 ]; then AB=${AB-runs256}; else AB=${AB-unpriced}; fi
rm -rf /tmp/t && mkdir -p /tmp/t && cp -r tests /tmp/t/
echo "== [$(date -u +%T)] GPU tests: priced blocks, unequal runs, tile flows (triton, cuda)"
(cd /tmp/t && PYTHONPATH=/tmp/pcc timeout 60 python3 -m pytest -v -p no:cacheprovider \
    tests/passes/test_storage_price.py tests/passes/test_run_rows.py \
    tests/triton/test_unequal_runs.py tests/triton/test_tile_flows.py \
    --backend triton --device cuda > "$OUT/floor_tests.log" 2>&1; tail -8 "$OUT/floor_tests.log") || true
echo "== [$(date -u +%T)] sparse speed, latents $LATENTS, keeps $KEEPS: default vs ${AB:-nothing}"
status=0
timeout --signal=INT "$PCC_TIMEOUT" python3 -u bench/sparse_speed.py --latents "$LATENTS" \
    --keeps "$KEEPS" --no-permute --ab "$AB" --profile "${PROFILE:-10}" \
    --no-pyjuice --out "$OUT" 2>&1 | tee "$OUT/sparse_speed.log" || status=1
cat "$OUT/sparse_speed.md" || status=1
if [ "${SKIP_PYJUICE:-0}" != 1 ]; then     # SKIP_PYJUICE=1: 50 s less
echo "== [$(date -u +%T)] PyJuice on the same pruned circuits"
mkdir -p "$OUT/pyjuice"
# PJ_TIMEOUT (50 s): session 17's juice.compile of the keep-0.25 circuit was still in Triton's
# LLVM stage at 50 s; give it 300 to time the pruned circuits
timeout --signal=INT "${PJ_TIMEOUT:-50}" python3 -u bench/sparse_speed.py --latents "$LATENTS" \
    --keeps "$KEEPS" --no-permute --pyjuice-only --out "$OUT/pyjuice" 2>&1 \
    | tee "$OUT/pyjuice/sparse_speed.log" || true
cat "$OUT/pyjuice/sparse_speed.md" || true
fi
echo "== [$(date -u +%T)] done"
exit "$status"
