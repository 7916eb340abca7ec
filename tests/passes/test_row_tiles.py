"""Row tiles of pruned sum groups (passes/helpers/row_tiles.py and
detect-block-sparsity{tiles}): the placement keeps every surviving edge with
its weight, gives every pseudo-edge weight 0 (in the Model and in the packed
parameters), the layout runs the tiles as `row_tiles` partitions, a stale
record is ignored, and circuits without tiles keep their layout."""

from __future__ import annotations

import numpy as np
import torch
import pytest

import pccompiler as pc
from pccompiler import ir, passes
from pccompiler.backends.common.packing import pack_parameters
from pccompiler.ir import pcir
from pccompiler.passes.helpers.row_tiles import (ROW_TILES_KEY, choose_tiles, is_tiled,
                                                 minhash_order, pieces, row_tiles, tile_edges,
                                                 tile_grid)
from tests.conformance.circuits import all_circuits, pruned_tiles


def _random_edges(n, cols, keep, seed):
    rng = np.random.default_rng(seed)
    mask = rng.random((n, cols)) < keep
    mask[np.arange(n), rng.integers(0, cols, n)] = True
    return np.argwhere(mask)


def test_pieces_cover_the_length_in_powers_of_two():
    assert pieces(31, 16).tolist() == [16, 8, 4, 2, 1]
    assert pieces(64, 16).tolist() == [16] * 4
    assert pieces(5, 32).tolist() == [4, 1]
    assert pieces(0, 8).tolist() == []


@pytest.mark.parametrize("rows,bc", [(16, 1), (16, 4), (32, 8), (4, 2)])
def test_tile_edges_keep_every_edge_and_complete_every_tile(rows, bc):
    n, sizes = 37, [24, 12]
    edges = _random_edges(n, sum(sizes), 0.2, seed=rows + bc)
    grid = tile_grid(n, sizes, rows, bc)
    new, gather = tile_edges(edges, grid)
    # sorted, unique, in range
    key = new[:, 0] * sum(sizes) + new[:, 1]
    assert (np.diff(key) > 0).all() and new[:, 0].max() < n and new[:, 1].max() < sum(sizes)
    # every old edge exactly once, at its own (row, column)
    real = gather >= 0
    assert np.array_equal(np.sort(gather[real]), np.arange(len(edges)))
    assert np.array_equal(new[real], edges[gather[real]])
    # every row of a tile holds the same whole column blocks
    assert is_tiled(new, grid)
    assert not is_tiled(edges, grid)
    # and nothing beyond the blocks some row of the tile uses
    used = {(grid.tile_of_row[r], grid.block_of_col[c]) for r, c in edges}
    assert {(grid.tile_of_row[r], grid.block_of_col[c]) for r, c in new} == used


def test_minhash_order_puts_rows_with_equal_children_together():
    rng = np.random.default_rng(0)
    patterns = [rng.choice(64, 8, replace=False) for _ in range(4)]
    owner = rng.permutation(np.repeat(np.arange(4), 16))     # 4 child sets, 16 rows each
    edges = np.array([(r, c) for r in range(64) for c in sorted(patterns[owner[r]])])
    order = minhash_order(edges, 64, 64)
    runs = owner[order]
    assert (np.diff(runs) != 0).sum() == 3                     # four runs of 16


def _group(model, n_children):
    return next(g for g in model.groups if g.kind == pcir.SUM and len(g.sum.children) == n_children
                and g.num_nodes > 1)


