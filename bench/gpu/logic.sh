#!/usr/bin/env bash
# Issue #19 on the H100 (about 3 minutes): install pccompiler and the
# KLay + PySDD wheels, run the triton logic tests on cuda, then the race
# bench/logic_race.py (ours triton vs KLay torch, batch 128). Results in
# $OUT: logic_tests.txt, logic_race.md (table, command, machine line,
# profiles where ours misses 0.5x KLay), logic_race.log.
# Run from the repo root with .whl/ beside it: bash bench/gpu/logic.sh
TAG=logic.sh
source "$(dirname "$0")/logic_env.sh"

echo "[logic.sh] triton logic tests on cuda $(date -u +%T)"
rm -rf /tmp/t && mkdir -p /tmp/t && cp -r tests /tmp/t/
(cd /tmp/t && timeout 300 python3 -m pytest -q -p no:cacheprovider -x \
    tests/triton/test_logic_wmc.py tests/logic/test_backends_agree.py \
    --backend triton --device cuda) 2>&1 | tee "$OUT/logic_tests.txt" || status=1
[ "$status" = 0 ] || echo "[logic.sh] TESTS FAILED (see logic_tests.txt); racing anyway"

# The four shared SDDs (sudoku_4, 4-grid, seq_fun, road_r; 200 KB) are not in
# the repository: carry them as shared/data/circuits (or ../shared/...).
CIRCUITS=""
for d in shared/data/circuits ../shared/data/circuits /work/shared/data/circuits; do
    [ -f "$d/road_r.sdd" ] && CIRCUITS=$d && break
done
[ -n "$CIRCUITS" ] || { echo "[logic.sh] NO SHARED CIRCUITS FOUND: racing the generated SDD only"; CIRCUITS=/nonexistent; status=1; }
echo "[logic.sh] race (circuits: $CIRCUITS) $(date -u +%T)"
PYTHONPATH=/tmp/pcc:/tmp/extra:bench timeout 420 python3 bench/logic_race.py \
    --circuits "$CIRCUITS" --out "$OUT" --cache /tmp/logic_cache 2>&1 \
    | tee "$OUT/logic_race.log" || status=1
echo "[logic.sh] done $(date -u +%T)"
exit "$status"
