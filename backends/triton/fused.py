"""When the engine runs a circuit in one launch, and the launches themselves.

A small circuit's forward is bound by its layer count, not by its work:
road_r (237 SDD nodes) is 41 layers and 67 launches of ~2 us each even
inside a CUDA graph, and a backward adds about twice that. The fused
kernels (fused_kernels.py) walk the whole plan (fused_plan.py) in one
launch per pass, each program owning a slice of the batch.

The rule (`choose`), for `fused="auto"` (opt-in: the default is False
until bench/gpu/fused.sh has measured where one launch wins on the H100;
the kernels have been cross-compiled for sm_90 and run under the
interpreter, not yet on a GPU):

* only on CUDA: under the interpreter the per-layer kernels stay the
  default, so the suite keeps testing them (tests force `fused=True`);
* every input partition is a distribution the kernel knows (categorical,
  Bernoulli, Gaussian; soft evidence: categorical of at most
  MAX_SOFT_CATS categories);
* the circuit is small: at most FUSED_MAX_EDGES edges (sum edges at the
  padded fan-in) and FUSED_MAX_ROWS nodes. Each program walks every edge
  of the circuit for its samples, one tile of rows at a time, so the time
  grows with the edge count while the layer-by-layer path spreads a big
  layer over the whole GPU; 2^16 edges is about 3x the largest shared
  logic circuit (seq_fun, 18,862 edges in 87 layers) and well under the
  110,879-node SDD (about 300,000 edges), which stays layer by layer;
* no node has more than FUSED_MAX_FAN_IN children: a tile walks its
  largest fan-in one child pair after another (dependent gathers of about
  a microsecond each), where the layer path splits a long child list
  over many programs (split-K).

`fused=True` forces the path (UnsupportedError when a partition kind is
not supported), `fused=False` turns it off; the option is the backend's
(`pc.compile(..., backend="triton", fused=...)`) and can be changed later
on the engine (`circuit.engine.fused = False`).

The fused path computes in fp32 without tensor cores whatever `precision`
says (its sums are per-row gathers); only log-likelihood / marginal /
MPE forwards (`root_log_prob`, `forward`, `graphed_query`) and the logic
WMC forward and backward (`TritonWMC`) take it. Training
(`forward_backward`, EM) needs parameter flows and stays layer by layer.
"""

from __future__ import annotations

import torch

from pccompiler.backends.triton import fused_kernels
from pccompiler.backends.triton.compat import cdiv, next_pow2
from pccompiler.backends.triton.fused_plan import FusedPlan, layout_dists, layout_size
from pccompiler.backends.triton.soft_kernels import MAX_SOFT_CATS
from pccompiler.errors import UnsupportedError
from pccompiler.ir import pcir

FUSED_MAX_EDGES = 1 << 16
FUSED_MAX_ROWS = 1 << 15
FUSED_MAX_FAN_IN = 256
TARGET_PROGRAMS = 128    # about one per H100 SM (132): batch slices of BLOCK_B samples
MODES = (True, False, "auto")


def check_mode(fused) -> bool | str:
    """The `fused` option as True / False / "auto" (strings from a CLI accepted)."""
    if isinstance(fused, str) and fused.lower() in ("true", "false", "auto"):
        fused = {"true": True, "false": False, "auto": "auto"}[fused.lower()]
    if fused not in MODES:
        raise UnsupportedError(f"triton option fused={fused!r}: expected True, False or 'auto'")
    return fused


def refusal(layout: pcir.Layout, soft: bool) -> str | None:
    """Why the fused kernels cannot run this Layout (None: they can)."""
    dists = layout_dists(layout)
    if -1 in dists:
        return "an input distribution the fused kernels do not know"
    if soft and (set(dists) - {0}):
        return "soft evidence needs categorical inputs only"
    if soft and dists.get(0, 0) > MAX_SOFT_CATS:
        return f"soft evidence over more than {MAX_SOFT_CATS} categories"
    return None


def is_small(layout: pcir.Layout) -> bool:
    rows, edges, fan_in = layout_size(layout)
    return edges <= FUSED_MAX_EDGES and rows <= FUSED_MAX_ROWS and fan_in <= FUSED_MAX_FAN_IN


