"""Every pipeline output is a valid Layout whose evaluation equals the Model's.

layout_log_prob (backends/reference/layout_interp.py) runs the Layout's
buffers as a backend does; the reference evaluator runs the Model group by
group. Equal log-likelihoods to 1e-10 on several circuits prove the passes,
the layout and the packing together preserve the distribution.
"""

import numpy as np
import pytest

from pccompiler import passes
from pccompiler.ir import pcir
from pccompiler.backends.reference.layout_interp import layout_log_prob
from pccompiler.ir.layout_checker import check_layout
from tests import factories
from tests.passes.circuits import block_mask, expand_blocks, hmm_model, reference_log_prob, \
    two_level_model


def _data(model, rng, n=7):
    kinds = {v.kind for v in model.variables}
    cats = min(v.num_cats for v in model.variables)
    if 3 in kinds:        # REAL
        return rng.normal(size=(n, len(model.variables)))
    return rng.integers(0, max(cats, 2), size=(n, len(model.variables)))


def _assert_equal(model, result, rng):
    check_layout(result.layout, result.model, deep=True)
    check_layout(result.layout, result.model)
    x = _data(model, rng)
    got = layout_log_prob(result.model, result.layout, x)
    np.testing.assert_allclose(got, reference_log_prob(model, x), rtol=0, atol=1e-10)
    missing = rng.random(x.shape) < 0.3
    got = layout_log_prob(result.model, result.layout, x, missing)
    np.testing.assert_allclose(got, reference_log_prob(model, x, missing), rtol=0, atol=1e-10)


@pytest.mark.parametrize("name", sorted(factories.ALL_FACTORIES))
@pytest.mark.parametrize("pipeline", [None, "canonicalize,partition-blocks{max_block=2},"
                                      "detect-block-sparsity{tol=0,permute=false},"
                                      "layerize{partitions=1},layout"])
def test_factories(name, pipeline):
    model = factories.ALL_FACTORIES[name](seed=3)
    result = passes.compile_model(model, pipeline=pipeline, check_each=True)
    _assert_equal(model, result, np.random.default_rng(0))


def test_shuffled_block_sparse_is_recovered_and_equal():
    rng = np.random.default_rng(1)
    edges = expand_blocks(block_mask(rng, 4, 8, 0.4), 32)
    rows, cols = rng.permutation(128), rng.permutation(256)
    edges = np.stack([rows[edges[:, 0]], cols[edges[:, 1]]], 1)
    model = two_level_model(edges[np.lexsort((edges[:, 1], edges[:, 0]))], 128, 256)
    result = passes.compile_model(model, check_each=True)
    _assert_equal(model, result, rng)


@pytest.mark.parametrize("declare", [True, False])
def test_hmm(declare):
    model = hmm_model(5, 8, 4, declare_ties=declare)
    result = passes.compile_model(model, pipeline=passes.DEFAULT_PIPELINE.replace(
        "tie-params", "tie-params{detect=true}"), check_each=True)
    _assert_equal(model, result, np.random.default_rng(2))


def _mixed_fan_in(rng: np.random.Generator):
    """A sparse group of 64 nodes over 96 children: 32 rows of 2 edges, 32 of 60."""
    n, c = 64, 96
    fan = np.where(np.arange(n) < 32, 2, 60)
    edges = np.concatenate([np.stack([np.full(k, p), np.sort(rng.choice(c, k, replace=False))], 1)
                            for p, k in enumerate(fan)])
    return two_level_model(edges, n, c)


def test_mixed_fan_in_sparse_partitions():
    """A sparse group with very different fan-ins is split into several partitions."""
    rng = np.random.default_rng(4)
    model = _mixed_fan_in(rng)
    result = passes.compile_model(model, pipeline="canonicalize,partition-blocks,"
                                  "detect-block-sparsity{tol=0,tiles=false},"
                                  "layerize{partitions=4},layout")
    sums = [p for layer in result.layout.layers for p in layer.sum_partitions
            if p.kernel == "sparse"]
    assert sorted(p.max_children for p in sums) == [2, 60]
    _assert_equal(model, result, rng)


def test_row_tiles_keep_the_distribution():
    """The same group as row tiles (rows reordered, pseudo-edges of weight 0),
    and as the DENSE group the row-tile cost model prefers for it by default
    (missing edges as zero weights)."""
    rng = np.random.default_rng(5)
    model = _mixed_fan_in(rng)
    result = passes.compile_model(model, check_each=True,
                                  options={"detect-block-sparsity": {"tile_dense": False}})
    assert any(p.kernel == "row_tiles" for layer in result.layout.layers
               for p in layer.sum_partitions)
    _assert_equal(model, result, rng)
    dense = passes.compile_model(model, check_each=True)
    assert any(g.kind == pcir.SUM and g.sum.pattern == pcir.DENSE
               and model.groups[g.id].sum.pattern == pcir.SPARSE for g in dense.model.groups)
    _assert_equal(model, dense, rng)