def test_the_cost_model_prices_the_union_not_column_blocks():
    """Node flows run through the tiles (backends/triton/tile_flows.py): a
    tile pays for its union of children, so column blocks (bc > 1) only pad
    it, and rows that share children tile in 16+ rows below the one-row form
    (whose node flows take the per-pair kernel)."""
    x = pc.inputs(0, 64, pc.Categorical(num_cats=2), seed=0)
    y = pc.inputs(1, 64, pc.Categorical(num_cats=2), seed=1)
    p = pc.multiply(x, y)
    diagonal = np.stack([np.arange(64), np.arange(64)], 1)        # no child shared
    m = pc.lower(pc.summate(pc.summate(p, num_nodes=64, edges=pc.Sparse(diagonal), seed=2),
                            num_nodes=1, seed=3))
    g = next(g for g in m.groups if g.kind == pcir.SUM and g.num_nodes == 64)
    edges = np.asarray(ir.tensor_table(m)[g.sum.edges])
    diag = choose_tiles(m, g, edges, True, tile_rows=(1, 16), tile_cols=(1, 8))
    assert diag.cols == 1 and diag.cost < diag.rows_cost
    # one-row tiles of one child each: every tile pays a parameter-flow tile and a
    # 16-row masked dot per pass for one edge (row_tiles.run_cost), the one-row form less
    one = choose_tiles(m, g, edges, False, tile_rows=(1,), tile_cols=(1, 8))
    assert one.rows == 0 and one.cost == one.rows_cost
    shared = _random_edges(64, 64, 0.3, seed=4)
    m2 = pc.lower(pc.summate(pc.summate(p, num_nodes=64, edges=pc.Sparse(shared), seed=2),
                             num_nodes=1, seed=3))
    g2 = next(g for g in m2.groups if g.kind == pcir.SUM and g.num_nodes == 64)
    choice = choose_tiles(m2, g2, shared, True)
    assert choice.rows >= 16 and choice.cols == 1 and choice.cost < choice.rows_cost
    blocks = choose_tiles(m2, g2, shared, True, tile_rows=(choice.rows,), tile_cols=(8,))
    assert blocks.stored >= choice.stored and blocks.cost >= choice.cost


def _compiled(model, **opts):
    return passes.compile_model(model, options={"detect-block-sparsity": opts} if opts else None)


# tile_dense off: at 23 rows the cost model stores these small pruned groups DENSE
# (one run of all their rows, row_tiles.dense_cost); the tiles are what is tested here
@pytest.mark.parametrize("opts", [{"tile_dense": False},
                                  {"tile_rows": 16, "tile_cols": 1, "tile_dense": False},
                                  {"tile_rows": "4/16", "tile_cols": "2/8", "tile_dense": False}])
def test_placement_keeps_surviving_edges_and_pads_with_exact_zeros(opts):
    model = pruned_tiles()
    table = ir.tensor_table(model)
    result = _compiled(model, **opts)
    out, layout = result.model, result.layout
    tiles = row_tiles(out, ir.tensor_table(out))
    assert tiles, "the pruned sums should get row tiles"
    out_table = ir.tensor_table(out)
    sum_params, _ = pack_parameters(out, layout)
    placement = {p.group: p for p in layout.placements}
    for gid in tiles:
        g = out.groups[gid]
        w_in = np.asarray(table[model.groups[gid].sum.weights], dtype=np.float64)
        w_out = np.asarray(out_table[g.sum.weights], dtype=np.float64)
        # the same multiset of real weights, the rest exactly 0
        assert np.count_nonzero(w_out) == np.count_nonzero(w_in) == len(w_in)
        np.testing.assert_array_equal(np.sort(w_out[w_out != 0]), np.sort(w_in))
        assert len(w_out) > len(w_in), "tiles should add pseudo-edges"
        # packed: the group's slice holds the same values in edge order
        p = placement[gid]
        packed = sum_params[p.param_start:p.param_start + p.param_count]
        np.testing.assert_array_equal(packed, w_out)
        # every row still sums to 1 over its real edges
        rows = np.asarray(out_table[g.sum.edges])[:, 0]
        np.testing.assert_allclose(np.bincount(rows, weights=w_out), 1.0, rtol=1e-5)
    kernels = {(sp.kernel, sp.kernel_options.get("tile_rows")) for layer in layout.layers
               for sp in layer.sum_partitions}
    assert any(k == "row_tiles" and r for k, r in kernels)


