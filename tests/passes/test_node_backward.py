"""Deferred backward partitions of node layouts (passes/node_backward.py):
built on demand they equal the eager ones byte for byte; a deferred
Layout says so, passes the checker, and runs the same WMC on torch; a
backend that reads them gets them before it compiles."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import pccompiler as pc
from pccompiler import ir
from pccompiler.backends.torch import TorchBackend
from pccompiler.driver import compile_with_arrays, reads_backward
from pccompiler.logic import wmc
from pccompiler.passes.manager import compile_model
from pccompiler.passes.node_backward import DEFERRED_KEY, add_backward, is_deferred

from tests.logic.circuits import SHARED, random_cnf_sdd, shared_sdd


def _model(name, tmp_path):
    path = (random_cnf_sdd(tmp_path, np.random.default_rng(11), 12, 30)[0] if name == "random"
            else shared_sdd(name))
    return pc.from_sdd(path, form="nodes")


def _bytes(layout):
    return layout.SerializeToString(deterministic=True)


@pytest.mark.parametrize("name", SHARED + ["random"])
def test_backward_built_on_demand_equals_the_eager_layout(name, tmp_path):
    model = _model(name, tmp_path)
    eager = compile_model(model, backend="torch", verify=False).layout
    lazy = compile_model(model, backend="torch", verify=False, backward=False).layout
    assert not is_deferred(eager) and is_deferred(lazy)
    assert lazy.metadata[DEFERRED_KEY] == "deferred"
    assert sum(len(l.sum_backward_partitions) for l in lazy.layers) == 0
    assert sum(len(l.sum_backward_partitions) for l in eager.layers) > 0
    ir.check_layout(lazy, model, deep=True)             # a valid forward-only Layout
    assert add_backward(lazy) is lazy and not is_deferred(lazy)
    assert _bytes(lazy) == _bytes(eager)
    assert _bytes(add_backward(lazy)) == _bytes(eager)   # a no-op once built


def test_a_group_layout_ignores_backward_false():
    """Group layouts always carry their backward partitions."""
    model = pc.from_sdd(shared_sdd("road_r"))
    a = compile_model(model, verify=False).layout
    b = compile_model(model, verify=False, backward=False).layout
    assert not is_deferred(b) and _bytes(a) == _bytes(b)


def test_torch_compiles_without_backward_tables_and_answers_the_same():
    model = pc.from_sdd(shared_sdd("sudoku_4"), form="nodes")
    assert not reads_backward(TorchBackend())
    circuit = pc.compile(model, backend="torch", check=False)
    assert is_deferred(circuit.layout)
    eager = compile_model(model, backend="torch", verify=False).layout
    ref = TorchBackend().compile(model, eager, {"device": "cpu", "dtype": "float32"})
    w = torch.from_numpy(np.random.default_rng(0).uniform(0.1, 0.9, size=(5, len(model.variables))))
    with torch.no_grad():
        assert torch.equal(wmc(circuit, w.float()), wmc(ref, w.float()))
    # flows and gradients run over the forward partitions
    wg = w.clone().requires_grad_(True)
    wmc(circuit, wg.float()).sum().backward()
    wr = w.clone().requires_grad_(True)
    wmc(ref, wr.float()).sum().backward()
    assert torch.equal(wg.grad, wr.grad)


def test_a_backend_that_reads_backward_partitions_gets_them():
    model = pc.from_sdd(shared_sdd("road_r"), form="nodes")
    eager = compile_model(model, verify=False).layout
    lazy = compile_model(model, verify=False, backward=False).layout
    seen = []

    class Reader(TorchBackend):
        reads_backward_partitions = True

        def compile(self, model, layout, options=None, arrays=None):
            seen.append(_bytes(layout))
            return super().compile(model, layout, options)

    compile_with_arrays(Reader(), model, lazy, {"device": "cpu"}, None)
    assert seen == [_bytes(eager)]


def test_triton_refuses_a_deferred_layout_with_the_fix_named():
    """Called directly (not through pccompiler.compile / load, which fill the
    tables in), the triton backend must not run flows over missing tables."""
    from pccompiler.backends.triton import TritonBackend
    from pccompiler.errors import UnsupportedError
    model = pc.from_sdd(shared_sdd("road_r"), form="nodes")
    lazy = compile_model(model, verify=False, backward=False).layout
    with pytest.raises(UnsupportedError, match=r"add_backward\(layout\)"):
        TritonBackend().compile(model, lazy, {"device": "cpu"})
    from pccompiler.backends.triton.compat import interpreting
    if interpreting():          # the kernels run on the CPU only under TRITON_INTERPRET=1
        circuit = TritonBackend().compile(model, add_backward(lazy), {"device": "cpu"})
        assert circuit.layout is not None


@pytest.mark.parametrize("name", SHARED + ["random"])
def test_whole_array_sum_edges_equal_the_per_partition_ones(name, tmp_path, monkeypatch):
    """The layout pass's sum edges of a small circuit, taken from its edge
    array in whole-array steps (node_layout.sum_edge_arrays), give the
    Layout that node_backward.sum_edges' partition-by-partition fill gives
    (WHOLE_EDGES_MAX = -1: every circuit takes that path)."""
    from pccompiler.passes import node_layout
    model = _model(name, tmp_path)
    fast = compile_model(model, backend="triton", verify=False).layout
    monkeypatch.setattr(node_layout, "WHOLE_EDGES_MAX", -1)
    general = compile_model(model, backend="triton", verify=False).layout
    assert sum(len(l.sum_backward_partitions) for l in fast.layers) > 0
    assert _bytes(fast) == _bytes(general)
