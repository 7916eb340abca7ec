#!/usr/bin/env bash
# Batch-1 / batch-8 marginal latency on one H100 (issue #17): pccompiler's
# graphed_query (CUDA graph) vs its log_prob vs PyJuice 2.6.3 on hclt128, then
# the GPU tests of graphed_query. Run from the repository root (the lead carries
# /work/main/.whl as .whl/); <= 2 minutes.
# Results: $OUT/latency-<gpu>-<date>.md / .json, latency.log, tests.log.
set -euo pipefail
: "${OUT:?set OUT to a results folder}"
t0=$(date +%s)
rm -rf /tmp/pcc /tmp/extra /tmp/t
python3 -m pip install -q --no-index --no-deps --no-build-isolation --target /tmp/pcc .
python3 -m pip install -q --no-index --no-deps --target /tmp/extra .whl/pyjuice*.whl
export PCC_COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/machine.txt"
PYTHONPATH=/tmp/pcc:/tmp/extra:bench timeout 75 python3 bench/latency.py --calls 2000 \
    --out-dir /tmp/latency-results 2>&1 | tee "$OUT/latency.log"
echo "benchmark: $(( $(date +%s) - t0 )) s"
mkdir -p /tmp/t && cp -r tests /tmp/t/
(cd /tmp/t && PYTHONPATH=/tmp/pcc timeout 40 python3 -m pytest -q -p no:cacheprovider \
    tests/triton/test_graphed_query.py --backend triton --device cuda 2>&1 | tail -15) | tee "$OUT/tests.log"
echo "total: $(( $(date +%s) - t0 )) s"
