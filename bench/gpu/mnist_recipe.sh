#!/usr/bin/env bash
# Which recipe change moves HCLT-128's MNIST plateau (1.2149 test bpd on
# 2026-12-06, the same for HCLT-256) toward the published 1.20 (issue #18)?
# Three HCLT-128 runs in one call (<= 9 minutes; each run is stopped at 1.5x its
# training minutes + 60 s, evaluation and warm-up included):
#   base        the 2026-12-06 schedule (train 50k, pseudocount 0.1, step 0.9 -> 0.1
#               over 60 epochs), MINUTES of training
#   julia       the schedule of the SparsePC / ProbabilisticCircuits.jl HCLT runs
#               (UCLA-StarAI/SparsePC src/learn.jl: pseudocount 0.005, param_inertia
#               0.1 -> 0.9 -> 0.99 -> 0.999 over 3 x 100 mini-batch epochs (80 here, to fit 2 minutes), i.e. step
#               0.9 -> 0.1 -> 0.01 -> 0.001, then full-batch EM), LONG_MINUTES
#   julia60k    the same on all 60,000 training images
#   MINUTES=0.6 LONG_MINUTES=1.8 bash bench/gpu/mnist_recipe.sh
# Writes $OUT/recipe-<name>/mnist.{json,md} and $OUT/mnist_recipe.md (all three tables).
source bench/gpu/common.sh
MINUTES=${MINUTES:-0.6}
LONG_MINUTES=${LONG_MINUTES:-1.8}
JULIA="--phases 0.9:0.1:80,0.1:0.01:80,0.01:0.001:80 --full-batch-after 240 --pseudocount 0.005"
run() {
    local name=$1 minutes=$2; shift 2
    timeout --signal=INT "$(awk -v m="$minutes" 'BEGIN { print int(m * 90 + 60) }')" python3 -u bench/mnist.py --modes hclt --minutes "$minutes" \
        --hclt-latents 128 --out "$OUT/recipe-$name" "$@" 2>&1 | tee "$OUT/recipe-$name.log" || true
}
RUNS=${RUNS:-base julia julia60k}   # a subset, e.g. RUNS="julia julia60k"
for name in $RUNS; do
    case "$name" in
        base) run base "$MINUTES" ;;
        julia) run julia "$LONG_MINUTES" $JULIA ;;
        julia60k) run julia60k "$LONG_MINUTES" $JULIA --train-on train+valid ;;
        *) echo "unknown run $name (base, julia, julia60k)" >&2; exit 2 ;;
    esac
done
{
    echo "# MNIST HCLT-128 recipe sweep"
    echo
    echo "Command: \`MINUTES=$MINUTES LONG_MINUTES=$LONG_MINUTES bash bench/gpu/mnist_recipe.sh\`"
    for name in $RUNS; do
        echo
        echo "## $name"
        echo
        sed -n '/^Command/p;/^Split/p;/^Schedule/p;/^| run/,/^$/p' "$OUT/recipe-$name/mnist.md" 2>/dev/null \
            || echo "(no result: see recipe-$name.log)"
    done
} > "$OUT/mnist_recipe.md"
cat "$OUT/mnist_recipe.md"
