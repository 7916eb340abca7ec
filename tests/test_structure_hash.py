"""ir.structure_hash: a function of the structure alone (the layout cache's
key and every Layout's model_hash): parameter values, names and the stored
width of index tensors do not change it; any edge, index, tie, root or
variable does; the same Model hashes alike in another process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pccompiler import ir
from pccompiler.ir import pcir
from tests import factories


def _copy(model):
    out = pcir.Model()
    out.CopyFrom(model)
    return out


def _tensor(model, name):
    return next(t for t in model.tensors if t.name == name)


def _set(model, name, array):
    _tensor(model, name).CopyFrom(ir.from_numpy(array, name))


@pytest.mark.parametrize("name", sorted(factories.ALL_FACTORIES))
def test_parameter_values_do_not_change_the_hash(name):
    model = factories.ALL_FACTORIES[name](seed=0)
    other = _copy(model)
    rng = np.random.default_rng(1)
    for g in other.groups:
        param = g.input.params if g.kind == pcir.INPUT else g.sum.weights if \
            g.kind == pcir.SUM else ""
        if param:
            old = ir.to_numpy(_tensor(other, param))
            _set(other, param, rng.random(old.shape).astype(old.dtype))
    assert other != model
    assert ir.structure_hash(other) == ir.structure_hash(model)


def test_one_edge_changes_the_hash():
    model = factories.small_sparse_model(seed=0)
    g = next(g for g in model.groups if g.kind == pcir.SUM and g.sum.pattern == pcir.SPARSE)
    edges = ir.to_numpy(_tensor(model, g.sum.edges), copy=True)
    num_children = sum(model.groups[c].num_nodes for c in g.sum.children)
    other = _copy(model)
    edges[0, 1] = (edges[0, 1] + 1) % num_children
    _set(other, g.sum.edges, edges)
    assert ir.structure_hash(other) != ir.structure_hash(model)


def test_one_child_index_entry_a_tie_or_a_root_changes_the_hash():
    model = factories.small_dense_model(seed=0)
    base = ir.structure_hash(model)
    g = next(g for g in model.groups if g.kind == pcir.PRODUCT)
    index = ir.to_numpy(_tensor(model, g.product.child_index), copy=True)
    other = _copy(model)
    index[0, 0] = (index[0, 0] + 1) % model.groups[g.product.children[0]].num_nodes
    _set(other, g.product.child_index, index)
    assert ir.structure_hash(other) != base
    tied = _copy(model)
    tied.ties.add(group=7, target=6)
    assert ir.structure_hash(tied) != base
    rooted = _copy(model)
    rooted.roots[:] = [8]
    assert ir.structure_hash(rooted) != base
    varied = _copy(model)
    varied.variables[0].num_cats += 1
    assert ir.structure_hash(varied) != base


def test_names_and_index_widths_do_not_change_the_hash():
    model = factories.small_block_sparse_model(seed=0)
    other = _copy(model)
    for g in other.groups:
        g.name = f"renamed{g.id}"
    for g in other.groups:      # int32 index tensors stored as int64 and back
        name = g.product.child_index if g.kind == pcir.PRODUCT else g.sum.edges if \
            g.kind == pcir.SUM else ""
        if name:
            values = ir.to_numpy(_tensor(other, name))
            wide = np.int32 if values.dtype == np.int64 else np.int64
            _set(other, name, values.astype(wide))
    assert other != model
    assert ir.structure_hash(other) == ir.structure_hash(model)


def test_the_hash_is_the_same_in_another_process():
    code = ("from tests import factories; from pccompiler import ir; "
            "print(ir.structure_hash(factories.small_sparse_model(seed=3)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env={"PYTHONHASHSEED": "123", "PATH": ""},
                         cwd=Path(__file__).resolve().parents[1])
    assert out.stdout.strip() == ir.structure_hash(factories.small_sparse_model(seed=3))
