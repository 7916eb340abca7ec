# Sourced by the bench/gpu/*.sh scripts of issue #18: $OUT, the GPU line, our
# package in /tmp/pcc and the PyJuice wheel in /tmp/extra on PYTHONPATH.
set -euo pipefail
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
rm -rf /tmp/pcc /tmp/extra
python3 -m pip install -q --no-index --no-deps --no-build-isolation --target /tmp/pcc .
python3 -m pip install -q --no-index --no-deps --target /tmp/extra .whl/pyjuice-2.6.3*.whl
export PYTHONPATH=/tmp/pcc:/tmp/extra:bench
