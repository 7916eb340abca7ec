"""The text / JSON dump: totals that agree with the tensors, one line per
group with its pattern and tie, truncation for huge models, layouts."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from pccompiler import ir
from pccompiler.ir import pcir
from pccompiler.ir.text import model_info, scope_summary
from tests import factories as F


@pytest.mark.parametrize("scope,text", [
    ([3], "x3"), ([0, 1, 2, 3], "x0..x3 (4)"), ([3, 7], "{x3,x7}"),
    ([1, 3, 4, 9, 40], "{x1,x3,x4,...,x40} (5)"), ([], "{}")])
def test_scope_summary(scope, text):
    assert scope_summary(scope) == text


def _edge_count(model, g):
    table = ir.tensor_table(model)
    if g.sum.pattern == pcir.DENSE:
        return g.num_nodes * sum(model.groups[c].num_nodes for c in g.sum.children)
    edges = table[g.sum.edges]
    return len(edges) * (g.sum.block_size ** 2 if g.sum.pattern == pcir.BLOCK_SPARSE else 1)


@pytest.mark.parametrize("name", sorted(F.ALL_FACTORIES))
def test_totals_match_the_model(name):
    model = F.ALL_FACTORIES[name](seed=2)
    info = model_info(model)
    table = ir.tensor_table(model)
    tied = {t.group for t in model.ties}
    params = sum(table[g.input.params].size if g.kind == pcir.INPUT else table[g.sum.weights].size
                 for g in model.groups if g.kind != pcir.PRODUCT and g.id not in tied)
    t = info["totals"]
    assert t["nodes"] == sum(g.num_nodes for g in model.groups)
    assert t["sum_edges"] == sum(_edge_count(model, g) for g in model.groups
                                 if g.kind == pcir.SUM)
    assert t["product_edges"] == sum(g.num_nodes * len(g.product.children)
                                     for g in model.groups if g.kind == pcir.PRODUCT)
    assert t["edges"] == t["sum_edges"] + t["product_edges"]     # one count (ir.edge_counts)
    assert t["parameters"] == params and t["groups"] == len(model.groups)
    assert t["ties"] == len(model.ties) and t["roots"] == [9]
    text = ir.dump_text(model)
    assert len(text.splitlines()) == 3 + len(model.groups)
    assert f"{t['edges']} edges" in text.splitlines()[1]


def test_group_lines_show_pattern_density_tie_and_params():
    model = F.tied_model(seed=0, pattern=pcir.SPARSE)
    lines = {line.split()[0]: line for line in ir.dump_text(model).splitlines()[3:]}
    edges = len(ir.tensor_table(model)["g6.edges"])
    assert f"sparse {edges} edges ({100 * edges / 16:.1f}%)" in lines["g6"]
    assert "tied -> g6" in lines["g7"] and "tied -> g0" in lines["g2"]
    w = ir.tensor_table(model)["g9.weights"]
    assert f"w min/mean/max {w.min():.3g}/{w.mean():.3g}/{w.max():.3g}" in lines["g9"]
    assert "dense 1x4" in lines["g9"] and '"root"' in lines["g9"]
    assert "<- g6,g7" in lines["g8"] and "x0..x3 (4)" in lines["g8"]
    bs = F.small_block_sparse_model(seed=0)
    blocks = len(ir.tensor_table(bs)["g6.edges"])
    line = [l for l in ir.dump_text(bs).splitlines() if l.startswith("g6 ")][0]
    assert f"block-sparse B=2 {blocks}/4 blocks ({25.0 * blocks:.1f}%)" in line


def test_entropy_and_gaussian_summaries():
    model = F.small_dense_model(seed=0)
    p = ir.tensor_table(model)["g0.params"].astype(np.float64)
    h = -(p * np.log(p)).sum(axis=1)
    assert model_info(model)["groups"][0]["params"]["entropy"]["mean"] == pytest.approx(h.mean())
    g = F.gaussian_model(seed=0)
    params = ir.tensor_table(g)["g1.params"]
    info = model_info(g)["groups"][1]["params"]
    assert info["std"]["min"] == pytest.approx(params[:, 1].min())


def test_max_groups_shows_head_tail_and_summary():
    model = F.small_dense_model()
    text = ir.dump_text(model, max_groups=4)
    lines = text.splitlines()
    ids = [l.split()[0] for l in lines if l.startswith("g")]
    assert ids == ["g0", "g1", "g8", "g9"]
    assert "... 6 groups omitted ..." in text and "by kind:" in text
    info = json.loads(ir.dump_json(model, max_groups=3))
    assert [g["id"] for g in info["groups"]] == [0, 1, 9] and info["omitted_groups"] == 7
    assert info["by_kind"]["sum"]["groups"] == 3


def test_json_has_the_text_facts():
    model = F.small_sparse_model()
    info = json.loads(ir.dump_json(model))
    assert info == json.loads(json.dumps(model_info(model)))
    assert info["groups"][6]["edges"]["pattern"] == "sparse"


def test_layout_dump_lists_layers_and_partitions():
    model = F.tied_model()
    layout = F.naive_layout(model)
    text = ir.dump_layout_text(layout)
    body = text.splitlines()[4:]
    parts = sum(len(l.input_partitions) + len(l.product_partitions) + len(l.sum_partitions)
                + len(l.sum_backward_partitions) for l in layout.layers)
    assert len(body) == len(layout.layers) + parts
    assert sum(l.startswith("layer ") for l in body) == len(layout.layers)
    assert "sum B=1 blocks 4" in text and "kernel=sparse" in text
    info = json.loads(ir.dump_json(layout))
    assert len(info["layers"]) == len(layout.layers) and info["kind"] == "layout"


def wide_model(num_groups: int) -> pcir.Model:
    """num_groups - 1 input groups over distinct variables under one product."""
    n = num_groups - 1
    variables = [ir.make_variable(f"x{v}", pcir.BINARY) for v in range(n)]
    params = np.full((2, 1), 0.5, np.float32)
    groups = [ir.make_input_group(v, v, pcir.BERNOULLI_DIST, 2, f"p{v}") for v in range(n)]
    tensors = [ir.make_tensor(f"p{v}", params) for v in range(n)]
    tensors.append(ir.make_tensor("idx", np.zeros((1, n), np.int32)))
    groups.append(ir.make_product_group(n, range(n), 1, range(n), "idx"))
    return ir.make_model(variables, groups, [n], tensors)


def test_dump_of_many_groups_is_fast():
    model = wide_model(20_000)
    start = time.perf_counter()
    ir.check(model)
    text = ir.dump_text(model, max_groups=10)
    full = ir.dump_text(model)
    elapsed = time.perf_counter() - start
    assert "19990 groups omitted" in text and len(full.splitlines()) == 20_003
    assert elapsed < 20, elapsed
