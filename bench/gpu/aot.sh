#!/usr/bin/env bash
# Issue #16 A on the H100 (triton 3.6): AOT kernels in the .pcc, zero JIT compilations.
#   1. build an sm_90 artifact here, then load it in a fresh process with an
#      empty Triton cache: forward / backward / EM, printing the compilations
#      (must be 0, else each one with its kernel name and cache hash) and times,
#      for kernels=True (built into the JIT's memory at load: 0 cache hits too),
#      "cache" (the file-cache path before aot/install.py) and "preload"
#   2. the mismatch path: bench/gpu/data/aot_dense_sm90_triton390.pcc was
#      cross-compiled with triton 3.9 on a CPU machine: one warning, still runs
#      (regenerate it after a container-format change, on the CPU machine, with
#      .venv/bin/python bench/gpu/make_mismatch_artifact.py)
#   3. the GPU pytest (tests/triton/test_aot_gpu.py)
#   4. bench/aot.py cold-start table for hclt32 (AOT_ALL=1: pd128, hmm1024, bsp050 too;
#      AOT_HCLT512=1 adds hclt512, AOT_PYJUICE=1 PyJuice; each case costs a minute or more,
#      so run those as a second call with AOT_BENCH_ONLY=1, which skips steps 1-3;
#      AOT_PROFILE=1 writes a cProfile of one load -> first LL of each aot_host arm (install,
#      "cache", "preload") per case; AOT_REPEATS=N (default 3) alternating runs of those arms)
#   AOT_NOGC=1 adds the arm aot_host_nogc: aot_host with the cyclic GC paused over load (bench/aot.py GcClock)
# Usage (repo root): OUT=/some/dir bash bench/gpu/aot.sh      (about 3-4 minutes)
#   second call:    OUT=... AOT_BENCH_ONLY=1 AOT_ALL=1 AOT_PYJUICE=1 AOT_BENCH_TIMEOUT=540 bash bench/gpu/aot.sh
# The table is rewritten after every case, so a timeout still returns the finished rows.
set -euo pipefail
OUT=${OUT:?set OUT to an empty folder}
T0=$(date +%s)
step() { echo "=== [$(( $(date +%s) - T0 )) s] $*"; }
unset TRITON_INTERPRET
rm -rf /tmp/pcc && python3 -m pip install -q --no-index --no-deps --no-build-isolation --target /tmp/pcc .
export PYTHONPATH=/tmp/pcc:bench
# the repository root holds a pccompiler/ folder without ir/: never let the
# working directory shadow the installed package (stdin scripts, -m)
export PYTHONSAFEPATH=1
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$OUT/machine.txt"
python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)" | tee -a "$OUT/machine.txt"

if [ "${AOT_BENCH_ONLY:-0}" != 1 ]; then
step "1. build an sm_90 artifact (hclt32, batch 512) and load it in a fresh process, empty cache"
WORK=$(mktemp -d)
python3 - "$WORK/hclt32.pcc" <<'PY' 2>&1 | tee "$OUT/aot_build.txt"
import sys, time, pccompiler
from race_cases import all_cases
from pccompiler.backends.triton.aot.target import current_target, target_name
model = all_cases()["hclt32"].build()
t = time.perf_counter()
c = pccompiler.compile(model, backend="triton", target=target_name(current_target()),
                       batch_sizes=[512], data_dtypes=["int64", "uint8"])
print(f"built {len(c.aot_kernels[0]['kernels'])} kernels for {c.aot_kernels[0]['target']} "
      f"in {time.perf_counter() - t:.1f} s")
c.save(sys.argv[1])
PY
python3 -m pccompiler.cli.main dump --kernels "$WORK/hclt32.pcc" | head -5
python3 -m pccompiler.cli.main verify "$WORK/hclt32.pcc"
python3 - "$WORK/hclt32.pcc" <<'PY' | tee -a "$OUT/aot_build.txt"
import sys
from pccompiler.ir.artifact import read_pcc
m = read_pcc(sys.argv[1]).manifest
kernel_sections = [e for e in m["sections"] if e["name"].startswith("kernels/")]
print(f"container v{m['container_version']}: {len(m['sections'])} sections, "
      f"{len(kernel_sections)} of them kernel files")
