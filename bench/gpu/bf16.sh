#!/usr/bin/env bash
# precision="bf16" on one H100 (issue #17): accuracy against float64 on nltcs
# and MNIST[:1000] + EM on nltcs against tf32 (bench/bf16_accuracy.py), the
# conformance suite at triton:bf16 (log_prob, marginal, EM), and the training
# step of hclt512 at tf32 vs bf16 (bench/scale.py, pccompiler only).
# Run from the repository root; about 3 minutes (at most 4.5).
# Results: $OUT/bf16_accuracy-*.md/.json, conformance.log, scale-*-tf32/bf16.md/.json, logs.
set -euo pipefail
: "${OUT:?set OUT to a results folder}"
t0=$(date +%s)
rm -rf /tmp/pcc /tmp/t
python3 -m pip install -q --no-index --no-deps --no-build-isolation --target /tmp/pcc .
export PCC_COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/machine.txt"
PYTHONPATH=/tmp/pcc:bench timeout 120 python3 bench/bf16_accuracy.py --epochs 5 \
    --out-dir /tmp/bf16-results 2>&1 | tee "$OUT/bf16_accuracy.log"
echo "accuracy: $(( $(date +%s) - t0 )) s"
mkdir -p /tmp/t && cp -r tests /tmp/t/
(cd /tmp/t && PYTHONPATH=/tmp/pcc timeout 50 python3 -m pytest -q -p no:cacheprovider \
    tests/conformance/test_conformance.py --backend triton:bf16,triton --device cuda \
    -k "log_prob or marginal or em_step" 2>&1 | tail -15) | tee "$OUT/conformance.log"
echo "conformance: $(( $(date +%s) - t0 )) s"
for p in tf32 bf16; do
  PYTHONPATH=/tmp/pcc:bench python3 bench/scale.py --libs pcc --precision $p --sizes hclt:512 \
      --budget 45 --min-start 10 --timeout 45 --steps 10 --tag $p --out-dir /tmp/bf16-results \
      2>&1 | tail -14 | tee "$OUT/scale-$p.log"
done
cp /tmp/bf16-results/* "$OUT/" 2>/dev/null || true
echo "total: $(( $(date +%s) - t0 )) s"
