"""The triton backend: Triton kernels over a Layout (GPU, or CPU under
TRITON_INTERPRET=1 for tests).

Options (`pc.compile(..., backend="triton", name=value)`, or the options
mapping of `TritonBackend().compile`):
  device      "cuda" (default where available) or "cpu" under the interpreter
  precision   "tf32" (default), "ieee" (exact fp32 dots), "tf32x3" or "bf16"
              (bf16 operands, fp32 accumulation, in the sum-layer dots)
  cuda_graphs True (default on CUDA) to capture forward, backward and EM
              for the first batch size seen (backends/triton/graphs.py);
              False runs every launch eagerly
  compact     True (default): log-likelihoods and training run a plan whose
              dead product rows share one scratch region (scratch.py);
              False keeps the Layout's slots everywhere
  fuse_products  False (default) or True: log-likelihoods and training fold
              product partitions that only sums read into the sums' loads
              (fusion.py: no product forward launch, values never written);
              queries over every node keep the unfused plan
  persistent  "off" (default), "auto" or "on": the one-launch forward of
              small batches (backends/triton/persistent.py). auto: graphed
              queries of <= 16 rows; on: also every
              log_prob / marginal (in chunks of 16 rows); off: never. Off
              by default: on the H100 it was no faster than the layer graph
              (bench/results/latency-h100-2026-12-07.md)
  pflow       "layer" (default), "split", "fused" or "fused_split": how
              parameter flows run (pflow_launch.py): their own kernel after
              the node flows, the same with whole-block row tiles and a batch
              split that fills the GPU, inside the node-flow kernel of plain
              sum layers (bwd_pflow.py), or fused where a child block has few
              parent tiles and split elsewhere. "layer" until a GPU A/B says
              otherwise (bench/pflow_ab.py)
  autotune_batch  an int: time tile configurations of every sum partition
              shape at this batch size and record them in the Layout's
              kernel_options (backends/triton/autotune.py)
"""

from __future__ import annotations

from typing import Any, Mapping

import torch

from pccompiler.backends.compiled import CompiledCircuit
from pccompiler.backends.interface import QUERIES, Backend, Capabilities, CompileOptions
from pccompiler.backends.triton.compat import device_ok, interpreting
from pccompiler.errors import UnsupportedError
from pccompiler.ir import pcir


class TritonBackend(Backend):
    """Triton kernels; compile layouts for it with
    `compile_model(model, block_limit=TritonBackend.block_limit)`: its sum
    kernels tile rows by up to 128, so blocks below 128 recompute the
    children's exp() once per block (32-node blocks: 4x the exp work of 128)."""
    name = "triton"
    block_limit = 128
    # The engine decodes the Layout into its plans on first use, inside a
    # retained heap (engine._plan_heap) that reuses the pages a large node
    # compile leaves it (pccompiler.driver.plans_on_first_use).
    plans_on_first_use = True
    capabilities = Capabilities(
        queries=frozenset(q for q in QUERIES if q != "sgd"),   # kernels have no autograd
        devices=frozenset({"cpu", "cuda"}) if interpreting() else frozenset({"cuda"}),
        dtypes=frozenset({"float32"}))

    def compile(self, model: pcir.Model, layout: pcir.Layout,
                options: CompileOptions | Mapping[str, Any] | None = None,
                arrays: Mapping[str, Any] | None = None) -> CompiledCircuit:
        from pccompiler.backends.triton.engine import TritonEngine
        opts = CompileOptions.from_any(options)
        self.check(model, device=opts.device, dtype=opts.dtype, layout=layout)
        device = torch.device(opts.device)
        if not device_ok(device):
            raise UnsupportedError(
                f"the triton backend cannot run on {opts.device!r} here "
                f"({'interpreter: use device cpu' if interpreting() else 'needs a CUDA GPU'})")
        engine = TritonEngine(model, layout, device, torch.float32,
                              precision=str(opts.extra.get("precision", "tf32")),
                              cuda_graphs=bool(opts.extra.get("cuda_graphs", True)),
                              compact=bool(opts.extra.get("compact", True)), arrays=arrays,
                              fuse_products=opts.extra.get("fuse_products", False),
                              persistent=opts.extra.get("persistent", "off"),
                              pflow=opts.extra.get("pflow", "layer"))
        if opts.extra.get("autotune_batch"):
            from pccompiler.backends.triton.autotune import autotune
            autotune(engine, int(opts.extra["autotune_batch"]))
        return CompiledCircuit(engine, self.name, layout.pipeline, opts)


__all__ = ["TritonBackend"]
