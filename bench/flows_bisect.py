"""Debugging aid: which Triton backward launch makes node flows wrong on a GPU?

Runs the triton engine's backward one launch at a time on a batch of B
samples (default 64) and, beside it, the same launch on a copy of the first
3 columns of every buffer (batch 3 is known to be right). After each launch
the first 3 columns of the big run must equal the small run; the first launch
where they differ is printed with its partition's shape and tile choice.
Each big launch also runs twice from the same state (a race shows up as a
difference between the two). The forward is checked the same way.

Run from the repository root: PYTHONPATH=. python bench/flows_bisect.py [B]
"""
import sys

import numpy as np
import torch

import pccompiler as pc
from pccompiler.backends.triton import TritonBackend, launch
from pccompiler.passes.manager import compile_model
from tests.triton.test_engine_e2e import _circuits

BATCH = int(sys.argv[1]) if len(sys.argv) > 1 else 64
SMALL = 3
DEV = "cuda" if torch.cuda.is_available() else "cpu"   # cpu: under TRITON_INTERPRET=1


def sync():
    if DEV == "cuda":
        torch.cuda.synchronize()


def describe(kind, part, batch):
    if kind == "sum_bwd":
        c = launch.choose_tiles("sum_bwd", part.child_block_size, part.max_parents, batch,
                                other_block_size=part.parent_block_size, options=part.options)
        return (f"sum_bwd cbs={part.child_block_size} pbs={part.parent_block_size} "
                f"blocks={part.num_blocks} maxpar={part.max_parents} store={part.store} {c}")
    c = launch.choose_tiles("product", 1, part.num_children, batch, num_rows=part.num_nodes)
    return (f"product nodes={part.num_nodes} k={part.num_children} atomic={part.atomic} "
            f"store={part.store} {c}")


def main():
    build, _ = _circuits()["hclt"]
    data = np.concatenate([_circuits()["hclt"][1]] * 20)[:max(BATCH, SMALL)]
    res = compile_model(pc.lower(build()), block_limit=32, backend="triton")
    cc = TritonBackend().compile(res.model, res.layout, {"device": DEV, "cuda_graphs": False})
    eng = cc.engine
    x = torch.as_tensor(data, device=DEV)
    x_t, _ = eng._transposed(x, None)
    xs_t = x_t[:, :SMALL].contiguous()

    # forward, launch by launch
    vb = eng._new_values(BATCH)
    vs = eng._new_values(SMALL)
    vb[2:] = 0.0       # rows not yet written compare equal
    vs[2:] = 0.0
    ps, pi = eng.sum_params.data, eng.input_params.data
    bad_fwd = 0
    for li, layer in enumerate(eng.plan.layers):
        for part in layer.inputs:
            launch.input_forward(part, vb, pi, x_t, None)
            launch.input_forward(part, vs, pi, xs_t, None)
        for part in layer.products:
            launch.product_forward(part, vb)
            launch.product_forward(part, vs)
        for part in layer.sums:
            launch.sum_forward_launch(part, vb, ps, eng.precision)
            launch.sum_forward_launch(part, vs, ps, eng.precision)
        sync()
        d = (vb[2:, :SMALL] - vs[2:]).abs().nan_to_num(0.0).max().item()
        if d > 1e-3 and bad_fwd < 5:
            bad_fwd += 1
            print(f"forward layer {li}: max |values[:, :3] - small| = {d:.3e}")
    print(f"forward done: {bad_fwd} bad layers")

    # backward, launch by launch
    fb = torch.zeros_like(vb)
    fs = torch.zeros_like(vs)
    fb[eng.plan.root_slot] = 1.0
    fs[eng.plan.root_slot] = 1.0
    first = None
    for li in reversed(range(len(eng.plan.layers))):
        layer = eng.plan.layers[li]
        steps = [("sum_bwd", p) for p in layer.sum_backwards] + \
                [("product", p) for p in layer.products]
        for kind, part in steps:
            before = fb.clone()
            for rep in range(2):
                if rep == 1:
                    once = fb.clone()
                    fb.copy_(before)
                if kind == "sum_bwd":
                    launch.sum_backward_launch(part, vb, fb, ps, eng.precision)
                else:
                    launch.product_backward(part, fb)
                sync()
            race = (fb - once).abs().max().item()
            if kind == "sum_bwd":
                launch.sum_backward_launch(part, vs, fs, ps, eng.precision)
            else:
                launch.product_backward(part, fs)
            sync()
            d = (fb[2:, :SMALL] - fs[2:]).abs().max().item()
            tag = describe(kind, part, BATCH)
            if d > 1e-4 or race > 0:
                print(f"layer {li} {tag}: |big[:, :3] - small| {d:.3e}, rerun diff {race:.3e}, "
                      f"max flow big {fb[2:].max().item():.3f} small {fs[2:].max().item():.3f}")
                if first is None:
                    first = (li, tag)
    print("first bad launch:", first)
    full = cc.flows(data[:BATCH]).cpu()
    print(f"engine flows: max {full[2:].max().item():.4f}; bisect max {fb[2:].max().item():.4f}")


if __name__ == "__main__":
    main()