def choose(mode: bool | str, layout: pcir.Layout, device: torch.device, soft: bool) -> bool:
    """Whether a pass runs fused (the module docstring's rule)."""
    if mode is False:
        return False
    reason = refusal(layout, soft)
    if mode is True:
        if reason:
            raise UnsupportedError(f"fused=True: {reason}")
        return True
    return reason is None and device.type == "cuda" and is_small(layout)


def tiles(batch: int, options: dict | None = None) -> dict:
    """BLOCK_B samples per program (about TARGET_PROGRAMS programs), TILE_N
    rows per tile (a tile of 256..2048 elements); `options` overrides."""
    block_b = max(1, min(64, next_pow2(cdiv(batch, TARGET_PROGRAMS))))
    tile_n = max(32, min(256, 2048 // block_b))
    cfg = dict(TILE_N=tile_n, BLOCK_B=block_b, num_warps=8 if tile_n * block_b >= 4096 else 4)
    cfg.update(options or {})
    return cfg


def fused_forward(plan: FusedPlan, values: torch.Tensor, sum_params: torch.Tensor,
                  in_params: torch.Tensor, x_t: torch.Tensor | None,
                  miss_t: torch.Tensor | None, soft_t: torch.Tensor | None, mode_max: bool,
                  bad_entry: torch.Tensor, options: dict | None = None) -> None:
    """Every value row (and the constant rows 0, 1) from x_t [V, B] (miss_t)
    or soft_t [V, K, B] (any strides: a permuted view of [B, V, K] is read
    in place), one launch."""
    batch = values.shape[1]
    if batch == 0:
        return
    c = tiles(batch, options)
    src = soft_t if soft_t is not None else x_t
    fused_kernels.fused_fwd_kernel[(cdiv(batch, c["BLOCK_B"]),)](
        values, sum_params, in_params, src, miss_t if miss_t is not None else src, src,
        bad_entry, plan.steps, plan.num_steps, plan.row_slot, plan.row_var, plan.row_ps,
        plan.fwd_beg, plan.fwd_cnt, plan.fwd_slot, plan.fwd_w, batch, values.stride(0),
        *(soft_t.stride() if soft_t is not None else (0, 0, 0)),
        SOFT=soft_t is not None, HAS_MISSING=miss_t is not None, MODE_MAX=mode_max,
        TILE_N=c["TILE_N"], BLOCK_B=c["BLOCK_B"], num_warps=c["num_warps"])


def fused_backward(plan: FusedPlan, values: torch.Tensor, flows: torch.Tensor,
                   sum_params: torch.Tensor, in_params: torch.Tensor,
                   soft_grad: tuple[torch.Tensor, torch.Tensor] | None = None,
                   options: dict | None = None) -> None:
    """Node flows of every row into `flows` (any content before); with
    soft_grad (grad_t [V, K, B], any strides; gout [B]) grad_t is
    overwritten with the gradient of gout . log root with respect to the
    soft evidence."""
    batch = values.shape[1]
    if batch == 0:
        return
    c = tiles(batch, options)
    grad_t, gout = soft_grad if soft_grad is not None else (values, values)
    fused_kernels.fused_bwd_kernel[(cdiv(batch, c["BLOCK_B"]),)](
        values, flows, sum_params, in_params, grad_t, gout, plan.bwd_steps, plan.num_steps,
        plan.row_slot, plan.fwd_beg, plan.fwd_cnt, plan.fwd_slot, plan.fwd_w, plan.var_beg,
        plan.var_cnt, plan.var_slot, plan.var_ps, plan.var_cats, plan.num_vars,
        plan.num_slots, plan.root_slot, batch, values.stride(0),
        grad_t.shape[1] if soft_grad is not None else 0,
        *(grad_t.stride() if soft_grad is not None else (0, 0, 0)),
        SOFT_GRAD=soft_grad is not None, TILE_N=c["TILE_N"], BLOCK_B=c["BLOCK_B"],
        num_warps=c["num_warps"])
