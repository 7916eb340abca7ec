"""detect-block-sparsity prices a pruned group's block-sparse form against
its DENSE store (row_tiles.block_sparse_cost / dense_cost): small blocks that
pass the padding tolerance but cost more than the dense group are stored
DENSE, zero weights kept at exactly 0 by EM, and the circuit computes what
the block-sparse one does (issue #18: HCLT-128 at keep 0.25 kept 23 such
groups, 1.68x the dense step on an H100)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import pccompiler as pc
from pccompiler import ir, passes
from pccompiler.backends import reference
from pccompiler.ir import pcir
from pccompiler.passes.detect_block_sparsity import DENSE_MARGIN
from pccompiler.passes.helpers.blocks import blockify
from pccompiler.passes.helpers.row_tiles import block_sparse_cost, dense_cost, run_cost
from pccompiler.passes.structure.graph import edges_of
from tests.passes.circuits import block_mask, expand_blocks, two_level_model

N = 64      # rows and columns of the pruned sum g3


def _pruned_in_2x2_blocks(seed: int = 0) -> tuple[pcir.Model, np.ndarray]:
    """g3: a 64 x 64 sum keeping 30% of its 2x2 blocks, each ~75% full: at
    block 2 the padding passes tol=0.5, at 4 and above it does not."""
    rng = np.random.default_rng(seed)
    edges = expand_blocks(block_mask(rng, N // 2, N // 2, 0.3), 2, fill=0.75, rng=rng)
    return two_level_model(edges, N, N, seed=seed), edges


def _options(**opts):
    return {"detect-block-sparsity": {"permute": False, **opts}}


def test_block_sparse_cost_counts_pairs_at_16_rows_and_matches_a_run_when_complete():
    # one complete 128-row block costs what one run of its 128 rows over 128
    # children does (the per-pair node flows read what the stored tile flows do)
    one = np.array([[0, 0]])
    assert block_sparse_cost(one, 128) == pytest.approx(float(run_cost(128, 128, False)))
    # a pair of 2-row blocks pays for a 16-row parent tile in the node flows
    pairs = np.stack([np.zeros(8, np.int64), np.arange(8)], axis=1)
    assert block_sparse_cost(pairs, 2) > 8 * (16 + 16 * 16 / 32.0)
    assert block_sparse_cost(np.zeros((0, 2), np.int64), 2) == 0.0


def test_small_blocks_costing_more_than_dense_are_stored_dense(request):
    model, edges = _pruned_in_2x2_blocks()
    # unpriced (tile_dense=false) the group pads into 2x2 blocks, as before
    blocks = passes.compile_model(model, options=_options(tile_dense=False))
    g3 = blocks.model.groups[3]
    assert g3.sum.pattern == pcir.BLOCK_SPARSE and g3.sum.block_size == 2
    # ... which the cost model prices above the DENSE 64 x 64 group
    block_edges = blockify(edges, None, 2, N)[0]
    assert block_sparse_cost(block_edges, 2) > DENSE_MARGIN * dense_cost(N, N, N, N)
    priced = passes.compile_model(model, options=_options())
    out = priced.model.groups[3]
    assert out.sum.pattern == pcir.DENSE
    notes = " ".join(n for r in priced.report.records if r.name == "detect-block-sparsity"
                     for n in r.notes)
    assert "g3: dense:" in notes and "blocks " in notes, notes
    w_in = np.asarray(ir.tensor_table(model)[model.groups[3].sum.weights])
    w = np.asarray(ir.tensor_table(priced.model)[out.sum.weights]).reshape(N, N)
    assert np.count_nonzero(w) == len(edges)
    np.testing.assert_array_equal(w[edges[:, 0], edges[:, 1]], w_in)

    # EM on the backend under test: the DENSE store trains as the block-sparse one
    backend = request.config.getoption("--backend").split(",")[0]
    device = request.config.getoption("--device")
    # ieee dots on triton: under tf32 (triton's default on a GPU) the two stores'
    # sums round differently and the 1e-5 comparisons below would measure tf32
    exact = {"precision": "ieee"} if backend == "triton" else {}
    dense_c = pc.compile(model, backend=backend, device=device, pass_options=_options(), **exact)
    block_c = pc.compile(model, backend=backend, device=device,
                         pass_options=_options(tile_dense=False), **exact)
    rng = np.random.default_rng(1)
    for _ in range(3):
        x = torch.from_numpy(rng.integers(0, 3, (128, 2)))
        dense_c.em_step(x.to(device), step_size=0.5, pseudocount=0.1)
        block_c.em_step(x.to(device), step_size=0.5, pseudocount=0.1)
    after = dense_c.to_model()
    w_em = np.asarray(ir.tensor_table(after)[after.groups[3].sum.weights]).reshape(N, N)
    # EM moved the real weights, left every pruned one at exactly 0
    assert np.count_nonzero(w_em) == len(edges)
    assert not np.allclose(w_em[edges[:, 0], edges[:, 1]], w_in)
    other = block_c.to_model()
    table = ir.tensor_table(other)
    w_blocks = np.zeros((N, N))
    parents, cols, vals = edges_of(other, other.groups[3], table)
    w_blocks[parents, cols] = vals
    np.testing.assert_allclose(w_em, w_blocks, rtol=1e-5, atol=1e-7)
    x = rng.integers(0, 3, (32, 2))
    np.testing.assert_allclose(dense_c.log_prob(torch.from_numpy(x).to(device)).detach().cpu()
                               .numpy(), reference.log_prob(after, x), rtol=1e-5, atol=1e-5)