def test_tiled_circuit_matches_the_reference():
    model = pruned_tiles()
    result = _compiled(model, tile_rows=16, tile_cols=1, tile_dense=False)
    from pccompiler.backends import reference
    from tests.conformance.circuits import random_data
    x = random_data(model, 32, seed=0)
    circuit = pc.compile(model, backend="torch", device="cpu",
                         pass_options={"detect-block-sparsity": {"tile_rows": 16,
                                                                 "tile_cols": 1,
                                                                 "tile_dense": False}})
    np.testing.assert_allclose(circuit.log_prob(x).detach().numpy(),
                               reference.log_prob(model, x), rtol=1e-5)
    assert row_tiles(result.model, ir.tensor_table(result.model))
    assert any(sp.kernel == "row_tiles" for layer in circuit.layout.layers
               for sp in layer.sum_partitions)


def test_a_stale_record_is_ignored():
    model = pruned_tiles()
    clean = _compiled(model, tiles=False)
    stale = pcir.Model()
    stale.CopyFrom(model)
    sums = [g.id for g in model.groups if g.kind == pcir.SUM]
    stale.metadata[ROW_TILES_KEY] = ",".join(f"{gid}:16:4" for gid in sums) + ",x:y"
    assert row_tiles(stale, ir.tensor_table(stale)) == {}
    layout = _compiled(stale, tiles=False).layout
    assert ROW_TILES_KEY not in _compiled(stale, tiles=False).model.metadata
    layout.pipeline = clean.layout.pipeline = ""
    layout.model_hash = clean.layout.model_hash = ""
    assert layout == clean.layout


def _sparse_sums(model) -> set[int]:
    return {g.id for g in model.groups if g.kind == pcir.SUM and g.sum.pattern == pcir.SPARSE}


@pytest.mark.parametrize("name", [n for n in sorted(all_circuits()) if n != "pruned_tiles"])
def test_only_sparse_sums_take_tiles_and_other_circuits_keep_their_layout(name):
    """Tiles (one-row tiles included: their node flows skip the per-pair
    kernel) go to SPARSE sum groups only; a circuit the pass leaves alone
    compiles to the layout of tiles=false."""
    model = all_circuits()[name]()
    on, off = _compiled(model, tile_dense=False), _compiled(model, tiles=False)
    tiled = set(row_tiles(on.model, ir.tensor_table(on.model)))
    assert tiled <= _sparse_sums(off.model)
    if not tiled:
        assert ROW_TILES_KEY not in on.model.metadata
        on.layout.pipeline = off.layout.pipeline = ""
        assert on.layout == off.layout


def test_the_small_sparse_circuit_takes_tiles_without_losing_an_edge():
    """The conformance `sparse` circuit (5 x 6 sum with uneven fan-in): its
    sums now price below the one-row form as tiles; the placement pads
    with exact zeros only."""
    model = all_circuits()["sparse"]()
    out = _compiled(model, tile_dense=False).model
    tiles = row_tiles(out, ir.tensor_table(out))
    assert tiles
    table, out_table = ir.tensor_table(model), ir.tensor_table(out)
    for gid in tiles:
        w_in = np.asarray(table[model.groups[gid].sum.weights])
        w_out = np.asarray(out_table[out.groups[gid].sum.weights])
        np.testing.assert_array_equal(np.sort(w_out[w_out != 0]), np.sort(w_in))


def test_the_triton_plan_runs_each_tile_as_one_block_run():
    """The kernels see a tile as `group` consecutive one-row blocks with the
    same children (plan.shared_run): at least the tile's rows per run."""
    from pccompiler.backends.triton.plan import build_plan
    layout = _compiled(pruned_tiles(), tile_rows="16/32", tile_cols="1/8",
                       tile_dense=False).layout
    plan = build_plan(layout, "cpu")
    tiled = [p for lp in plan.layers for p in lp.sums if "tile_rows" in p.options]
    assert tiled and any(int(p.options["tile_rows"]) >= 16 for p in tiled)
    for part in tiled:
        assert part.block_size == 1 and part.rows >= int(part.options["tile_rows"])



