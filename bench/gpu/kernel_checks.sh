#!/usr/bin/env bash
# The kernel paths that have run only under the interpreter, on cuda, in one
# short call (<= 3 minutes): the row tiles' node flows (tile_flows.py, on by
# default since 2026-12-07), the pruned_tiles conformance circuit, and
# fuse_products (off by default until this passes). Use it when the device
# budget is too small for sparse_tiles.sh + fuse.sh.
#   OUT=/out bash bench/gpu/kernel_checks.sh      -> $OUT/kernel_checks.txt
# Then, when SPEED=1 and time is left, the pruned step at keep 1 and 0.1 only
# (bench/sparse_speed.py, needs PCC_DATA_DIR with mnist/).
set -uo pipefail
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$OUT/machine.txt"
python3 -c 'import torch, triton; print("torch", torch.__version__, "triton", triton.__version__)' | tee -a "$OUT/machine.txt"
rm -rf /tmp/pcc /tmp/extra /tmp/t
python3 -m pip install -q --no-index --no-deps --no-build-isolation --target /tmp/pcc . || exit 1
mkdir -p /tmp/t && cp -r tests /tmp/t/
(cd /tmp/t && PYTHONPATH=/tmp/pcc timeout 150 python3 -m pytest -q -p no:cacheprovider -rs \
    tests/triton/test_tile_flows.py tests/triton/test_row_tiles_triton.py \
    tests/triton/test_fuse_products.py --device cuda) > "$OUT/kernel_checks.txt" 2>&1
rc=$?
tail -8 "$OUT/kernel_checks.txt"
(cd /tmp/t && PYTHONPATH=/tmp/pcc timeout 60 python3 -m pytest -q -p no:cacheprovider \
    tests/conformance/test_conformance.py -k "pruned_tiles or tile" --backend triton --device cuda) \
    > "$OUT/conformance_tiles.txt" 2>&1
rc2=$?
tail -3 "$OUT/conformance_tiles.txt"
# the leaf log-probability helpers shared by io_kernels and the persistent kernel
(cd /tmp/t && PYTHONPATH=/tmp/pcc timeout 120 python3 -m pytest -q -p no:cacheprovider \
    tests/triton/test_io_kernels.py tests/triton/test_persistent.py --device cuda) \
    > "$OUT/leaf_kernels.txt" 2>&1
rc3=$?
tail -3 "$OUT/leaf_kernels.txt"
if [[ "${SPEED:-0}" == 1 ]]; then
    python3 -m pip install -q --no-index --no-deps --target /tmp/extra .whl/pyjuice-2.6.3*.whl
    PYTHONPATH=/tmp/pcc:/tmp/extra:bench timeout --signal=INT 150 python3 -u bench/sparse_speed.py \
        --latents 128 --keeps 1,0.1 --no-permute --ab before --no-pyjuice --out "$OUT" 2>&1 | tail -15
fi
[[ $rc -eq 0 && $rc2 -eq 0 && $rc3 -eq 0 ]]
