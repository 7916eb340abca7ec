"""A cached compile (layout-cache hit) gives the circuit a cold compile gives:
same log_prob, the caller's current parameters, zeroed reserved entries,
working EM, and no copy of the parameters through a rebuilt model'."""

import networkx as nx
import numpy as np
import pytest
import torch

import pccompiler as pc
from pccompiler import ir
from pccompiler.backends.common.packing import pack_parameters
from pccompiler.backends.common.packing_upload import pack_parameters_into
from pccompiler.ir import pcir
from pccompiler.passes import cache as cache_mod


def _hclt(seed=0):
    tree = nx.Graph([(0, 1), (1, 2), (1, 3), (3, 4)])
    return pc.lower(pc.hclt(None, 4, num_cats=3, tree=tree, seed=seed))


def _block_sparse(seed=0):
    rng = np.random.default_rng(seed)
    pairs = np.array([(p, c) for p in range(4) for c in range(8) if (p + c) % 3], np.int64)
    x = pc.inputs(0, 64, pc.Categorical(num_cats=5), seed=seed)
    big = pc.summate(x, num_nodes=32, edges=pc.BlockSparse(pairs, 8),
                     weights=rng.random((len(pairs), 8, 8)) + 0.1, normalize=True)
    return pc.lower(pc.summate(big, num_nodes=1, seed=seed + 1))


def _data(model, n=16, seed=1):
    rng = np.random.default_rng(seed)
    cats = np.array([v.num_cats for v in model.variables])
    return rng.integers(0, cats, size=(n, len(cats)))


def _new_parameters(model, seed):
    """The same Model with every sum weight and input row redrawn (normalised)."""
    rng = np.random.default_rng(seed)
    names = {g.sum.weights: g for g in model.groups if g.kind == pcir.SUM}
    names.update({g.input.params: g for g in model.groups if g.kind == pcir.INPUT})
    out = pcir.Model()
    out.CopyFrom(model)
    for t in out.tensors:
        g = names.get(t.name)
        if g is None:
            continue
        w = rng.random(tuple(t.dims)) + 0.1
        if g.kind == pcir.SUM and g.sum.pattern == pcir.DENSE:
            w /= w.sum(1, keepdims=True)
        elif g.kind == pcir.SUM and g.sum.pattern == pcir.BLOCK_SPARSE:
            pairs = ir.tensor_table(out)[g.sum.edges]
            totals = np.zeros((int(pairs[:, 0].max()) + 1, w.shape[1]))
            np.add.at(totals, pairs[:, 0], w.sum(2))
            w /= totals[pairs[:, 0]][:, :, None]
        else:
            w /= w.sum(-1, keepdims=True)
        t.CopyFrom(ir.from_numpy(w.astype(ir.to_numpy(t).dtype), t.name))
    return out


@pytest.fixture(autouse=True)
def _fresh_warnings():
    cache_mod._warned.clear()


@pytest.mark.parametrize("build", [_hclt, _block_sparse])
def test_cached_compile_matches_cold_and_uses_callers_parameters(tmp_path, build):
    model = build()
    x = _data(model)
    cold = pc.compile(model, backend="torch", device="cpu", cache=tmp_path)
    assert any("stored" in n for n in cold.compile_report.cache_notes)
    hot = pc.compile(model, backend="torch", device="cpu", cache=tmp_path)
    assert any(n.startswith("hit") for n in hot.compile_report.cache_notes)
    assert hot.compile_report.records == []                  # no pass ran
    assert hot.model is model                                # the caller's Model, not a copy
    assert torch.equal(hot.log_prob(x), cold.log_prob(x))
    assert torch.equal(hot.sum_params, cold.sum_params)
    assert torch.equal(hot.input_params, cold.input_params)
    ref_sum, ref_in = pack_parameters(model, hot.layout)   # the reference packing (float64)
    np.testing.assert_allclose(hot.sum_params.numpy(), ref_sum, rtol=1e-6)
    np.testing.assert_allclose(hot.input_params.numpy(), ref_in, rtol=1e-6)
    assert float(hot.sum_params[: int(hot.layout.max_block_size)].abs().sum()) == 0.0


