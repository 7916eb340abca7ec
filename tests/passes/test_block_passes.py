"""partition-blocks and detect-block-sparsity on circuits with known answers."""

import numpy as np
import pytest

from pccompiler import ir, passes
from pccompiler.ir import pcir
from pccompiler.passes.helpers.blocks import block_stats, padding_floor, pow2_divisor
from pccompiler.passes.helpers.sum_index import fan_in_split
from tests.passes.circuits import block_mask, expand_blocks, two_level_model

# tile_dense=false: these tests pin the block detection (tol, permutations);
# the row-tile cost model's DENSE choice is tested in tests/passes/test_row_tiles.py
MODEL_PASSES = ("canonicalize,partition-blocks{max_block=%d},"
                "detect-block-sparsity{tol=%s,permute=%s,tile_dense=false}")


def _run(model, max_block=32, tol=0.5, permute="true"):
    """Run the model passes only; returns (model', report notes, analysis)."""
    result = passes.compile_model(model, pipeline=(MODEL_PASSES % (max_block, tol, permute))
                                  + ",layerize,layout", check_each=True)
    return result


def _notes(result, name):
    return " ".join(n for r in result.report.records if r.name == name for n in r.notes)


def _group(result, gid):
    return result.model.groups[gid]


def test_pow2_divisor():
    assert [pow2_divisor(n, 32) for n in (1, 2, 6, 48, 96, 128, 0)] == [1, 2, 2, 16, 32, 32, 1]
    assert pow2_divisor(128, 20) == 16


def test_dense_block_sizes_follow_sizes_and_limit():
    model = two_level_model(np.argwhere(np.ones((48, 96), bool)), 48, 96)
    result = _run(model, max_block=32)
    placement = {p.group: p for p in result.layout.placements}
    # the complete sparse group became block-sparse at 16 (48 = 3 * 16), then dense
    assert _group(result, 3).sum.pattern == pcir.DENSE
    assert placement[3].block_size == 16
    assert placement[4].block_size == 1
    result = _run(model, max_block=8)
    assert {p.group: p for p in result.layout.placements}[3].block_size == 8


def test_sparse_made_of_complete_blocks_becomes_block_sparse():
    rng = np.random.default_rng(0)
    mask = block_mask(rng, 8, 8, 0.3)
    model = two_level_model(expand_blocks(mask, 8), 64, 64)
    result = passes.compile_model(model, pipeline="partition-blocks,layerize,layout")
    g = _group(result, 3)
    assert g.sum.pattern == pcir.BLOCK_SPARSE and g.sum.block_size == 8
    table = ir.tensor_table(result.model)
    np.testing.assert_array_equal(table[g.sum.edges], np.argwhere(mask))


def test_large_blocks_are_split_to_the_limit():
    rng = np.random.default_rng(0)
    mask = block_mask(rng, 2, 2, 0.75)
    model = two_level_model(expand_blocks(mask, 64), 128, 128)
    model = passes.compile_model(model, pipeline="partition-blocks{max_block=64},layerize,"
                                 "layout", block_limit=64).model
    assert model.groups[3].sum.block_size == 64
    result = passes.compile_model(model, pipeline="partition-blocks{max_block=32},layerize,"
                                  "layout", check_each=True)
    g = result.model.groups[3]
    assert g.sum.block_size == 32
    assert ir.tensor_table(result.model)[g.sum.edges].shape == (int(mask.sum()) * 4, 2)


@pytest.mark.parametrize("keep", [0.25, 0.5, 0.8])
def test_dropped_32_blocks_exact_fraction(keep):
    rng = np.random.default_rng(7)
    mask = block_mask(rng, 4, 8, keep)
    model = two_level_model(expand_blocks(mask, 32), 128, 256)
    result = _run(model)
    g = _group(result, 3)
    assert g.sum.pattern == pcir.BLOCK_SPARSE and g.sum.block_size == 32
    assert len(ir.tensor_table(result.model)[g.sum.edges]) == mask.sum()
    notes = _notes(result, "detect-block-sparsity")
    assert "1 block-sparse" in notes, notes
    # the exact kept fraction is reported
    assert f"{int(mask.sum())}/32 blocks" in notes


def test_partial_blocks_padded_only_under_tol():
    rng = np.random.default_rng(3)
    mask = block_mask(rng, 4, 4, 0.5)
    edges = expand_blocks(mask, 16, fill=0.8, rng=rng)
    model = two_level_model(edges, 64, 64)
    padded = _run(model, tol=0.5, permute="false")
    g = _group(padded, 3)
    assert g.sum.pattern == pcir.BLOCK_SPARSE and g.sum.block_size == 16
    w = ir.tensor_table(padded.model)[g.sum.weights]
    assert (w == 0).sum() == w.size - len(edges)       # exactly the pseudo-edges are zero
    kept = _run(model, tol=0.05, permute="false")
    assert _group(kept, 3).sum.pattern == pcir.SPARSE


