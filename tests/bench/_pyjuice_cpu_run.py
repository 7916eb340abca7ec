"""Run a Model through PyJuice 2.6.3 on the CPU (a subprocess of the tests).

PyJuice 2.6.3 only compiles and runs on CUDA. Its Triton kernels do run under
TRITON_INTERPRET=1 on CPU tensors, so this script patches four things, in
this process only (the tests run it with subprocess so pytest's own process
is never patched):
  * `torch.cuda.device(...)` -> a null context (compile enters it),
  * `torch.Tensor.cuda()` -> identity (compile moves index tensors with it),
  * `tlmath` (libdevice) in PyJuice's kernel modules -> tl-based log1p /
    pow / ceil, which the interpreter can run,
  * the input layers' `device` -> the string "cpu" with `.type` "cuda", because
    `InputLayer.forward` refuses any other device type before launching its
    (interpretable) Triton kernel.
Nothing else of PyJuice is touched: compile, forward, backward and
MiniBatchEM are PyJuice's own code.

usage: _pyjuice_cpu_run.py MODEL.pcir:DATA.npy:OUT.npz ... [--em STEP PSEUDOCOUNT]
Each OUT holds `ll` (per-sample log-likelihood before any update), `edges`
(PyJuice's compiled `num_edges`) and, with --em, `ll_after` (after one
forward/backward/MiniBatchEM step on the same batch).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys

import numpy as np
import torch

os.environ.setdefault("TRITON_INTERPRET", "1")
torch.cuda.device = lambda *args, **kwargs: contextlib.nullcontext()
torch.cuda.current_device = lambda: 0
torch.Tensor.cuda = lambda self, *args, **kwargs: self

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "bench"))

import pyjuice as juice  # noqa: E402
import triton.language as tl  # noqa: E402
from pccompiler import ir  # noqa: E402
from pyjuice_bridge import convert  # noqa: E402


class _InterpretableMath:
    """Stands in for `tl.extra.cuda.libdevice`, which the Triton interpreter
    does not emulate; PyJuice's kernels use only these three functions."""
    log1p = staticmethod(lambda x: tl.log(1.0 + x))
    pow = staticmethod(lambda x, y: tl.exp(y * tl.log(x)))
    ceil = staticmethod(lambda x: tl.ceil(x))


def _patch_libdevice() -> None:
    for name, module in list(sys.modules.items()):
        if name.startswith("pyjuice") and hasattr(module, "tlmath"):
            module.tlmath = _InterpretableMath


class _CudaLikeDevice(str):
    """The string "cpu" (which torch accepts as a device) whose `.type` says
    "cuda", so PyJuice's input layers launch their Triton kernels."""
    type = "cuda"
    index = None


def run_one(model_path: str, data_path: str, out_path: str, em, max_block_size: int) -> None:
    model = ir.load(model_path)
    x = torch.from_numpy(np.load(data_path)).long()
    root = convert(model, max_block_size).root
    pc = juice.compile(root, device=0, verbose=False)
    pc.to("cpu")
    for layer in pc.input_layer_group:
        layer.device = _CudaLikeDevice("cpu")
    out = {"edges": np.array(pc.num_edges)}
    with torch.no_grad():
        out["ll"] = pc(x)[:, 0].double().numpy()
    if em:
        opt = juice.optim.MiniBatchEM(pc, step_size=em[0], pseudocount=em[1])
        lls = pc(x)
        lls.mean().backward()
        opt.step()
        with torch.no_grad():
            out["ll_after"] = pc(x)[:, 0].double().numpy()
    np.savez(out_path, **out)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("jobs", nargs="+", help="MODEL.pcir:DATA.npy:OUT.npz")
    ap.add_argument("--em", nargs=2, type=float, metavar=("STEP", "PSEUDOCOUNT"))
    ap.add_argument("--max-block-size", type=int, default=1024)
    args = ap.parse_args()
    _patch_libdevice()
    for job in args.jobs:
        run_one(*job.split(":"), args.em, args.max_block_size)
    return 0


if __name__ == "__main__":
    sys.exit(main())
