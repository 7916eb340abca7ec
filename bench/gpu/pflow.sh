#!/usr/bin/env bash
# Parameter-flow strategies on cuda (issue #17 point 1, branch pflow): the triton
# option pflow = "layer" (default) | "split" | "fused" | "fused_split" (backends/triton/pflow_launch.py,
# bwd_pflow.py). The default stays "layer" until this script passes and the A/B
# shows a faster variant; flip it in backends/triton/engine.py / __init__.py then.
#   bash bench/gpu/pflow.sh                        # about 4 minutes: the three stages
#   STAGES=ab CASES=hclt128 VARIANTS=layer,fused bash bench/gpu/pflow.sh
# Stages (STAGES, comma list):
#   tests        tests/triton/test_pflow.py on cuda (every mode vs the default and
#                the float64 torch EM; <= 60 s)                  -> $OUT/pflow_tests.txt
#   conformance  the conformance EM tests with --backend triton:pflow_split,
#                triton:pflow_fused, triton:pflow_fused_split (<= 70 s) -> $OUT/conformance_pflow.txt
#   ab           bench/pflow_ab.py: agreement after 3 EM steps, then training-step
#                A/B of VARIANTS (default layer,split,fused,fused_split; also
#                fused_i128, fused_j128: fused with 128-row tiles) on CASES
#                (default hclt128,hclt512, batch 512) and the top 10 kernels of one
#                eager step per variant (<= 120 s, AB_TIMEOUT) -> $OUT/pflow_ab.{md,json,log}
# Then $OUT/pflow.md: machine line, commands, test summaries, the A/B table, profiles.
# Exit status: non-zero if any stage failed (do not change the default then).
set -uo pipefail
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
STAGES=${STAGES:-tests,conformance,ab}
CASES=${CASES:-hclt128,hclt512}
VARIANTS=${VARIANTS:-layer,split,fused,fused_split}
DEVICE=${DEVICE:-cuda}     # cpu + TRITON_INTERPRET=1 + CASES=quick: a dry run of the plumbing
AB_ARGS=${AB_ARGS:-}       # extra bench/pflow_ab.py arguments (dry runs: --batch 16 --steps 1 ...)
PCC=${PCC_TARGET:-/tmp/pcc}    # where the package is installed (a dry run on a shared box: elsewhere)
TDIR=${TESTS_DIR:-/tmp/t}      # where the tests are copied
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  python3 -c 'import torch, triton; print("torch", torch.__version__, "triton", triton.__version__)'
} | tee "$OUT/machine.txt"
rm -rf "$PCC"
python3 -m pip install -q --no-index --no-deps --no-build-isolation --target "$PCC" . || exit 1
rm -rf "$TDIR" && mkdir -p "$TDIR" && cp -r tests "$TDIR/"
status=0
source "$(dirname "$0")/verdict.sh"
if [[ ",$STAGES," == *",tests,"* ]]; then
    echo "== tests/triton/test_pflow.py ($DEVICE)"
    (cd "$TDIR" && PYTHONPATH="$PCC" timeout "${TEST_TIMEOUT:-60}" python3 -m pytest -q -p no:cacheprovider -rs \
        tests/triton/test_pflow.py --device "$DEVICE") > "$OUT/pflow_tests.txt" 2>&1
    rc=$?
    tail -5 "$OUT/pflow_tests.txt"
    verdict tests "$rc" "keep pflow='layer'"
fi
if [[ ",$STAGES," == *",conformance,"* ]]; then
    echo "== conformance EM, --backend triton:pflow_split,triton:pflow_fused,triton:pflow_fused_split ($DEVICE)"
    (cd "$TDIR" && PYTHONPATH="$PCC" timeout "${CONF_TIMEOUT:-70}" python3 -m pytest -q -p no:cacheprovider -rs \
        tests/conformance -k em --backend triton:pflow_split,triton:pflow_fused,triton:pflow_fused_split --device "$DEVICE") \
        > "$OUT/conformance_pflow.txt" 2>&1
    rc=$?
    tail -5 "$OUT/conformance_pflow.txt"
    verdict conformance "$rc" "keep pflow='layer'"
fi
if [[ ",$STAGES," == *",ab,"* ]]; then
    echo "== A/B: cases '${CASES}', variants '${VARIANTS}'"
    PYTHONPATH="$PCC":bench timeout --signal=INT "${AB_TIMEOUT:-120}" python3 -u bench/pflow_ab.py \
        --cases "$CASES" --variants "$VARIANTS" --profile "${PROFILE:-10}" --device "$DEVICE" --out "$OUT" $AB_ARGS 2>&1 \
        | tee "$OUT/pflow_ab.log"
    rc=${PIPESTATUS[0]}
    [[ $rc -eq 130 ]] && rc=124       # timeout --signal=INT: the cases done are saved
    verdict ab "$rc" "keep pflow='layer'"
fi
{
    echo "# pflow on cuda: tests, conformance, training-step A/B (bench/gpu/pflow.sh)"
    echo
    echo "Machine: $(paste -sd ';' "$OUT/machine.txt")"
    echo
    echo "Command: \`STAGES=$STAGES CASES=$CASES VARIANTS=$VARIANTS bash bench/gpu/pflow.sh\`"
    echo
    for f in pflow_tests conformance_pflow; do
        [[ -f "$OUT/$f.txt" ]] && echo "- $f: $(tail -1 "$OUT/$f.txt")"
    done
    echo
    [[ -f "$OUT/pflow_ab.md" ]] && sed 's/^# /## /' "$OUT/pflow_ab.md"
    if [[ -f "$OUT/pflow_ab.log" ]]; then
        echo
        echo "## Kernels of one eager training step (top ${PROFILE:-10} per variant)"
        echo
        echo '```'
        awk '/kernels of one eager/ {p = 1; print; next} /^ / {if (p) print; next} {p = 0}' \
            "$OUT/pflow_ab.log"
        echo '```'
    fi
    echo
    echo "Exit status of this script: $status"
} > "$OUT/pflow.md"
cat "$OUT/pflow.md"
exit "$status"
