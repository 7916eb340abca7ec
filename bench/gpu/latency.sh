#!/usr/bin/env bash
# Batch-1 / batch-8 marginal latency on one H100 (issue #17): pccompiler's
# persistent forward (one launch, graphed_query(persistent="on")) vs its
# layer-by-layer CUDA graph (persistent="off") vs PyJuice 2.6.3 on hclt128.
# First the GPU tests of the persistent forward and of graphed_query (under
# a timeout), then batch 1 and batch 8 (main paths), then a sweep of the
# persistent knobs at batch 1. Run from the repository root (the lead carries
# /work/main/.whl as .whl/); <= 4 minutes.
# Results: $OUT/latency.md (results-file form, for bench/results/), plus
# latency-<gpu>-<date>.md / .json, latency.log, tests.log, machine.txt.
set -euo pipefail
: "${OUT:?set OUT to a results folder}"
t0=$(date +%s)
rm -rf /tmp/pcc /tmp/extra /tmp/t /tmp/latency-results
python3 -m pip install -q --no-index --no-deps --no-build-isolation --target /tmp/pcc .
python3 -m pip install -q --no-index --no-deps --target /tmp/extra .whl/pyjuice*.whl
export PCC_COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/machine.txt"
echo "install: $(( $(date +%s) - t0 )) s"

# 1. correctness on the GPU first (the in-kernel waits only really wait here)
mkdir -p /tmp/t && cp -r tests /tmp/t/
set +e
(cd /tmp/t && PYTHONPATH=/tmp/pcc timeout 100 python3 -m pytest -q -p no:cacheprovider \
    tests/triton/test_persistent.py tests/triton/test_graphed_query.py \
    --backend triton --device cuda 2>&1 | tail -25) | tee "$OUT/tests.log"
set -e
echo "tests: $(( $(date +%s) - t0 )) s"

# 2. latency: batch 1 and 8 (main paths) first, then the knob sweep at batch 1
# (one knob per variant, or two joined by /; rows, chunk, wide, warps and poll recompile
# the kernel, ~5 s each; grid also sets the spread, which defaults to the programs)
SWEEP="grid=264 grid=528 rows=64/warps=8 rows=32 poll=0 spread=264 wide=512 warps=8 spread=66"
set +e
PYTHONPATH=/tmp/pcc:/tmp/extra:bench timeout 125 python3 bench/latency.py --calls 2000 \
    --batches 1,8 --sweep "$SWEEP" --out-dir /tmp/latency-results 2>&1 | tee "$OUT/latency.log"
status=${PIPESTATUS[0]}
set -e
echo "benchmark: $(( $(date +%s) - t0 )) s (exit $status)"

# 3. the results file for bench/results/
md=$(ls /tmp/latency-results/latency-*.md 2>/dev/null | head -1 || true)
{
    echo "# Small-batch marginal latency on hclt128: persistent forward vs layer graph vs PyJuice"
    echo
    echo "Produced by \`OUT=... bash bench/gpu/latency.sh\` (commit $PCC_COMMIT; bench exit $status)."
    echo "Machine: $(cat "$OUT/machine.txt"), torch $(python3 -c 'import torch; print(torch.__version__)'), triton $(python3 -c 'import triton; print(triton.__version__)')."
    echo
    if [ -n "$md" ]; then tail -n +2 "$md"; else echo "NO RESULTS: see latency.log"; fi
    echo
    echo "GPU tests (tests/triton/test_persistent.py, test_graphed_query.py, --device cuda):"
    echo
    echo '```'
    tail -5 "$OUT/tests.log"
    echo '```'
} > "$OUT/latency.md"
cat "$OUT/latency.md"
echo "total: $(( $(date +%s) - t0 )) s"
[ -n "$md" ] || { echo "latency: no results file" >&2; exit 1; }
