#!/usr/bin/env bash
# Issue #16 part B on the H100 (container v2; part A's kernels are extra sections of it,
# exercised by bench/gpu/aot.sh), about 3 minutes:
#   1. the 12 race cases, cold vs cached compile (triton, cuda) -> $OUT/cached_vs_cold.md
#      (target: cached < 10% of cold on every case); hclt512's circuit saved as a .pcc
#   2. loading that hclt512 .pcc (container v2, memory-mapped params, pinned
#      chunks, chunked sha256 on threads) into CUDA from a warm page cache, triton and
#      torch backends -> $OUT/pcc_load_cuda_{triton,torch}.md (target >= 2 GB/s)
#   3. the container v2 tests, including the CUDA load test -> $OUT/tests.txt
# Every step runs even if an earlier one failed; the script exits 1 if any did.
# Run from the repository root:  OUT=/some/folder bash bench/gpu/zerocopy.sh
set -uo pipefail
: "${OUT:?set OUT to a folder for the results}"
START=$(date +%s)
FAILED=""
step() { echo "[zerocopy $(( $(date +%s) - START ))s] $*"; }
check() { if [ "$1" -ne 0 ]; then FAILED="$FAILED $2"; echo "!!! FAILED: $2 (exit $1)"; fi; }

step "install"
rm -rf /tmp/pcc && python3 -m pip install -q --no-index --no-deps --no-build-isolation --target /tmp/pcc . \
    || { echo "!!! install failed"; exit 1; }
export PYTHONPATH=/tmp/pcc:bench
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/machine.txt"
python3 -c "import torch, triton, os; print('torch', torch.__version__, 'triton', triton.__version__, 'cpus', os.cpu_count())" | tee -a "$OUT/machine.txt"
PCC=/tmp/zerocopy_hclt512.pcc
rm -f "$PCC"

step "1/3 cached vs cold, 12 cases"
timeout 150 python3 bench/cached_vs_cold.py --cases all --backend triton --device cuda --repeats 2 \
    --save-pcc "hclt512=$PCC" --out "$OUT/cached_vs_cold.md" 2>&1 | tee "$OUT/cached_vs_cold.log"
check $? "cached_vs_cold"

step "2/3 hclt512 .pcc load into CUDA"
if [ -f "$PCC" ]; then
    ls -l "$PCC"
    timeout 60 python3 bench/pcc_load_bench.py --pcc "$PCC" --device cuda --backend triton --repeats 3 \
        --out "$OUT/pcc_load_cuda_triton.md" 2>&1 | tee "$OUT/pcc_load.log"
    check $? "pcc_load triton"
    timeout 45 python3 bench/pcc_load_bench.py --pcc "$PCC" --device cuda --backend torch --repeats 3 \
        --out "$OUT/pcc_load_cuda_torch.md" 2>&1 | tee -a "$OUT/pcc_load.log"
    check $? "pcc_load torch"
    rm -f "$PCC"
else
    check 1 "no hclt512 .pcc from step 1"
fi

step "3/3 tests"
rm -rf /tmp/t && mkdir -p /tmp/t && cp -r tests /tmp/t/
(cd /tmp/t && PYTHONPATH=/tmp/pcc timeout 90 python3 -m pytest -q -p no:cacheprovider \
    tests/backends/test_artifact_v2.py 2>&1) | tee "$OUT/tests.txt"
check $? "tests"
step "done${FAILED:+, FAILED:$FAILED}"
[ -z "$FAILED" ]
