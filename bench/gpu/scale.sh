#!/usr/bin/env bash
# Scale sweep on one H100 (issue #17): pccompiler (triton) and PyJuice 2.6.3,
# HCLT and PD up to past 600M / 2B edges. Run from the repository root on the
# GPU machine (the lead carries /work/main/.whl as .whl/); <= 8 minutes:
# the sweep's own budget is 420 s (no size starts with < 45 s left), each
# size a subprocess with a time-out (240 s), results rewritten after every size.
# Order: pd3328 (2.11B edges), hclt1280 (911M), then hclt256, pd512, hclt512, ...
# For more of the curve in a second call: SCALE_ARGS="--sizes hclt:256,pd:512,hclt:512,pd:1024,hclt:1024,pd:2048"
# Results: $OUT/scale-<gpu>-<date>.md / .json (+ scale.log); make the PNG here with
#   .venv/bin/python bench/scale.py --plot bench/results/scale-<gpu>-<date>.json
set -euo pipefail
: "${OUT:?set OUT to a results folder}"
t0=$(date +%s)
rm -rf /tmp/pcc /tmp/extra
python3 -m pip install -q --no-index --no-deps --no-build-isolation --target /tmp/pcc .
python3 -m pip install -q --no-index --no-deps --target /tmp/extra .whl/pyjuice*.whl
export PYTHONPATH=/tmp/pcc:/tmp/extra:bench
export PCC_COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/machine.txt"
echo "install: $(( $(date +%s) - t0 )) s"
python3 bench/scale.py --budget "${SCALE_BUDGET:-420}" --timeout 240 --steps 8 --warmup 2 \
    --out-dir /tmp/scale-results ${SCALE_ARGS:-} 2>&1 | tee "$OUT/scale.log"
ls -l "$OUT"
echo "total: $(( $(date +%s) - t0 )) s"
