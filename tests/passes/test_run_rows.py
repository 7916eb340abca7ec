"""Long unequal runs (bench/step_model.py variant 'runs256', the proposal of
bench/results/sparse_big-cpu-2026-12-07.md): a pruned HCLT-256 group stored
DENSE at an odd size of 129..256 rows takes one-row blocks; with the plan's
unequal runs capped at 128 rows (plan.GROUP_MAX_ROWS) it is two runs whose
node flows add atomically into the same children, with the cap at 256 one
run whose flows are stored. The pass prices it by blocks.RUN_ROWS (runs)
and blocks.PROGRAM_ROWS (children re-read per program row tile); the
defaults leave both at 128.

The triton tests run under TRITON_INTERPRET=1 without a GPU
(`--backend triton --device cuda` on one)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import pccompiler as pc
from pccompiler.passes.helpers import blocks, row_tiles
from pccompiler.train import em_step

ROWS = 201      # odd: one-row blocks; > 128: two runs under the default cap


def _model():
    x = pc.inputs(0, 40, pc.Categorical(num_cats=3), seed=1)
    y = pc.inputs(1, 40, pc.Categorical(num_cats=3), seed=2)
    odd = pc.summate(pc.multiply(x, y), num_nodes=ROWS, seed=3)
    z = pc.inputs(2, ROWS, pc.Categorical(num_cats=3), seed=4)
    return pc.lower(pc.summate(pc.multiply(odd, z), num_nodes=1, seed=5))


def _long_runs(mp, rows: int) -> None:
    """The 'runs<rows>' switches of bench/step_model.storage_variant."""
    from pccompiler.backends.triton import plan
    cap = plan.variable_runs
    mp.setattr(blocks, "RUN_ROWS", rows)
    mp.setattr(plan, "variable_runs",
               lambda lists, counts, bs, old: cap(lists, counts, bs, rows if bs == 1 else old))


def test_dense_cost_counts_runs_by_run_rows_and_tiles_by_program_rows(monkeypatch):
    two_runs = row_tiles.dense_cost(ROWS, 160, 1, 1)
    monkeypatch.setattr(blocks, "RUN_ROWS", 256)
    one_run = row_tiles.dense_cost(ROWS, 160, 1, 1)
    # one run: no atomic per child and run, children still read once per 128-row tile
    assert one_run < two_runs
    expected = float(row_tiles.run_cost(ROWS, 160, False))
    assert one_run == pytest.approx(expected)
    assert float(row_tiles.run_cost(ROWS, 160, False)) - float(row_tiles.run_cost(100, 160, False)) \
        > 160 - 1e-9    # 201 rows read the children twice (two 128-row tiles), 100 once


def test_block_sizes_take_one_row_runs_up_to_run_rows(monkeypatch):
    # 256 rows over an odd child group (bc = 1): per-pair node flows by default
    assert blocks.dense_block_sizes(256, 251, 128) == (128, 1)
    monkeypatch.setattr(blocks, "RUN_ROWS", 256)
    assert blocks.dense_block_sizes(256, 251, 128) == (1, 1)
    assert blocks.dense_block_sizes(256, 256, 128) == (128, 128)     # the dense HCLT-256


@pytest.mark.filterwarnings("ignore:divide by zero encountered in log:RuntimeWarning")
def test_long_run_stores_its_flows_and_matches_torch(request, monkeypatch):
    backend = request.config.getoption("--backend")
    if "triton" not in backend:
        pytest.skip("triton plan test: run with --backend triton")
    device = request.config.getoption("--device")
    model = _model()
    data = np.random.default_rng(5).integers(0, 3, (24, 3))
    ref = pc.compile(model, backend="torch", device="cpu", dtype="float64")
    out = {}
    for cap in (128, 256):
        with monkeypatch.context() as mp:
            if cap == 256:
                _long_runs(mp, 256)
            c = pc.compile(model, backend="triton", device=device, precision="ieee")
            parts = [p for lp in c.engine.fast_plan.layers for p in lp.sums if p.runs is not None]
            assert len(parts) == 1 and parts[0].block_size == 1
            assert parts[0].num_runs == (2 if cap == 128 else 1)
            # two runs over one child list write the same rows: atomics; one run stores
            assert parts[0].tile_store == (cap == 256)
            x = torch.from_numpy(data).to(device)
            out[cap] = (c.log_prob(x).detach().cpu(), c.flows(data).detach().cpu(),
                        em_step(c, data, 0.5, 0.5).cpu())
    torch.testing.assert_close(out[256][0], out[128][0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out[256][1], out[128][1], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out[256][2], out[128][2], rtol=1e-5, atol=1e-5)  # EM too
    torch.testing.assert_close(out[256][1], ref.flows(data).detach().cpu().to(torch.float32),
                               rtol=1e-4, atol=1e-5)
