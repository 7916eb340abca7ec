#!/usr/bin/env bash
# Issue #19 point 2 on the GPU machine (about 4 minutes): the node form of
# SDDs (pc.from_sdd(form="nodes")) against the group form.
#  1. tests/logic/test_nodes.py with the triton backend on cuda;
#  2. bench/logic_race.py twice (ours triton, --form groups / --form nodes,
#     against KLay): file->exe and WMC fwd / fwd+bwd on the four shared SDDs
#     and the 100-block random SDD;
#  3. bench/logic_scale.py on the machine's CPU (16 cores, quieter than the
#     2-core development box): import / passes / backend / first forward of
#     both forms and KLay, shared SDDs and the 100-block SDD.
# Results in $OUT: nodes_tests.txt, race_groups.md, race_nodes.md,
# scale_cpu.md (each with its command and machine line), *.log.
# Run from the repo root with .whl/ beside it: bash bench/gpu/logic_nodes.sh
TAG=logic_nodes.sh
source "$(dirname "$0")/logic_env.sh"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$OUT/machine.txt"

CIRCUITS=""
for d in shared/data/circuits ../shared/data/circuits /work/shared/data/circuits; do
    [ -f "$d/road_r.sdd" ] && CIRCUITS=$(cd "$d" && pwd) && break
done
[ -n "$CIRCUITS" ] || { echo "[logic_nodes.sh] NO SHARED CIRCUITS FOUND (carry shared/data/circuits)"; CIRCUITS=/nonexistent; status=1; }
# the tests find the shared circuits under $PCC_DATA_DIR/circuits (tests/logic/circuits.py)
export PCC_DATA_DIR=$(dirname "$CIRCUITS")

echo "[logic_nodes.sh] node-form tests, triton on cuda $(date -u +%T)"
rm -rf /tmp/t && mkdir -p /tmp/t && cp -r tests /tmp/t/
(cd /tmp/t && timeout "${NODES_TEST_TIMEOUT:-240}" python3 -m pytest -q -p no:cacheprovider -x \
    tests/logic/test_nodes.py --backend triton --device cuda) 2>&1 \
    | tee "$OUT/nodes_tests.txt" || status=1
[ "$status" = 0 ] || echo "[logic_nodes.sh] TESTS FAILED (see nodes_tests.txt); benchmarking anyway"

for form in groups nodes; do
    echo "[logic_nodes.sh] race, $form form $(date -u +%T)"
    PYTHONPATH=/tmp/pcc:/tmp/extra:bench timeout "${NODES_RACE_TIMEOUT:-200}" python3 bench/logic_race.py \
        --circuits "$CIRCUITS" --form "$form" --blocks 100 --out "$OUT" \
        --name "race_$form.md" --cache /tmp/logic_cache 2>&1 \
        | tee "$OUT/race_$form.log" || status=1
done

echo "[logic_nodes.sh] CPU scale, both forms and KLay $(date -u +%T)"
SCALE="logic_scale.py --shared --circuits $CIRCUITS --blocks 100 --cache /tmp/logic_cache --repeat 3"
(cd bench && PYTHONPATH=/tmp/pcc:/tmp/extra:. timeout "${NODES_SCALE_TIMEOUT:-150}" python3 $SCALE --out "$OUT/scale_cpu.md") \
    2>&1 | tee "$OUT/scale_cpu.log" || status=1
[ -f "$OUT/scale_cpu.md" ] && { echo; echo "Command: cd bench && PYTHONPATH=/tmp/pcc:/tmp/extra:. python3 $SCALE"; } \
    >> "$OUT/scale_cpu.md"
echo "[logic_nodes.sh] done $(date -u +%T)"
exit "$status"