PY
for MODE in int64:1 uint8:1 int64:cache int64:preload; do
DT=${MODE%%:*}; KM=${MODE##*:}
TRITON_CACHE_DIR="$WORK/cache_${DT}_$KM" python3 - "$WORK/hclt32.pcc" "$DT" "$KM" <<'PY' 2>&1 | tee -a "$OUT/aot_load.txt"
import sys, time, torch, pccompiler
from pccompiler.backends.triton.aot import CompileCounter
dtype = getattr(torch, sys.argv[2])
from pccompiler.backends.triton.aot.record import all_kernels
kernels = True if sys.argv[3] == "1" else sys.argv[3]
x = torch.randint(0, 256, (512, 784), generator=torch.Generator().manual_seed(0)).to(dtype).cuda()
torch.cuda.synchronize()
with CompileCounter() as c:
    t0 = time.perf_counter(); circuit = pccompiler.load(sys.argv[1], kernels=kernels)
    t_load = time.perf_counter()
    dev = torch.cuda.current_device()
    in_memory = sum(len(fn.device_caches.get(dev, ({},))[0]) for fn in all_kernels())
    ll = circuit.log_prob(x); torch.cuda.synchronize(); t1 = time.perf_counter()
    circuit.em_step(x, step_size=0.1, pseudocount=0.1); torch.cuda.synchronize(); t2 = time.perf_counter()
    circuit.flows(x); torch.cuda.synchronize()
print(f"data {sys.argv[2]}, kernels={kernels}: load {t_load - t0:.2f} s, load->LL {t1 - t0:.2f} s, "
      f"load->EM {t2 - t0:.2f} s, mean LL {ll.mean():.3f}; "
      f"compilations {len(c.compiled)} (cache hits {c.hits}, in the JIT's memory at load "
      f"{in_memory})")
for name, h in c.compiled:
    print(f"  NOT PREDICTED: {name} {h}")
PY
done
if grep -q "compilations [1-9]" "$OUT/aot_load.txt" || ! grep -q "compilations 0 " "$OUT/aot_load.txt"; then
  echo "FAIL: an AOT load compiled kernels (NOT PREDICTED lines above)"; fi

step "2. mismatch: an artifact cross-compiled with triton 3.9 on a CPU machine"
TRITON_CACHE_DIR="$WORK/cache_mm" python3 - bench/gpu/data/aot_dense_sm90_triton390.pcc <<'PY' 2>&1 | tee "$OUT/aot_mismatch.txt"
import sys, warnings, torch, pccompiler
from pccompiler.backends.triton.aot import CompileCounter, KernelMismatchWarning
x = torch.randint(0, 3, (24, 4), generator=torch.Generator().manual_seed(0)).cuda()
with warnings.catch_warnings(record=True) as w, CompileCounter() as c:
    warnings.simplefilter("always")
    circuit = pccompiler.load(sys.argv[1])
    ll = circuit.log_prob(x); circuit.em_step(x); torch.cuda.synchronize()
mm = [str(m.message) for m in w if issubclass(m.category, KernelMismatchWarning)]
print("warnings:", *mm, sep="\n  ")
ref = pccompiler.load(sys.argv[1], backend="torch", device="cpu", kernels=False).log_prob(x.cpu())
print(f"mismatch path: {len(mm)} warning(s), {len(c.compiled)} compilations, "
      f"max |LL - torch| {float((ll.cpu() - ref).abs().max()):.2e}")
assert len(mm) == 1, "expected exactly one KernelMismatchWarning"
PY

step "3. pytest (GPU zero-compilation test + CPU artifact tests)"
rm -rf /tmp/t && mkdir -p /tmp/t && cp -r tests /tmp/t/
(cd /tmp/t && PYTHONPATH=/tmp/pcc timeout 150 python3 -m pytest -q -p no:cacheprovider -s \
    tests/triton/test_aot_gpu.py --backend triton --device cuda) \
    2>&1 | tail -25 | tee "$OUT/aot_pytest.txt" || true
fi

step "4. bench/aot.py"
CASES=${AOT_CASES:-hclt32}     # AOT_CASES: the first case(s), e.g. pd128 to skip hclt32
[ "${AOT_ALL:-0}" = 1 ] && CASES="$CASES,pd128,hmm1024,bsp050"
[ "${AOT_HCLT512:-0}" = 1 ] && CASES="$CASES,hclt512"
EXTRA=""
if [ "${AOT_PYJUICE:-0}" = 1 ]; then
  python3 -m pip install -q --no-index --no-deps --target /tmp/extra .whl/pyjuice*.whl
  # only PyJuice's child gets /tmp/extra on its path, so our rows run as without --pyjuice
  # (session 17's hclt32 aot_host load, with it on every child's path: 0.36 s against
  # session 16's 0.23 s without; whether the path is the cause is not known)
  export AOT_PYJUICE_PATH=/tmp/extra; EXTRA=--pyjuice
fi
# AOT_PROFILE=1: one more load -> first LL per aot_host arm and case under cProfile ($OUT/profile_*.txt)
[ "${AOT_PROFILE:-0}" = 1 ] && EXTRA="$EXTRA --profile $OUT"
timeout ${AOT_BENCH_TIMEOUT:-240} python3 bench/aot.py --cases "$CASES" --batch 512 \
    --repeats "${AOT_REPEATS:-3}" $EXTRA \
    --out "$OUT/aot-h100.md" --json "$OUT/aot-h100.json" 2>&1 | tail -30 || echo "FAIL: bench/aot.py"
step "done"
