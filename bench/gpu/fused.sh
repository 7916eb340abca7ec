#!/usr/bin/env bash
# One-launch forward / backward (backends/triton/fused.py) on the H100, about
# 4 minutes: install pccompiler and the KLay wheel, run the fused tests on
# cuda, then bench/logic_race.py on the four shared SDDs with the fused path
# off (ours only) and on (KLay eager, which also checks the answers), the
# tile sweep bench/fused_tiles.py, and last the race with --klay-compile
# (torch.compile of KLay; cut at the time left). Results in $OUT:
#   fused_tests.txt              pytest output (fused vs layer vs float64 autograd)
#   fused_conformance.txt        conformance log_prob / marginal / mpe, --backend triton:fused
#   race_layers.md / .log        --fused false --skip-klay
#   race_fused.md / .log         --fused true, KLay eager
#   race_fused_nodes.md / .log   --fused true --form nodes --skip-klay (node-form SDDs)
#   fused_tiles.md / .log        tile sweep, CUDA-graph replays
#   race_fused_klaycompile.md / .log   --fused true --klay-compile
#   summary.md                   the machine line and every table above
# Run from the repo root with .whl/ and shared/ (the shared circuits) beside it:
#   bash bench/gpu/fused.sh
set -uo pipefail
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
status=0
start=$(date +%s)
BUDGET=235       # seconds for the whole script (the lead's limit: 4 minutes)
left() { echo $(( BUDGET - ($(date +%s) - start) )); }
cap() {          # CAP: the smaller of CAP and the time left (at least 1)
    local t
    t=$(left)
    [ "$t" -lt "$1" ] || t=$1
    [ "$t" -gt 0 ] || t=1
    echo "$t"
}
echo "[fused.sh] install $(date -u +%T)"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$OUT/machine.txt"
rm -rf /tmp/pcc /tmp/extra
python3 -m pip install -q --no-index --no-deps --no-build-isolation --target /tmp/pcc . \
    || { echo "[fused.sh] INSTALL FAILED"; exit 1; }
python3 -m pip install -q --no-index --no-deps --target /tmp/extra .whl/klaycircuits*.whl \
    || echo "[fused.sh] KLay wheel not installed: the KLay columns will say why"
export PYTHONPATH=/tmp/pcc:/tmp/extra

# The shared SDDs: the installed package looks for /tmp/shared/data (pccompiler.data.locate).
CIRCUITS=""
for d in shared/data/circuits ../shared/data/circuits /work/shared/data/circuits; do
    [ -f "$d/road_r.sdd" ] && CIRCUITS=$(cd "$d" && pwd) && break
done
if [ -z "$CIRCUITS" ]; then
    echo "[fused.sh] NO SHARED CIRCUITS FOUND (carry shared/data/circuits)"; exit 1
fi
mkdir -p /tmp/shared/data && ln -sfn "$CIRCUITS" /tmp/shared/data/circuits

echo "[fused.sh] fused tests on cuda $(date -u +%T)"
rm -rf /tmp/t && mkdir -p /tmp/t && cp -r tests /tmp/t/
(cd /tmp/t && timeout "$(cap 75)" python3 -m pytest -q -p no:cacheprovider -x -rs \
    tests/triton/test_fused.py tests/triton/test_logic_wmc.py tests/triton/test_graphed_query.py \
    --backend triton --device cuda) > "$OUT/fused_tests.txt" 2>&1 || status=1
tail -5 "$OUT/fused_tests.txt"
[ "$status" = 0 ] || echo "[fused.sh] TESTS FAILED (see fused_*.txt); benchmarking anyway"

race() {   # NAME SECONDS ARGS...: one bench/logic_race.py run on the shared SDDs
    local name=$1 secs=$2
    shift 2
    echo "[fused.sh] race $name ($secs s max) $(date -u +%T)"
    PYTHONPATH=/tmp/pcc:/tmp/extra:bench timeout "$(cap "$secs")" python3 bench/logic_race.py \
        --circuits "$CIRCUITS" --blocks --out "$OUT" --name "race_$name.md" "$@" \
        > "$OUT/race_$name.log" 2>&1 || { status=1; echo "[fused.sh] race $name FAILED"; }
    grep '^\[race\]' "$OUT/race_$name.log" || true
}
race fused 50 --fused true
race layers 35 --fused false --skip-klay
race fused_nodes 30 --fused true --form nodes --skip-klay
echo "[fused.sh] conformance, --backend triton:fused $(date -u +%T)"
(cd /tmp/t && timeout "$(cap 30)" python3 -m pytest -q -p no:cacheprovider -rs \
    tests/conformance -k "log_prob or marginal or mpe" \
    --backend triton:fused --device cuda) > "$OUT/fused_conformance.txt" 2>&1 || status=1
tail -3 "$OUT/fused_conformance.txt"
echo "[fused.sh] tile sweep $(date -u +%T)"
PYTHONPATH=/tmp/pcc:bench timeout "$(cap 50)" python3 bench/fused_tiles.py --circuits "$CIRCUITS" \
    --out "$OUT" > "$OUT/fused_tiles.log" 2>&1 || { status=1; echo "[fused.sh] sweep FAILED"; }
grep '^| ' "$OUT/fused_tiles.log" | head -40 || true
t=$(left)
if [ "$t" -gt 30 ]; then
    race fused_klaycompile "$t" --fused true --klay-compile
else
    echo "[fused.sh] no time left for --klay-compile"
fi

{
    echo "# bench/gpu/fused.sh results"
    echo
    echo "Machine: $(cat "$OUT/machine.txt"); $(python3 -c 'import torch, triton; print("torch", torch.__version__, "triton", triton.__version__)')"
    echo
    echo '## Tests'
    echo
    echo '```'
    tail -3 "$OUT/fused_tests.txt"
    tail -1 "$OUT/fused_conformance.txt"
    echo '```'
    for f in race_layers race_fused race_fused_nodes fused_tiles race_fused_klaycompile; do
        [ -f "$OUT/$f.md" ] && { echo; cat "$OUT/$f.md"; }
    done
} > "$OUT/summary.md"
echo "[fused.sh] done in $(( $(date +%s) - start )) s, status $status $(date -u +%T)"
exit "$status"
