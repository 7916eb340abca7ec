"""`pccompiler.compile` of a builder group lowers it with no parameter bytes
in the Model (`lower(external=True)`: `external {location: "memory"}`, the
builder's arrays beside it). A layout-cache hit that keeps the input Model
then packs the arrays and never writes them into protobuf; every other path
(a miss, a hit that rebuilds the Model, a pass that reads values, no cache)
writes them in first, and gives what compiling the lowered Model gives."""

import numpy as np
import pytest
import torch

import pccompiler as pc
from pccompiler import ir
from pccompiler.ir import pcir
from pccompiler.ir.external_arrays import inline_arrays
from pccompiler.ir.tensors import IN_MEMORY
from pccompiler.passes import cache as cache_mod
from pccompiler.passes import manager
from tests.passes.circuits import block_mask, expand_blocks


def _hclt_group(seed=0):
    import networkx as nx
    return pc.hclt(None, 4, num_cats=3, tree=nx.Graph([(0, 1), (1, 2), (1, 3), (3, 4)]),
                   seed=seed)


def _shuffled_sparse_group(seed=0):
    """A sparse sum whose edges are shuffled blocks: detect-block-sparsity
    reorders it, so the passes replace the Model (the entry rebuilds it)."""
    rng = np.random.default_rng(seed)
    edges = expand_blocks(block_mask(rng, 2, 4, 0.5), 16)
    rows, cols = rng.permutation(32), rng.permutation(64)
    edges = np.stack([rows[edges[:, 0]], cols[edges[:, 1]]], 1)
    edges = edges[np.lexsort((edges[:, 1], edges[:, 0]))]
    x = pc.inputs(0, 64, pc.Categorical(num_cats=3), seed=seed)
    s = pc.summate(x, num_nodes=32, edges=pc.Sparse(edges), normalize=True, seed=seed + 1)
    return pc.summate(s, num_nodes=1, seed=seed + 2)


def _data(model, n=16, seed=1):
    cats = np.array([v.num_cats for v in model.variables])
    return np.random.default_rng(seed).integers(0, cats, size=(n, len(cats)))


@pytest.fixture(autouse=True)
def _fresh_warnings():
    cache_mod._warned.clear()


@pytest.fixture
def inlines(monkeypatch):
    """How many times compile_model wrote external tensors in."""
    calls = []
    real = manager._Values.inline

    def counting(self):
        if self.inlined is None and any(t.HasField("external") for t in self.given.tensors):
            calls.append(1)
        return real(self)
    monkeypatch.setattr(manager._Values, "inline", counting)
    return calls


def test_external_lowering_holds_no_bytes_and_inlines_to_the_plain_model():
    root = _hclt_group()
    arrays: dict = {}
    model = pc.lower(root, arrays_out=arrays, external=True)
    params = {g.input.params for g in model.groups if g.kind == pcir.INPUT} | \
        {g.sum.weights for g in model.groups if g.kind == pcir.SUM}
    external = {t.name for t in model.tensors if t.HasField("external")}
    assert external == params - {""} and external == set(arrays)
    for t in model.tensors:
        if t.HasField("external"):
            assert t.raw_data == b"" and t.external.location == IN_MEMORY
            assert t.external.length == arrays[t.name].nbytes
    assert inline_arrays(model, arrays).SerializeToString() == \
        pc.lower(root).SerializeToString()
    with pytest.raises(ValueError, match="arrays_out"):
        pc.lower(root, external=True)


@pytest.mark.parametrize("build", [_hclt_group, _shuffled_sparse_group])
def test_group_compiles_like_its_lowered_model_on_every_path(tmp_path, build, inlines):
    root = build()
    plain = pc.lower(root)
    x = _data(plain)
    want = pc.compile(plain, backend="torch", device="cpu").log_prob(x)
    rewrites = pc.compile(plain, backend="torch", device="cpu").model is not plain

    cold = pc.compile(root, backend="torch", device="cpu", cache=tmp_path)   # miss: inlined
    assert any("stored" in n for n in cold.compile_report.cache_notes)
    assert len(inlines) == 1
    hot = pc.compile(root, backend="torch", device="cpu", cache=tmp_path)    # hit
    assert any(n.startswith("hit") for n in hot.compile_report.cache_notes)
    assert hot.compile_report.records == []
    # a hit keeping the input Model packs the builder's arrays: nothing inlined;
    # a hit whose entry rebuilds the Model reads the values, so inlines once
    assert len(inlines) == (2 if rewrites else 1)
    # ... and the engine holds the Model with no bytes, and the arrays
    assert any(t.HasField("external") for t in hot.engine.model.tensors) != rewrites
    none = pc.compile(root, backend="torch", device="cpu")                  # no cache
    for circuit in (cold, hot, none):
        torch.testing.assert_close(circuit.log_prob(x), want, rtol=0, atol=0)
        # the circuit's Model is self-contained, with the builder's values
        assert not any(t.HasField("external") for t in circuit.model.tensors)
    assert hot.model.SerializeToString() == cold.model.SerializeToString()


def test_a_hit_reads_the_builders_current_values(tmp_path):
    root = _hclt_group(seed=0)
    pc.compile(root, backend="torch", device="cpu", cache=tmp_path)
    other = _hclt_group(seed=5)               # same structure, other parameters
    plain = pc.lower(other)
    x = _data(plain)
    hot = pc.compile(other, backend="torch", device="cpu", cache=tmp_path)
    assert any(n.startswith("hit") for n in hot.compile_report.cache_notes)
    torch.testing.assert_close(hot.log_prob(x),
                               pc.compile(plain, backend="torch", device="cpu").log_prob(x),
                               rtol=0, atol=0)
    assert not torch.allclose(hot.log_prob(x),
                              pc.compile(root, backend="torch", device="cpu").log_prob(x))


def test_a_value_dependent_pass_sees_the_values(tmp_path, inlines):
    root = _hclt_group()
    options = {"tie-params": {"detect": True}}
    cold = pc.compile(root, backend="torch", device="cpu", cache=tmp_path,
                      pass_options=options)
    hot = pc.compile(root, backend="torch", device="cpu", cache=tmp_path,
                     pass_options=options)
    assert any(n.startswith("hit") for n in hot.compile_report.cache_notes)
    assert len(inlines) == 2                 # the parameter hash of the key reads them
    x = _data(cold.model)
    torch.testing.assert_close(hot.log_prob(x), cold.log_prob(x), rtol=0, atol=0)
    assert ir.structure_hash(hot.model) == ir.structure_hash(pc.lower(root))


def test_kernels_for_a_target_are_built_from_a_self_contained_model(tmp_path, monkeypatch):
    """compile(root, target=...) records the kernels from an engine of its
    own, which packs the Model's bytes: on a hit that kept the group's
    Model (no bytes in it), the driver must write them in first."""
    from pccompiler.backends.triton import aot
    seen = []

    def build_kernels(model, layout, *args):
        assert not any(t.HasField("external") for t in model.tensors)
        seen.append(model.SerializeToString())
        return []
    monkeypatch.setattr(aot, "build_kernels", build_kernels)
    monkeypatch.setattr(aot, "kernel_manifest", lambda kernels: ({"kernels": kernels}, {}))
    root = _hclt_group()
    for _ in range(2):                                    # a miss, then a hit
        pc.compile(root, cache=tmp_path, target="cuda:sm_90", batch_sizes=(8,))
    assert seen == [pc.lower(root).SerializeToString()] * 2
