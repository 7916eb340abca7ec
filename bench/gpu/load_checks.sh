#!/usr/bin/env bash
# Issue #16 on the H100 host: what `pccompiler.load` spends on the host-side
# checks after the vectorised checkers (branch loadfast), on a quiet 16-core
# CPU, then load -> first log-likelihood on the GPU (bench/aot.py through
# bench/gpu/aot.sh, target <= 0.5 s for hclt32), about 3-4 minutes:
#   1. bench/load_checks.py on hclt32 (wall and CPU clocks; LOAD_CHECKS_HCLT512=1: hclt512 too):
#      read / model check / layout check / hash / backend (torch, cpu) / first load
#      -> $OUT/load_checks_{hclt32_wall,hclt32_cpu,hclt512}.md
#   2. AOT_BENCH_ONLY=1 bash bench/gpu/aot.sh: the cold-start table for hclt32 -> $OUT/aot/
#   3. the checker tests (tests/ir) -> $OUT/tests.txt
# Every step runs even if an earlier one failed; the script exits 1 if any did.
# Run from the repository root:  OUT=/some/folder bash bench/gpu/load_checks.sh
# (LOAD_CHECKS_SKIP_GPU=1 skips step 2.)
# common.sh: $OUT, the GPU line, our package in /tmp/pcc (and PyJuice's wheel) on PYTHONPATH
source bench/gpu/common.sh
set +e                       # every step runs; failures are listed at the end
export PYTHONSAFEPATH=1      # the repository's pccompiler/ folder must not shadow /tmp/pcc
python3 -c "import torch, os, platform; print('torch', torch.__version__, 'cpus', os.cpu_count())" \
    | tee "$OUT/machine.txt"
T0=$(date +%s)
FAILED=""
say() { echo "[load_checks $(( $(date +%s) - T0 ))s] $*"; }
failed() { [ "$1" -eq 0 ] || { FAILED="$FAILED $2"; echo "!!! FAILED: $2 (exit $1)"; }; }

say "1/3 load checks, hclt32 (wall, then CPU clock) and hclt512"
timeout 60 python3 bench/load_checks.py --cases hclt32 --repeats 15 \
    --out "$OUT/load_checks_hclt32_wall.md" 2>&1 | tee "$OUT/load_checks_hclt32_wall.log"
failed "${PIPESTATUS[0]}" "load_checks hclt32 wall"
timeout 60 python3 bench/load_checks.py --cases hclt32 --repeats 15 --clock cpu \
    --out "$OUT/load_checks_hclt32_cpu.md" 2>&1 | tee "$OUT/load_checks_hclt32_cpu.log"
failed "${PIPESTATUS[0]}" "load_checks hclt32 cpu"
if [ "${LOAD_CHECKS_HCLT512:-0}" = 1 ]; then     # about 2 more minutes
    timeout 150 python3 bench/load_checks.py --cases hclt512 --repeats 3 \
        --out "$OUT/load_checks_hclt512.md" 2>&1 | tee "$OUT/load_checks_hclt512.log"
    failed "${PIPESTATUS[0]}" "load_checks hclt512"
fi

if [ "${LOAD_CHECKS_SKIP_GPU:-0}" != 1 ]; then
    say "2/3 load -> first log-likelihood on the GPU (aot.sh, bench only, hclt32)"
    mkdir -p "$OUT/aot"
    OUT="$OUT/aot" AOT_BENCH_ONLY=1 timeout 260 bash bench/gpu/aot.sh 2>&1 | tail -40
    failed "${PIPESTATUS[0]}" "aot.sh"
fi

say "3/3 checker tests"
rm -rf /tmp/t && mkdir -p /tmp/t && cp -r tests /tmp/t/
(cd /tmp/t && env -u PYTHONSAFEPATH PYTHONPATH=/tmp/pcc timeout 120 python3 -m pytest -q -p no:cacheprovider \
    tests/ir tests/robustness/test_hostile_files.py 2>&1 | tail -5) | tee "$OUT/tests.txt"
failed "${PIPESTATUS[0]}" "tests"

say "done"
cat "$OUT"/load_checks_*.md
if [ -n "$FAILED" ]; then echo "FAILED:$FAILED"; exit 1; fi
