"""Unequal runs of blocks with one child list (backends/triton/plan.run_table,
branch sparsefloor): a DENSE group of an odd size takes one-row blocks
(passes/helpers/blocks.group_block_sizes) that the triton kernels walk as
one run of all its rows; its node flows go through the tile and are stored
(no atomics) where no child is in two runs; EM packs one-row blocks 32 to a
program. Log-likelihoods, flows and EM steps equal those of the previous
code (the same switches off) and of the float64 torch engine."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import pccompiler as pc
from pccompiler.backends.common.block_runs import variable_runs
from pccompiler.backends.triton import launch, plan as plan_mod
from pccompiler.passes.helpers import blocks, row_tiles
from pccompiler.train import em_step


def test_variable_runs_split_at_changes_and_at_the_cap():
    lists = np.array([[1, 2], [1, 2], [1, 2], [3, 4], [3, 4], [5, 6]])
    counts = np.full(6, 2)
    assert variable_runs(lists, counts, 1, 128).tolist() == [0, 3, 5, 6]
    assert variable_runs(lists, counts, 1, 2).tolist() == [0, 2, 3, 5, 6]
    counts[1] = 1                       # same slots, another fan-in: another run
    assert variable_runs(lists, counts, 1, 128).tolist() == [0, 1, 2, 3, 5, 6]
    assert variable_runs(lists[:0], counts[:0], 1, 8).tolist() == [0]


def test_run_table_only_where_it_beats_aligned_runs():
    lists = np.repeat(np.arange(3)[:, None], [37, 37, 2], axis=0)[:, None].repeat(2, 1)
    lists = lists.reshape(76, 2)
    counts = np.full(76, 2)
    group, runs = plan_mod.run_table(lists, counts, 1, 1)
    assert group == 64 and runs.tolist() == [0, 37, 74, 76]
    assert plan_mod.run_table(lists, counts, 1, 32)[1] is None      # aligned runs as long


def _model():
    x = pc.inputs(0, 37, pc.Categorical(num_cats=3), seed=1)
    y = pc.inputs(1, 37, pc.Categorical(num_cats=3), seed=2)
    odd = pc.summate(pc.multiply(x, y), num_nodes=37, seed=3)        # blocks of 1: one run
    u = pc.inputs(0, 24, pc.Categorical(num_cats=3), seed=4)
    v = pc.inputs(2, 24, pc.Categorical(num_cats=3), seed=5)
    even = pc.summate(pc.multiply(u, v), num_nodes=40, seed=6)        # 40 rows: blocks of 8 -> 1
    z = pc.inputs(2, 37, pc.Categorical(num_cats=3), seed=7)
    w = pc.inputs(1, 40, pc.Categorical(num_cats=3), seed=8)
    top = pc.summate(pc.multiply(odd, z), pc.multiply(even, w), num_nodes=4, seed=9)
    return pc.lower(pc.summate(top, num_nodes=1, seed=10))


def _previous(monkeypatch):
    monkeypatch.setattr(plan_mod, "VARIABLE_RUNS", False)
    monkeypatch.setattr(plan_mod, "TILE_STORE", False)
    monkeypatch.setattr(blocks, "RUN_BLOCK", 1 << 40)
    monkeypatch.setattr(row_tiles, "READS_COSTS", False)
    monkeypatch.setattr(launch, "EM_PACKED", False)


@pytest.mark.parametrize("fuse", [False, True])
def test_runs_match_the_previous_code_and_torch(device, fuse, monkeypatch):
    model = _model()
    data = np.random.default_rng(5).integers(0, 3, (32, 3))
    out = {}
    for name in ("runs", "previous"):
        with monkeypatch.context() as mp:
            if name == "previous":
                _previous(mp)
            c = pc.compile(model, backend="triton", device=str(device), precision="ieee",
                           fuse_products=fuse)
            parts = [p for lp in c.engine.fast_plan.layers for p in lp.sums]
            run_parts = [p for p in parts if p.runs is not None]
            if name == "runs":     # the 37- and 40-row groups: one partition, two runs
                assert len(run_parts) == 1 and run_parts[0].num_runs == 2
                assert run_parts[0].block_size == 1
                assert run_parts[0].tile_store, "no child in two runs: the tile flows store"
                # its products are read by one run each: folded into its loads when fusing
                assert (run_parts[0].fused_arity > 0) == fuse
            else:
                assert not run_parts
            out[name] = (c.flows(data).detach().cpu(),
                         [em_step(c, data[i * 16:(i + 1) * 16], 0.5, 0.5).cpu()
                          for i in range(2)],
                         _sum_weights(c.to_model()))
    ref = pc.compile(model, backend="torch", device="cpu", dtype="float64")
    torch.testing.assert_close(out["runs"][0], out["previous"][0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out["runs"][0], ref.flows(data).detach().cpu().to(torch.float32),
                               rtol=1e-4, atol=1e-5)
    for ours, theirs in zip(out["runs"][1], out["previous"][1]):
        torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)
    # the packed EM update leaves every group's weights where the per-block one does
    for gid, w in out["previous"][2].items():
        np.testing.assert_allclose(out["runs"][2][gid], w, rtol=1e-5, atol=1e-6)


def _sum_weights(model) -> dict[int, np.ndarray]:
    from pccompiler import ir
    from pccompiler.ir import pcir
    table = ir.tensor_table(model)
    return {g.id: np.asarray(table[g.sum.weights], dtype=np.float64).ravel()
            for g in model.groups if g.kind == pcir.SUM and g.sum.weights}
