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