def test_random_sparse_stays_sparse():
    rng = np.random.default_rng(5)
    dense = rng.random((64, 64)) < 0.05
    dense[np.arange(64), rng.integers(0, 64, 64)] = True
    result = _run(two_level_model(np.argwhere(dense), 64, 64))
    assert _group(result, 3).sum.pattern == pcir.SPARSE
    assert {p.group: p for p in result.layout.placements}[3].block_size == 1


def test_shuffled_blocks_recovered_by_permutation():
    rng = np.random.default_rng(11)
    mask = block_mask(rng, 4, 8, 0.375)
    edges = expand_blocks(mask, 32)
    rows, cols = rng.permutation(128), rng.permutation(256)
    edges = np.stack([rows[edges[:, 0]], cols[edges[:, 1]]], 1)
    model = two_level_model(edges[np.lexsort((edges[:, 1], edges[:, 0]))], 128, 256)
    without = _run(model, permute="false")
    assert _group(without, 3).sum.pattern == pcir.SPARSE
    result = _run(model)
    g = _group(result, 3)
    assert g.sum.pattern == pcir.BLOCK_SPARSE and g.sum.block_size == 32
    assert len(ir.tensor_table(result.model)[g.sum.edges]) == mask.sum()
    assert (ir.tensor_table(result.model)[g.sum.weights] > 0).all()     # no padding
    assert "permutation: padding" in _notes(result, "detect-block-sparsity")


def test_all_blocks_present_becomes_dense():
    model = two_level_model(np.argwhere(np.ones((64, 32), bool)), 64, 32)
    g = _run(model).model.groups[3]
    assert g.sum.pattern == pcir.DENSE and not g.sum.edges


def test_fan_in_split_known_answers():
    assert fan_in_split(np.array([5] * 10), 4) == [(5, 5)]
    assert fan_in_split(np.array([1] * 10 + [100] * 10), 2) == [(1, 1), (2, 100)]
    parts = fan_in_split(np.array([1, 2, 3, 50, 51, 52, 1000]), 3)
    assert [hi for _, hi in parts] == [3, 52, 1000]
    many = np.random.default_rng(0).integers(1, 5000, 20000)
    parts = fan_in_split(many, 4)
    assert len(parts) == 4 and parts[-1][1] == many.max() and parts[0][0] == many.min()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_noisy_shuffled_blocks_recovered(seed):
    """Blocks with 10% of their edges missing, rows and columns shuffled: the
    k-means start of the co-clustering finds the original blocks, and the
    padding is exactly the missing edges."""
    rng = np.random.default_rng(seed)
    mask = block_mask(rng, 8, 8, 0.3)
    edges = expand_blocks(mask, 32, fill=0.9, rng=rng)
    rows, cols = rng.permutation(256), rng.permutation(256)
    edges = np.stack([rows[edges[:, 0]], cols[edges[:, 1]]], 1)
    model = two_level_model(edges[np.lexsort((edges[:, 1], edges[:, 0]))], 256, 256, seed=seed)
    result = _run(model)
    g = _group(result, 3)
    assert g.sum.pattern == pcir.BLOCK_SPARSE and g.sum.block_size == 32
    assert len(ir.tensor_table(result.model)[g.sum.edges]) == mask.sum()
    w = ir.tensor_table(result.model)[g.sum.weights]
    assert (w > 0).sum() == len(edges)
    from pccompiler.backends.reference.layout_interp import layout_log_prob
    from tests.passes.circuits import reference_log_prob
    x = rng.integers(0, 3, (5, 2))
    np.testing.assert_allclose(layout_log_prob(result.model, result.layout, x),
                               reference_log_prob(model, x), atol=1e-10)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_padding_floor_bounds_every_permutation(seed):
    """padding_floor never exceeds the padding of any row/column permutation
    of the edges, and is exact where every row fills whole tiles."""
    rng = np.random.default_rng(seed)
    rows, cols, block = 64, 48, 8
    mask = rng.random((rows, cols)) < rng.uniform(0.05, 0.6)
    edges = np.argwhere(mask)
    floor = padding_floor(edges, block)
    for _ in range(20):
        pr, pc_ = rng.permutation(rows), rng.permutation(cols)
        moved = np.stack([pr[edges[:, 0]], pc_[edges[:, 1]]], axis=1)
        blocks, n = block_stats(moved, block, cols)
        assert floor <= (blocks * block * block - n) / n + 1e-12
    full = np.argwhere(np.ones((16, 16), dtype=bool))
    assert padding_floor(full, 8) == 0.0
    chain = np.stack([np.arange(32), np.arange(32)], axis=1)     # one edge per row
    assert padding_floor(chain, 4) == pytest.approx(3.0)
