# Sourced by the bench/gpu/*.sh scripts of issue #18: $OUT, the GPU line, our
# package in /tmp/pcc and the PyJuice wheel (when carried) in /tmp/extra on PYTHONPATH.
set -euo pipefail
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
rm -rf /tmp/pcc /tmp/extra
python3 -m pip install -q --no-index --no-deps --no-build-isolation --target /tmp/pcc .
# PyJuice only where its wheel was carried: SKIP_PYJUICE=1 runs need no .whl/
if compgen -G ".whl/pyjuice-2.6.3*.whl" > /dev/null; then
    python3 -m pip install -q --no-index --no-deps --target /tmp/extra .whl/pyjuice-2.6.3*.whl
elif [ "${SKIP_PYJUICE:-0}" != 1 ]; then
    echo "common.sh: no .whl/pyjuice-2.6.3*.whl (carry .whl, or set SKIP_PYJUICE=1)" >&2
    exit 1
fi
export PYTHONPATH=/tmp/pcc:/tmp/extra:bench
