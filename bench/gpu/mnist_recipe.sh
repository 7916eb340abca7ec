#!/usr/bin/env bash
# Which recipe change moves HCLT-128's MNIST plateau (1.2149 test bpd on
# 2026-12-06, the same for HCLT-256) toward the published 1.20 (issue #18)?
# Four HCLT-128 runs of MINUTES training each, in one call (<= 5.5 minutes):
#   base     the 2026-12-06 schedule (train 50k, pseudocount 0.1, 0.9 -> 0.1 / 60 epochs)
#   all60k   the same on all 60,000 training images (as the published figures)
#   full     all60k, then full-batch EM after epoch 60
#   full-pc  full with pseudocount 0.01
#   MINUTES=0.8 bash bench/gpu/mnist_recipe.sh
# Writes $OUT/recipe-<name>/mnist.{json,md} and $OUT/mnist_recipe.md (all four tables).
source bench/gpu/common.sh
MINUTES=${MINUTES:-0.8}
run() {
    local name=$1; shift
    timeout --signal=INT 120 python3 -u bench/mnist.py --modes hclt --minutes "$MINUTES" \
        --hclt-latents 128 --out "$OUT/recipe-$name" "$@" 2>&1 | tee "$OUT/recipe-$name.log" || true
}
run base
run all60k --train-on train+valid
run full --train-on train+valid --full-batch-after 60
run full-pc --train-on train+valid --full-batch-after 60 --pseudocount 0.01
{
    echo "# MNIST HCLT-128 recipe sweep"
    echo
    echo "Command: \`MINUTES=$MINUTES bash bench/gpu/mnist_recipe.sh\`"
    for name in base all60k full full-pc; do
        echo
        echo "## $name"
        echo
        sed -n '/^Command/p;/^Split/p;/^Schedule/p;/^| run/,/^$/p' "$OUT/recipe-$name/mnist.md" 2>/dev/null \
            || echo "(no result: see recipe-$name.log)"
    done
} > "$OUT/mnist_recipe.md"
cat "$OUT/mnist_recipe.md"
