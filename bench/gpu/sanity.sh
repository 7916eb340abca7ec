#!/usr/bin/env bash
# The default kernel path on cuda, first in a session (about 2 minutes): the
# conformance suite with --backend triton (layer kernels, categorical inputs
# through io_kernels) for log_prob, marginal and EM, so a broken default path
# shows before the long benchmarks spend the device time. Results in $OUT:
# conformance.txt (pytest -rs output) and machine.txt.
#   bash bench/gpu/sanity.sh
set -uo pipefail
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$OUT/machine.txt"
python3 -c 'import torch, triton, numpy, google.protobuf as pb; print("torch", torch.__version__, "triton", triton.__version__, "numpy", numpy.__version__, "protobuf", pb.__version__)' | tee -a "$OUT/machine.txt"
rm -rf /tmp/pcc
python3 -m pip install -q --no-index --no-deps --no-build-isolation --target /tmp/pcc . || exit 1
rm -rf /tmp/t && mkdir -p /tmp/t && cp -r tests /tmp/t/
(cd /tmp/t && PYTHONPATH=/tmp/pcc timeout "${SANITY_TIMEOUT:-120}" python3 -m pytest -q -p no:cacheprovider -rs \
    tests/conformance -k "log_prob or marginal or em" --backend triton --device cuda) \
    > "$OUT/conformance.txt" 2>&1
status=$?
tail -5 "$OUT/conformance.txt"
exit "$status"
