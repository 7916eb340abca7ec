#!/usr/bin/env bash
# Issue #16 "a cached compile under 10% of cold on every race case", triton on
# the H100, branch `cached` (about 5 minutes):
#   1. the 12 race cases, cold vs cached compile (triton, cuda, fastest of 2
#      cached) -> $OUT/cached_vs_cold.md  (compare with the 2026-12-06 race:
#      4.8-26%, bench/results/cached_compile*.md); 1b. the same compiling each
#      case's builder group (--input group: no parameter bytes in protobuf)
#      -> $OUT/cached_vs_cold_group.md
#   2. where the cached compile goes, phase by phase and by cProfile, for hclt32,
#      bsp010, bsp050 and hclt512 (bench/cached_compile_profile.py) -> $OUT/cached_profile.txt
#   3. the packing tests on cuda (the batched device path against the CPU one)
#      -> $OUT/tests.txt
# On a CUDA target the cached path packs through `_pack_batched` (pinned
# chunks, one upload per chunk); this branch changes only what runs before it
# (Backend.check, the engine's external-tensor scan), so step 1 measures how
# far the fixed costs moved the ratio, step 2 what is left.
# Every step runs even if an earlier one failed; the script exits 1 if any did.
# Run from the repository root:  OUT=/some/folder bash bench/gpu/cached.sh (needs .whl/, as common.sh)
# common.sh: $OUT, the GPU line, our package in /tmp/pcc (and PyJuice's wheel) on PYTHONPATH
source bench/gpu/common.sh
set +e                       # every step runs; failures are listed at the end
export PYTHONSAFEPATH=1      # the repository's pccompiler/ folder must not shadow /tmp/pcc
python3 -c "import torch, triton, os; print('torch', torch.__version__, 'triton', triton.__version__, 'cpus', os.cpu_count(), 'load', os.getloadavg())" | tee "$OUT/machine.txt"
T0=$(date +%s)
FAILED=""
step() { echo "[cached $(( $(date +%s) - T0 ))s] $*"; }
failed() { [ "$1" -eq 0 ] || { FAILED="$FAILED $2"; echo "!!! FAILED: $2 (exit $1)"; }; }

step "1/3 cached vs cold, 12 cases"
timeout 150 python3 bench/cached_vs_cold.py --cases all --backend triton --device cuda --repeats 2 \
    --out "$OUT/cached_vs_cold.md" 2>&1 | tee "$OUT/cached_vs_cold.log"
failed "${PIPESTATUS[0]}" "cached_vs_cold"

step "1b/3 cached vs cold, 12 cases, compiling the builder's group (lower(external=True))"
timeout 150 python3 bench/cached_vs_cold.py --cases all --backend triton --device cuda --repeats 2 \
    --input group --out "$OUT/cached_vs_cold_group.md" 2>&1 | tee "$OUT/cached_vs_cold_group.log"
failed "${PIPESTATUS[0]}" "cached_vs_cold_group"

step "2/3 cached compile phases: hclt32, bsp010, bsp050, hclt512 (cProfile top ${CACHED_PROFILE:-30})"
timeout 120 python3 bench/cached_compile_profile.py --cases hclt32,bsp010,bsp050,hclt512 --backends triton \
    --device cuda --repeats 2 --profile "${CACHED_PROFILE:-30}" 2>&1 | tee "$OUT/cached_profile.txt"
failed "${PIPESTATUS[0]}" "cached_compile_profile"

step "3/3 packing tests on cuda"
rm -rf /tmp/t && mkdir -p /tmp/t && cp -r tests bench /tmp/t/   # tests import bench/race_cases
(cd /tmp/t && PYTHONPATH=/tmp/pcc timeout 40 python3 -m pytest -q -p no:cacheprovider \
    tests/test_packing_batched.py --backend triton --device cuda 2>&1) | tee "$OUT/tests.txt"
failed "${PIPESTATUS[0]}" "tests"
step "done${FAILED:+, FAILED:$FAILED}"
[ -z "$FAILED" ]
