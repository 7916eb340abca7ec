#!/usr/bin/env bash
# Issue #19's ~10^6-node SDD in the logic race (about 8 minutes, one call): PySDD makes the
# 1,000-block random SDD (1.46M SDD nodes; about 5 minutes, single-threaded, so it starts
# first and in the background), the four shared SDDs are raced meanwhile (layer path, nodes
# form, against KLay eager), then the big one in the nodes form against KLay.
# A prebuilt shared/logic_cache/blocks<N>_v20_s0.sdd.xz (or .gz) with its .vtree (carried) skips the build.
# Results in $OUT: race_shared.md/.log, race_million.md/.log, sdd.log, machine.txt.
#   bash bench/gpu/logic_million.sh         (BLOCKS=700 for a smaller "million")
TAG=logic_million.sh
source "$(dirname "$0")/logic_env.sh"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$OUT/machine.txt"
BLOCKS=${BLOCKS:-1000}
CIRCUITS=$(cd shared/data/circuits 2>/dev/null && pwd) \
    || { echo "[$TAG] NO SHARED CIRCUITS (carry shared)"; exit 1; }
export PYTHONPATH=/tmp/pcc:/tmp/extra:bench
PREBUILT=$(ls shared/logic_cache/blocks${BLOCKS}_v20_s0.sdd.{xz,gz} 2>/dev/null | head -1 || true)  # made off the device by logic_sdds.sdd_file
if [ -n "$PREBUILT" ]; then
    echo "[$TAG] unpacking the prebuilt ${BLOCKS}-block SDD $PREBUILT $(date -u +%T)"
    mkdir -p /tmp/logic_cache
    cp shared/logic_cache/blocks${BLOCKS}_v20_s0.vtree /tmp/logic_cache/
    python3 -c "import gzip, lzma, shutil, sys; op = lzma.open if sys.argv[1].endswith('.xz') else gzip.open; \
        shutil.copyfileobj(op(sys.argv[1], 'rb'), open(sys.argv[2], 'wb'), 1 << 24)" \
        "$PREBUILT" /tmp/logic_cache/blocks${BLOCKS}_v20_s0.sdd > "$OUT/sdd.log" 2>&1 &
else
echo "[$TAG] building the ${BLOCKS}-block SDD in the background $(date -u +%T)"
(cd bench && timeout 420 python3 -c "import sys; from pathlib import Path; import logic_sdds; \
    logic_sdds.sdd_file(int(sys.argv[1]), Path('/tmp/logic_cache'))" "$BLOCKS") \
    > "$OUT/sdd.log" 2>&1 &
fi
build=$!
timeout 120 python3 bench/logic_race.py --circuits "$CIRCUITS" --form nodes --blocks \
    --out "$OUT" --name race_shared.md > "$OUT/race_shared.log" 2>&1 || status=1
grep '^\[race\]' "$OUT/race_shared.log" || true
wait "$build" || { echo "[$TAG] SDD BUILD FAILED"; cat "$OUT/sdd.log"; exit 1; }
cat "$OUT/sdd.log"
echo "[$TAG] race of the ${BLOCKS}-block SDD $(date -u +%T)"
timeout 200 python3 bench/logic_race.py --circuits /tmp/no-shared --form nodes --blocks "$BLOCKS" \
    --cache /tmp/logic_cache --iters 10 --out "$OUT" --name race_million.md \
    > "$OUT/race_million.log" 2>&1 || status=1
grep '^\[race\]' "$OUT/race_million.log" || true
echo "[$TAG] done $(date -u +%T)"
exit "$status"
