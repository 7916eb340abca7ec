# Sourced by bench/gpu/logic*.sh: $OUT, our package in /tmp/pcc and the KLay
# and PySDD wheels (.whl/, carried beside the repository) in /tmp/extra, both
# on PYTHONPATH; `status` starts at 0. $TAG names the calling script in logs.
set -euo pipefail
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
status=0
echo "[$TAG] install $(date -u +%T)"
rm -rf /tmp/pcc /tmp/extra
python3 -m pip install -q --no-index --no-deps --no-build-isolation --target /tmp/pcc .
python3 -m pip install -q --no-index --no-deps --target /tmp/extra .whl/klaycircuits*.whl \
    .whl/pysdd*.whl
export PYTHONPATH=/tmp/pcc:/tmp/extra
python3 -c "import klay, pysdd.sdd, pccompiler; print('[$TAG] imports ok')"

# The folder of the four shared SDDs (carried as shared/data/circuits), or nothing.
shared_circuits() {
    local d
    for d in shared/data/circuits ../shared/data/circuits /work/shared/data/circuits; do
        if [ -f "$d/road_r.sdd" ]; then (cd "$d" && pwd); return 0; fi
    done
    return 0
}
