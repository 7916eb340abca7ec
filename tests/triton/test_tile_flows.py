"""Row tiles' node flows through their forward tiles (backends/triton/
tile_flows.py): the plan drops the tiled parents' pairs from the per-pair
backward partitions, zeroes the child rows that the tiles write first, and
the flows, log-likelihoods and EM steps equal the per-pair path's and the
float64 torch engine's, with zero-weight pseudo-edges kept at 0. The circuit
makes a product layer whose rows have a tiled parent (a pruned 70-node
sum) and a per-pair parent (a dense 16-node sum) in the same layer, and a
second level that reads both. With 80 product rows the dense sum keeps a
16-row block (a per-pair writer beside the tiles); with 72 (child block 8)
it becomes a run of one-row blocks (sparsefloor: groups whose natural block
is under 16 rows), so every writer of the layer is a tile and the top
sum's tile stores its rows first."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import pccompiler as pc
from pccompiler.backends.triton import plan as plan_mod
from pccompiler.backends.triton.plan import drop_parents
from pccompiler.backends.triton.writers import first_writer_stores
from pccompiler.train import em_step

TILES = {"detect-block-sparsity": {"tile_rows": 64, "tile_cols": "8/64", "tile_dense": False}}


def _model(k: int = 72):
    rng = np.random.default_rng(0)
    x = pc.inputs(0, k, pc.Categorical(num_cats=3), seed=1)
    y = pc.inputs(1, k, pc.Categorical(num_cats=3), seed=2)
    p = pc.multiply(x, y)
    mask = rng.random((70, k)) < 0.2
    mask[np.arange(70), rng.integers(0, k, 70)] = True
    tiled = pc.summate(p, num_nodes=70, edges=pc.Sparse(np.argwhere(mask)), seed=3)
    dense = pc.summate(p, num_nodes=16, seed=4)
    z = pc.inputs(2, 16, pc.Categorical(num_cats=3), seed=5)
    z70 = pc.inputs(2, 70, pc.Categorical(num_cats=3), seed=6)
    top = pc.summate(pc.multiply(dense, z), pc.multiply(tiled, z70), num_nodes=4, seed=7)
    return pc.lower(pc.summate(top, num_nodes=1, seed=8))


def test_drop_parents_keeps_order_and_pads():
    slots = np.array([[5, 7, 9, 0], [7, 8, 0, 0], [9, 0, 0, 0]])
    starts = np.array([[50, 70, 90, 0], [71, 80, 0, 0], [91, 0, 0, 0]])
    dropped = np.zeros(10, dtype=bool)
    dropped[[7, 9]] = True
    s, p, n = drop_parents(slots, starts, np.array([3, 2, 1]), dropped)
    assert n.tolist() == [1, 1, 0]
    assert s.tolist() == [[5], [8], [0]] and p.tolist() == [[50], [80], [0]]


def test_fresh_rows_are_the_rows_no_earlier_writer_wrote():
    writers = [[(np.array([4, 5]), True)],                      # layer 0 (walked last)
               [(np.array([2, 3]), True), (np.array([3, 4, 6]), False)]]
    fresh: list = []
    flags = first_writer_stores(writers, 8, (0,), None, fresh)
    assert flags == [[False], [True, False]]
    assert [f.tolist() for f in fresh[1]] == [[2, 3], [4, 6]]
    assert fresh[0][0].tolist() == [5]


@pytest.mark.parametrize("min_rows, k", [(16, 80), (1, 72)])
def test_tile_flows_match_per_pair_and_torch(device, min_rows, k, monkeypatch):
    monkeypatch.setattr(plan_mod, "TILE_MIN_ROWS", min_rows)
    model = _model(k)
    data = np.random.default_rng(5).integers(0, 3, (32, 3))
    flows, lls, weights = {}, {}, {}
    for name, on in (("pairs", False), ("tiles", True)):
        monkeypatch.setattr(plan_mod, "TILE_FLOWS", on)
        c = pc.compile(model, backend="triton", device=str(device), pass_options=TILES,
                       precision="ieee")
        plan = c.engine.plan
        tiles = [lp for lp in plan.layers if lp.tile_flows]
        assert bool(tiles) == on
        if on and k == 80:   # the shared product rows: a per-pair writer, then the tiles
            assert any(any(p.num_blocks for p in lp.sum_backwards) for lp in tiles)
        if on and k == 72:   # only tiles write the product rows; the top sum's tile
            # writes them first, no child twice, so it stores them (plan._tile_flow_writer)
            assert any(p.tile_store for lp in tiles for p in lp.tile_flows)
        flows[name] = c.flows(data).detach().cpu()
        lls[name] = [em_step(c, data[i * 16:(i + 1) * 16], 0.5, 0.5).cpu() for i in range(2)]
        weights[name] = c.engine.sum_params.detach().cpu()
    ref = pc.compile(model, backend="torch", device="cpu", pass_options=TILES, dtype="float64")
    want = ref.flows(data).detach().cpu().to(torch.float32)
    torch.testing.assert_close(flows["tiles"], flows["pairs"], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(flows["tiles"], want, rtol=1e-4, atol=1e-5)
    for ours, theirs in zip(lls["tiles"], lls["pairs"]):
        torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)
    zero = weights["pairs"] == 0
    assert int(zero.sum()) > 0 and torch.all(weights["tiles"][zero] == 0)
    torch.testing.assert_close(weights["tiles"], weights["pairs"], rtol=1e-5, atol=1e-6)


def test_row_tile_parts_size_their_child_chunks_by_the_mean_fan_in():
    """launch.tile_fan_in: a row-tile partition's child chunk (TILE_K) follows
    the mean fan-in of its runs (the one-row tail of the 70-row group has
    fan-ins from 1 up), every other part its max fan-in, as before."""
    import math

    from pccompiler import passes
    from pccompiler.backends.triton.launch import choose_tiles, tile_fan_in
    from pccompiler.backends.triton.plan import build_plan
    opts = {"detect-block-sparsity": {"tile_rows": 64, "tile_cols": 1, "tile_dense": False}}
    plan = build_plan(passes.compile_model(_model(), options=opts).layout, "cpu")
    parts = [p for lp in plan.layers for p in lp.sums]
    tiled = [p for p in parts if "tile_rows" in p.options]
    assert tiled and len(tiled) < len(parts)
    for part in parts:
        nc = part.block_num_children.numpy()
        if part in tiled:
            assert part.mean_children == pytest.approx(nc.mean())
            assert tile_fan_in(part) == math.ceil(nc.mean()) <= part.max_children
        else:
            assert part.mean_children == 0 and tile_fan_in(part) == part.max_children
    spread = [p for p in tiled if tile_fan_in(p) < p.max_children]
    assert spread, "the one-row tail should have uneven fan-ins"
    chunks = [(choose_tiles("sum_tflow", p.rows, tile_fan_in(p), 512)["TILE_K"],
               choose_tiles("sum_tflow", p.rows, p.max_children, 512)["TILE_K"]) for p in spread]
    assert all(m <= x for m, x in chunks) and any(m < x for m, x in chunks)
