"""Debugging aid: are the triton backend's node flows right on a GPU?

Flows of a smooth, decomposable circuit lie in [0, 1] (root flow 1), and
must equal the torch backend's on the same device. Prints, per variant of
the triton engine, the largest flow and the largest difference from torch:
  default  - as shipped
  no-store - every backward writer reads and adds (no first-writer stores)
  ieee     - fp32 dots instead of tf32
Run from the repository root: PYTHONPATH=. python bench/flows_check.py
"""
import numpy as np

import pccompiler as pc
from pccompiler.backends.torch import TorchBackend
from pccompiler.backends.triton import TritonBackend
from pccompiler.passes.manager import compile_model
from tests.triton.test_engine_e2e import _circuits


def variant(name, model, layout):
    opts = {"device": "cuda", "cuda_graphs": False}
    if name == "ieee":
        opts["precision"] = "ieee"
    cc = TritonBackend().compile(model, layout, opts)
    if name == "no-store":
        plan = cc.engine.plan
        for layer in plan.layers:
            for part in list(layer.sum_backwards) + list(layer.products):
                part.store = False
        plan.zero_all = True
    return cc


build, x = _circuits()["hclt"]
res = compile_model(pc.lower(build()), block_limit=32, backend="triton")
tor = TorchBackend().compile(res.model, res.layout, {"device": "cuda"})
for b in (3, 64, 200):
    xb = x[:b]
    want = tor.flows(xb).cpu().numpy()
    for name in ("default", "no-store", "ieee"):
        try:
            cc = variant(name, res.model, res.layout)
            got = cc.flows(xb).cpu().numpy()
            print(f"batch {b:4d} {name:9s} max flow {got.max():.4f}  max |diff| vs torch "
                  f"{np.abs(got - want).max():.2e}" if got.shape == want.shape else "shape differs")
        except Exception as exc:  # noqa: BLE001 - a diagnostic prints every outcome
            print(f"batch {b} {name}: {type(exc).__name__}: {exc}")
