#!/usr/bin/env bash
# fuse_products on cuda (issue #17 point 1, branch fuseprod): product layers
# folded into the sum kernels' loads (backends/triton/fusion.py). The option is
# off by default until this script passes on a GPU; flip the default in
# backends/triton/__init__.py / engine.py only after it does.
#   bash bench/gpu/fuse.sh                         # about 5 minutes: the three stages
#   STAGES=ab PRUNED_KEEP=0.1 CASES= bash bench/gpu/fuse.sh   # + HCLT-128 pruned to 0.1
#                                                  # (needs PCC_DATA_DIR with mnist/: carry shared)
#   PROFILE=12 STAGES=ab bash bench/gpu/fuse.sh    # + top 12 kernels of one eager step per plan
#   TILE_CHILDREN=1 ...                            # also fold products that row tiles read
#                                                  # (off by default: fusion.FUSE_TILE_CHILDREN)
# Stages (STAGES, comma list):
#   tests        tests/triton/test_fuse_products.py on cuda (fused vs unfused vs torch:
#                HCLT, PD, row tiles, shared products, WMC; <= 90 s) -> $OUT/fuse_tests.txt
#   conformance  the conformance suite with --backend triton:fuse for log_prob, marginal
#                and EM on every circuit (<= 90 s)                  -> $OUT/conformance_fuse.txt
#   ab           bench/fuse_ab.py: agreement on the GPU, then train-step and forward
#                A/B, fused against unfused, on CASES (default hclt128,pd32: the race's
#                builds, batch 512; <= 110 s, AB_TIMEOUT) -> $OUT/fuse_ab.{md,json}, fuse_ab.log
# Exit status: non-zero if any stage failed (a failing test means: do not flip the default).
set -uo pipefail
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
STAGES=${STAGES:-tests,conformance,ab}
CASES=${CASES-hclt128,pd32}
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$OUT/machine.txt"
python3 -c 'import torch, triton; print("torch", torch.__version__, "triton", triton.__version__)' | tee -a "$OUT/machine.txt"
rm -rf /tmp/pcc
python3 -m pip install -q --no-index --no-deps --no-build-isolation --target /tmp/pcc . || exit 1
rm -rf /tmp/t && mkdir -p /tmp/t && cp -r tests /tmp/t/
status=0
source "$(dirname "$0")/verdict.sh"
if [[ ",$STAGES," == *",tests,"* ]]; then
    echo "== tests/triton/test_fuse_products.py (cuda)"
    (cd /tmp/t && PYTHONPATH=/tmp/pcc timeout 90 python3 -m pytest -q -p no:cacheprovider -rs \
        tests/triton/test_fuse_products.py --device cuda) > "$OUT/fuse_tests.txt" 2>&1
    rc=$?
    tail -5 "$OUT/fuse_tests.txt"
    verdict tests "$rc" "keep fuse_products off"
fi
if [[ ",$STAGES," == *",conformance,"* ]]; then
    echo "== conformance, --backend triton:fuse (cuda)"
    (cd /tmp/t && PYTHONPATH=/tmp/pcc timeout 90 python3 -m pytest -q -p no:cacheprovider -rs \
        tests/conformance -k "log_prob or marginal or em" --backend triton:fuse --device cuda) \
        > "$OUT/conformance_fuse.txt" 2>&1
    rc=$?
    tail -5 "$OUT/conformance_fuse.txt"
    verdict conformance "$rc" "keep fuse_products off"
fi
if [[ ",$STAGES," == *",ab,"* ]]; then
    echo "== A/B: cases '${CASES}', pruned keep ${PRUNED_KEEP:-0}"
    PYTHONPATH=/tmp/pcc:bench timeout --signal=INT "${AB_TIMEOUT:-110}" python3 -u bench/fuse_ab.py \
        --cases "$CASES" --pruned-keep "${PRUNED_KEEP:-0}" --profile "${PROFILE:-0}" \
        ${TILE_CHILDREN:+--fuse-tile-children} --out "$OUT" 2>&1 | tee "$OUT/fuse_ab.log"
    rc=${PIPESTATUS[0]}
    [[ $rc -eq 130 ]] && rc=124       # timeout --signal=INT: the cases done are saved
    verdict ab "$rc" "keep fuse_products off"
fi
exit "$status"