def test_rows_past_the_last_whole_tile_run_as_one_row_tiles_in_one_partition_per_size():
    """The remainder of a group (37 = 2 x 16 + 5 rows) becomes one-row tiles,
    not 4 + 1; a layer holds one row-tile partition per tile size (each is
    three launches a step; the kernels skip empty child chunks per run)."""
    grid = tile_grid(37, [24, 12], 16, 1)
    assert grid.tile_rows.tolist() == [16, 16, 1, 1, 1, 1, 1]
    edges = _random_edges(37, 36, 0.2, seed=5)
    new, gather = tile_edges(edges, grid)
    assert is_tiled(new, grid)
    assert np.array_equal(new[gather >= 0], edges[gather[gather >= 0]])
    # the one-row tiles pad nothing
    tail = new[:, 0] >= 32
    assert np.array_equal(new[tail], edges[edges[:, 0] >= 32])
    layout = _compiled(pruned_tiles()).layout
    for layer in layout.layers:
        sizes = [sp.kernel_options["tile_rows"] for sp in layer.sum_partitions
                 if sp.kernel == "row_tiles"]
        assert len(sizes) == len(set(sizes))


def _half_pruned(n):
    x = pc.inputs(0, 32, pc.Categorical(num_cats=3), seed=0)
    y = pc.inputs(1, 32, pc.Categorical(num_cats=3), seed=1)
    edges = _random_edges(n, 32, 0.5, seed=6)
    s = pc.summate(pc.multiply(x, y), num_nodes=n, edges=pc.Sparse(edges), seed=2)
    z = pc.inputs(2, n, pc.Categorical(num_cats=3), seed=3)
    return pc.lower(pc.summate(pc.multiply(s, z), num_nodes=1, seed=4)), len(edges)


def test_a_half_pruned_group_with_whole_blocks_goes_dense_with_exact_zeros():
    """Tiles of a 50%-pruned group cover every column (all pay atomics in
    the node flows): with 32-row blocks the DENSE form models cheaper
    (`dense_cost`), missing edges as zero weights that EM keeps at 0; at 31
    rows as well (one run of one-row blocks). With tile_dense=false it stays tiled."""
    from pccompiler.passes.helpers.row_tiles import dense_cost
    model, num_edges = _half_pruned(32)
    g = next(g for g in model.groups if g.kind == pcir.SUM and g.num_nodes == 32)
    edges = np.asarray(ir.tensor_table(model)[g.sum.edges])
    best = choose_tiles(model, g, edges, True)
    assert dense_cost(32, 32, 32, 32) < best.cost
    # at 31 rows too: one-row blocks that the triton plan runs as one run of 31 rows
    # (plan.run_table), node flows stored through the tile (row_tiles.dense_cost)
    assert dense_cost(31, 32, 1, 32) < best.cost
    out = _compiled(model).model
    og = out.groups[g.id]
    assert og.sum.pattern == pcir.DENSE
    w = np.asarray(ir.tensor_table(out)[og.sum.weights]).reshape(32, 32)
    assert np.count_nonzero(w) == num_edges
    w_in = np.asarray(ir.tensor_table(model)[g.sum.weights])
    np.testing.assert_array_equal(w[edges[:, 0], edges[:, 1]], w_in)
    circuit = pc.compile(model, backend="torch", device="cpu")
    x = torch.randint(0, 3, (64, 3))
    circuit.em_step(x, step_size=1.0, pseudocount=0.1)
    params = circuit.to_model()
    w_em = np.asarray(ir.tensor_table(params)[params.groups[g.id].sum.weights]).reshape(32, 32)
    # EM moved the real weights and left every pruned one at exactly 0
    assert np.count_nonzero(w_em) == num_edges
    assert np.all(w_em[edges[:, 0], edges[:, 1]] > 0)
    assert not np.allclose(w_em[edges[:, 0], edges[:, 1]], w_in)
    off = _compiled(model, tile_dense=False).model
    assert off.groups[g.id].sum.pattern == pcir.SPARSE and row_tiles(off, ir.tensor_table(off))
    odd, _ = _half_pruned(31)
    out31 = _compiled(odd).model
    assert all(h.sum.pattern == pcir.DENSE for h in out31.groups
               if h.kind == pcir.SUM and h.num_nodes == 31)
