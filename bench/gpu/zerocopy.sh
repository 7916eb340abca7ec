#!/usr/bin/env bash
# Issue #16 part B on the H100 (branch i16-zerocopy), <= 3 minutes:
#   1. the 12 race cases, cold vs cached compile (triton, cuda) -> $OUT/cached_vs_cold.md
#      (target: cached < 10% of cold on every case); hclt512's circuit saved as a .pcc
#   2. loading that hclt512 .pcc (container v2, memory-mapped params, pinned
#      chunks, threaded sha256) into CUDA, warm page cache -> $OUT/pcc_load_cuda.md
#      (triton and torch backends; target >= 2 GB/s)
#   3. the container v2 tests, including the CUDA load test -> $OUT/tests.txt
# Run from the repository root:  OUT=/some/folder bash bench/gpu/zerocopy.sh
set -euo pipefail
: "${OUT:?set OUT to a folder for the results}"
START=$(date +%s)
step() { echo "[zerocopy $(( $(date +%s) - START ))s] $*"; }

step "install"
rm -rf /tmp/pcc && python3 -m pip install -q --no-index --no-deps --no-build-isolation --target /tmp/pcc .
export PYTHONPATH=/tmp/pcc:bench
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/machine.txt"
python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)" | tee -a "$OUT/machine.txt"
PCC=/tmp/zerocopy_hclt512.pcc

step "1/3 cached vs cold, 12 cases"
timeout 170 python3 bench/cached_vs_cold.py --cases all --backend triton --device cuda --repeats 2 \
    --save-pcc "hclt512=$PCC" --out "$OUT/cached_vs_cold.md" 2>&1 | tee "$OUT/cached_vs_cold.log"

step "2/3 hclt512 .pcc load into CUDA"
ls -l "$PCC"
timeout 60 python3 bench/pcc_load_bench.py --pcc "$PCC" --device cuda --backend triton --repeats 3 \
    --out "$OUT/pcc_load_cuda_triton.md" 2>&1 | tee "$OUT/pcc_load.log"
timeout 60 python3 bench/pcc_load_bench.py --pcc "$PCC" --device cuda --backend torch --repeats 3 \
    --out "$OUT/pcc_load_cuda_torch.md" 2>&1 | tee -a "$OUT/pcc_load.log"
rm -f "$PCC"

step "3/3 tests"
rm -rf /tmp/t && mkdir -p /tmp/t && cp -r tests /tmp/t/
(cd /tmp/t && PYTHONPATH=/tmp/pcc timeout 120 python3 -m pytest -q -p no:cacheprovider \
    tests/backends/test_artifact_v2.py 2>&1) | tee "$OUT/tests.txt"
step "done"
