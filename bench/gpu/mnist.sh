#!/usr/bin/env bash
# MNIST bits per dimension on the GPU (issue #18): HCLT and PD trained by
# pccompiler (triton), the prune-grow loop from the trained HCLT, and PyJuice
# 2.6.3 on the same HCLT with the same schedule. One call, <= 6 minutes:
# MINUTES of training per run (4 runs) plus compiles, warm-ups, evaluation; the
# prune-grow round's structure change (prune + grow + recompile of a ~9M-edge
# HCLT-128, on the CPU) is estimated at 1-2 minutes, so it runs last, and a
# 345 s timeout keeps whatever finished (results are rewritten after each run).
#   MINUTES=0.8 PG_ROUNDS=1 HCLT_LATENTS=128 PD_LATENTS=32 bash bench/gpu/mnist.sh
# Writes $OUT/mnist.json, $OUT/mnist.md, $OUT/mnist.log. Make the PNG here:
#   .venv/bin/python bench/mnist.py --plot OUT/mnist.json --png bench/results/mnist.png
source bench/gpu/common.sh
MINUTES=${MINUTES:-0.8}
PG_ROUNDS=${PG_ROUNDS:-1}
HCLT_LATENTS=${HCLT_LATENTS:-128}
PD_LATENTS=${PD_LATENTS:-32}
# hard stop at 5m45s so the call never runs past the lead's 6-minute slot;
# the JSON / markdown are rewritten after every run, so a stop keeps the runs done
timeout --signal=INT 345 python3 -u bench/mnist.py \
    --modes hclt,pyjuice,pd,prune-grow --minutes "$MINUTES" --pg-rounds "$PG_ROUNDS" \
    --hclt-latents "$HCLT_LATENTS" --pd-latents "$PD_LATENTS" --out "$OUT" 2>&1 | tee "$OUT/mnist.log"
status=${PIPESTATUS[0]}
cat "$OUT/mnist.md"
exit "$status"
