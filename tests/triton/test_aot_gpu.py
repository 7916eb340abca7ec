"""On a CUDA GPU: an artifact built with `target=` for this GPU loads in a
fresh process with an empty Triton cache and runs its first log-likelihood,
flows and EM step with zero Triton compilations (issue #16 A).

Compilations are counted with Triton's `knobs.compilation.listener`
(backends/triton/aot/count.py), which sees every `triton.compile`: a cache
hit or a run of the compiler stages. Any miss is printed with its kernel
name and cache hash, so a specialization the dry run did not predict shows.
With the default kernels=True every stored kernel is in the JIT's in-memory
cache when load returns (aot/install.py), so there is no `triton.compile`
call at all, not even a cache hit, and kernels="preload" has them loaded
into the GPU as well; kernels="cache" (the file-cache path) has one hit
per kernel launched.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from pccompiler.ir.artifact import read_pcc
from tests.factories import small_block_sparse_model, small_dense_model

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

CHILD = r"""
import json, sys, torch, pccompiler
from pccompiler.backends.triton.aot import CompileCounter
from pccompiler.backends.triton.aot.record import all_kernels
path, batch = sys.argv[1], int(sys.argv[2])
kernels = {"0": False, "1": True}.get(sys.argv[3], sys.argv[3])
x = torch.randint(0, 3, (batch, 4), generator=torch.Generator().manual_seed(0)).cuda()
with CompileCounter() as c:
    circuit = pccompiler.load(path, kernels=kernels)
    dev = torch.cuda.current_device()     # .get: reading must not create a cache
    at_load = [k for fn in all_kernels() for k in fn.device_caches.get(dev, ({},))[0].values()]
    in_memory = len(at_load)
    loaded = sum(getattr(k, "function", None) is not None for k in at_load)  # on the GPU
    ll = circuit.log_prob(x)
    circuit.em_step(x, step_size=0.5)
    ll2 = circuit.log_prob(x)
    circuit.flows(x)
    torch.cuda.synchronize()
print("RESULT " + json.dumps({"compiled": c.compiled, "hits": c.hits, "in_memory": in_memory,
                              "loaded": loaded,
                              "ll": ll.double().cpu().tolist(), "ll2": ll2.double().cpu().tolist()}))
"""


def _run(path: str, batch: int, kernels: bool | str, cache: str) -> dict:
    env = dict(os.environ, TRITON_CACHE_DIR=cache)
    mode = {True: "1", False: "0"}.get(kernels, kernels)
    proc = subprocess.run([sys.executable, "-c", CHILD, path, str(batch), mode],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT "))
    return json.loads(line[len("RESULT "):])


@pytest.mark.parametrize("make", [small_dense_model, small_block_sparse_model])
def test_aot_artifact_loads_with_zero_compilations(make, tmp_path):
    import pccompiler
    from pccompiler.backends.triton.aot.target import current_target, target_name
    batch = 24
    model = make()
    assert [v.num_cats for v in model.variables] == [3] * 4
    circuit = pccompiler.compile(model, backend="triton", target=target_name(current_target()),
                                 batch_sizes=[batch], data_dtypes=["int64"])
    path = str(tmp_path / "m.pcc")
    circuit.save(path)
    stored = len(read_pcc(path).manifest["kernels"]["kernels"])
    aot = _run(path, batch, True, str(tmp_path / "cache_aot"))
    if aot["compiled"]:
        print("not predicted (kernel, cache hash):", *aot["compiled"], sep="\n  ")
    # in memory at load: no triton.compile call, not even a cache hit
    assert aot["compiled"] == [] and aot["hits"] == 0 and aot["in_memory"] == stored
    assert aot["loaded"] == 0            # each is loaded into the GPU by its first launch
    cached = _run(path, batch, "cache", str(tmp_path / "cache_file"))
    assert cached["compiled"] == [] and 0 < cached["hits"] <= stored
    assert cached["in_memory"] == 0
    pre = _run(path, batch, "preload", str(tmp_path / "cache_pre"))   # all loaded at load
    assert pre["compiled"] == [] and pre["hits"] == 0
    assert pre["in_memory"] == pre["loaded"] == stored
    jit = _run(path, batch, False, str(tmp_path / "cache_jit"))
    assert len(jit["compiled"]) > 0 and jit["hits"] == 0
    for run in (aot, cached):
        torch.testing.assert_close(torch.tensor(run["ll"]), torch.tensor(jit["ll"]))
        torch.testing.assert_close(torch.tensor(run["ll2"]), torch.tensor(jit["ll2"]))
