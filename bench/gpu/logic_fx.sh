#!/usr/bin/env bash
# Issue #19, file-to-executable on the GPU path (about 1.5 minutes): the four
# shared SDDs only. (1) the stage table of logic_race.ours_build against KLay's
# file->exe (bench/logic_fx.py: parse, nodes, layerize, layout, backend,
# remap, plan and its parts; medians of 7, warm); (2) the first build of a fresh
# process per circuit, imports timed apart (--first); (3) the race itself
# (bench/logic_race.py, warm file->exe, fwd, fwd+bwd against KLay).
# Results in $OUT: logic_fx.md, logic_fx_first.md, race_shared.md and their
# .log files, machine.txt. Carry shared/ (shared/data/circuits) and .whl/.
#   bash bench/gpu/logic_fx.sh
TAG=logic_fx.sh
source "$(dirname "$0")/logic_env.sh"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$OUT/machine.txt"
CIRCUITS=$(shared_circuits)
[ -n "$CIRCUITS" ] || { echo "[$TAG] NO SHARED CIRCUITS (carry shared)"; exit 1; }
export PYTHONPATH=/tmp/pcc:/tmp/extra:bench
echo "[$TAG] stage table $(date -u +%T)"
timeout 150 python3 bench/logic_fx.py --device cuda --circuits "$CIRCUITS" --repeat 7 \
    --out "$OUT" --name logic_fx.md > "$OUT/logic_fx.log" 2>&1 || status=1
grep '^|' "$OUT/logic_fx.log" || tail -20 "$OUT/logic_fx.log"
echo "[$TAG] first build of a fresh process $(date -u +%T)"
timeout 150 python3 bench/logic_fx.py --device cuda --circuits "$CIRCUITS" --first \
    --out "$OUT" --name logic_fx_first.md > "$OUT/logic_fx_first.log" 2>&1 || status=1
grep '^|' "$OUT/logic_fx_first.log" || tail -20 "$OUT/logic_fx_first.log"
echo "[$TAG] race of the shared SDDs $(date -u +%T)"
timeout 150 python3 bench/logic_race.py --circuits "$CIRCUITS" --form nodes --blocks \
    --out "$OUT" --name race_shared.md > "$OUT/race_shared.log" 2>&1 || status=1
grep '^\[race\]' "$OUT/race_shared.log" || tail -20 "$OUT/race_shared.log"
echo "[$TAG] done $(date -u +%T) status $status"
exit "$status"