@pytest.mark.parametrize("build", [_hclt, _block_sparse])
def test_hit_takes_the_current_parameters(tmp_path, build):
    model = build()
    x = _data(model)
    pc.compile(model, backend="torch", device="cpu", cache=tmp_path)
    other = _new_parameters(model, seed=7)                   # same structure, new values
    hot = pc.compile(other, backend="torch", device="cpu", cache=tmp_path)
    assert any(n.startswith("hit") for n in hot.compile_report.cache_notes)
    assert hot.model is other
    fresh = pc.compile(other, backend="torch", device="cpu")
    torch.testing.assert_close(hot.log_prob(x), fresh.log_prob(x), rtol=0, atol=0)
    old = pc.compile(model, backend="torch", device="cpu")
    assert not torch.allclose(hot.log_prob(x), old.log_prob(x))
    # the caller's parameters come back out unchanged
    for t, u in zip(hot.to_model().tensors, other.tensors):
        np.testing.assert_allclose(ir.to_numpy(t), ir.to_numpy(u), rtol=1e-6)


def test_em_after_a_hit_matches_em_after_a_cold_compile(tmp_path):
    model = _hclt()
    x = _data(model, n=32)
    cold = pc.compile(model, backend="torch", device="cpu", cache=tmp_path)
    hot = pc.compile(model, backend="torch", device="cpu", cache=tmp_path)
    for circuit in (cold, hot):              # statistics buffers are allocated on first use
        assert float(circuit.engine.sum_param_flows.abs().sum()) == 0.0
        assert float(circuit.engine.input_node_flows.abs().sum()) == 0.0
    for _ in range(3):
        a = cold.em_step(x, pseudocount=0.1)
        b = hot.em_step(x, pseudocount=0.1)
        assert torch.equal(a, b)
    assert torch.equal(cold.sum_params, hot.sum_params)
    assert torch.equal(cold.input_params, hot.input_params)
    assert not torch.equal(hot.sum_params,
                           pc.compile(model, backend="torch", device="cpu").sum_params)


def test_a_changed_structure_or_option_misses(tmp_path):
    model = _hclt()
    pc.compile(model, backend="torch", device="cpu", cache=tmp_path)
    other = _hclt()                               # another object, same structure: hit
    hot = pc.compile(other, backend="torch", cache=tmp_path)
    assert any(n.startswith("hit") for n in hot.compile_report.cache_notes)
    assert hot.model is other
    bigger = pc.lower(pc.hclt(None, 5, num_cats=3, tree=nx.Graph([(0, 1), (1, 2), (1, 3),
                                                                    (3, 4)]), seed=0))
    notes = pc.compile(bigger, backend="torch", cache=tmp_path).compile_report.cache_notes
    assert any("miss" in n and "model_structure" in n for n in notes), notes
    notes = pc.compile(model, backend="torch", cache=tmp_path,
                       pass_options={"partition-blocks": {"max_block": 2}}
                       ).compile_report.cache_notes
    assert any("miss" in n and "pipeline" in n for n in notes), notes


def test_streaming_packing_zeroes_only_uncovered_entries():
    from pccompiler import passes
    model = _block_sparse()
    layout = passes.compile_model(model, backend="torch").layout
    s = torch.full((int(layout.num_sum_params),), float("nan"))
    i = torch.full((int(layout.num_input_params),), float("nan"))
    pack_parameters_into(model, layout, s, i)
    ref_sum, ref_in = pack_parameters(model, layout)
    np.testing.assert_allclose(s.numpy(), ref_sum, rtol=1e-6)
    np.testing.assert_allclose(i.numpy(), ref_in, rtol=1e-6)
