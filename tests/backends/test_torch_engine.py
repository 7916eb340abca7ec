"""The torch engine beyond conformance: flows vs autograd, float64,
chunking, CUDA-free devices, and the registry's refusals."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import pccompiler
from pccompiler import backends, passes
from pccompiler.backends import reference
from pccompiler.backends.interface import DIST_NAMES, Backend, Capabilities
from pccompiler.backends.torch import engine as torch_engine
from pccompiler.ir import pcir
from pccompiler.errors import BackendError, DataError, UnsupportedError
from tests.conformance.circuits import block_sparse, dense, gaussian, random_data, tied


def compiled(make, dtype="float32"):
    model = make()
    result = passes.compile_model(model)
    circuit = backends.get_backend("torch").compile(result.model, result.layout,
                                                    {"device": "cpu", "dtype": dtype})
    return model, circuit


@pytest.mark.parametrize("make", [dense, block_sparse, tied])
def test_parameter_flows_equal_weight_times_gradient(make):
    """EM flows computed directly equal w * d(sum log p)/dw from autograd."""
    model, circuit = compiled(make, "float64")
    x = random_data(model, 32, seed=0)
    circuit.accumulate_flows(x)
    direct_sum = circuit.engine.sum_param_flows.clone()
    circuit.zero_flows()
    circuit.sum_params.requires_grad_(True)
    circuit.log_prob(x).sum().backward()
    via_grad = (circuit.sum_params.detach() * circuit.sum_params.grad)
    np.testing.assert_allclose(direct_sum.numpy(), via_grad.numpy(), rtol=1e-9, atol=1e-12)
    assert direct_sum.sum() > 0


def test_float64_matches_reference_tightly():
    model, circuit = compiled(block_sparse, "float64")
    x = random_data(model, 50, seed=1)
    missing = np.random.default_rng(2).random(x.shape) < 0.3
    got = circuit.log_prob(x, missing).numpy()
    np.testing.assert_allclose(got, reference.log_prob(model, x, missing), rtol=1e-12)


def test_chunked_partitions_give_the_same_values(monkeypatch):
    model, circuit = compiled(dense)
    x = random_data(model, 40, seed=3)
    full = circuit.log_prob(x)
    circuit.accumulate_flows(x)
    flows_full = circuit.engine.sum_param_flows.clone()
    circuit.zero_flows()
    monkeypatch.setattr(torch_engine, "CHUNK_ELEMENTS", 7)   # one block per chunk
    torch.testing.assert_close(circuit.log_prob(x), full)
    circuit.accumulate_flows(x)
    torch.testing.assert_close(circuit.engine.sum_param_flows, flows_full)


def test_input_statistics_equal_param_times_gradient():
    """Categorical counts equal p * d(sum log p)/dp (autograd through the
    input gathers, as SGD on input parameters uses)."""
    model, circuit = compiled(dense, "float64")
    x = random_data(model, 32, seed=4)
    circuit.accumulate_flows(x)
    direct = circuit.engine.input_param_flows.clone()
    circuit.zero_flows()
    circuit.input_params.requires_grad_(True)
    circuit.log_prob(x).sum().backward()
    via_grad = circuit.input_params.detach() * circuit.input_params.grad
    np.testing.assert_allclose(direct.numpy(), via_grad.numpy(), rtol=1e-9, atol=1e-12)
    # every sample sends flow 1 into each variable's input nodes
    assert direct.sum().item() == pytest.approx(32 * len(model.variables))


def test_bad_batches_raise_data_errors():
    model, circuit = compiled(dense)
    x = random_data(model, 4, seed=5)
    with pytest.raises(DataError, match="expected"):
        circuit.log_prob(x[:, :2])
    bad = x.copy()
    bad[2, 1] = 7
    with pytest.raises(DataError, match="row 2, column 1"):
        circuit.log_prob(bad)
    missing = np.zeros(x.shape, dtype=bool)
    missing[2, 1] = True           # a missing entry may hold anything
    assert torch.isfinite(circuit.log_prob(bad, missing)).all()
    model, real = compiled(gaussian)
    x = random_data(model, 4, seed=6)
    x[1, 2] = np.nan
    with pytest.raises(DataError, match="row 1, column 2: value nan is not finite"):
        real.log_prob(x)
    missing = np.isnan(x)
    torch.testing.assert_close(real.log_prob(x, missing).double(),
                               torch.as_tensor(reference.log_prob(model, x, missing)))


def test_registry_knows_builtins_and_refuses_unknown():
    assert {"torch", "reference"} <= set(backends.available_backends())
    assert backends.get_backend("torch").name == "torch"
    with pytest.raises(BackendError, match="unknown backend 'nope'"):
        backends.get_backend("nope")
    # issue #15: the reference compiles now; what it cannot do it refuses itself
    with pytest.raises(UnsupportedError, match="'reference' cannot compute flows"):
        pccompiler.compile(dense(), backend="reference").em_step(random_data(dense(), 2))


def test_capabilities_refuse_clearly():
    class Tiny(Backend):
        name = "tiny"
        capabilities = Capabilities(distributions=frozenset({"categorical"}),
                                    queries=frozenset({"log_prob"}))
    tiny = Tiny()
    with pytest.raises(UnsupportedError, match="query 'mpe'"):
        tiny.check(query="mpe")
    with pytest.raises(UnsupportedError, match="device 'cuda'"):
        tiny.check(device="cuda")
    from tests.conformance.circuits import bernoulli_mixed
    with pytest.raises(UnsupportedError, match="bernoulli inputs"):
        tiny.check(bernoulli_mixed())


def test_one_row_sum_partitions_decode_as_the_general_rule():
    """The block_size == 1 path of the layout index (node layouts) gives,
    block by block, what the general rule does: weight index starts[b] + k
    for the real children and 0 for padding, padded child slots 0, and every
    real weight's parent key starts[b]."""
    from pccompiler import ir
    from pccompiler.backends.common.layout_index import build_layout_index
    from tests.logic.circuits import shared_sdd

    model = pccompiler.from_sdd(shared_sdd("sudoku_4"), form="nodes")
    layout = passes.compile_model(model, verify=False).layout
    table = ir.tensor_table(layout)
    index = build_layout_index(layout)
    want_key = np.full(int(layout.num_sum_params), -1, dtype=np.int64)
    checked = 0
    for layer, li in zip(layout.layers, index.layers):
        for sp, part in zip(layer.sum_partitions, li.sums):
            assert sp.block_size == 1 and part.block_size == 1
            nb, k = int(sp.num_blocks), int(sp.max_children)
            starts = np.asarray(table[sp.block_param_starts]).reshape(nb)
            nc = np.asarray(table[sp.block_num_children]).reshape(nb)
            kids = np.asarray(table[sp.child_slots]).reshape(nb, k)
            widx = np.zeros((nb, k, 1), dtype=np.int64)
            slots = np.zeros((nb, k), dtype=np.int64)
            for b in range(nb):
                widx[b, :nc[b], 0] = starts[b] + np.arange(nc[b])
                slots[b, :nc[b]] = kids[b, :nc[b]]
                want_key[starts[b]:starts[b] + nc[b]] = starts[b]
            np.testing.assert_array_equal(part.weight_index.numpy(), widx)
            np.testing.assert_array_equal(part.child_slots.numpy(), slots)
            np.testing.assert_array_equal(part.parent_slots.numpy(),
                                          np.asarray(table[sp.block_slots]).reshape(nb, 1))
            checked += int(nc.sum())
    assert checked > 0
    np.testing.assert_array_equal(index.sum_param_parent.numpy(), want_key)


def test_capability_error_names_the_first_unsupported_group():
    """check() collects the distinct distributions first; the error still
    names the first input group (in group order) whose distribution the
    backend lacks, and a model of supported inputs passes."""
    from tests.conformance.circuits import bernoulli_mixed
    model = bernoulli_mixed()
    inputs = [g for g in model.groups if g.kind == pcir.INPUT]
    dists = {DIST_NAMES[g.input.dist] for g in inputs}
    assert "bernoulli" in dists and len(dists) > 1
    first = next(g for g in inputs if DIST_NAMES[g.input.dist] == "bernoulli")

    class Tiny(Backend):
        name = "tiny"
        capabilities = Capabilities(distributions=frozenset(dists - {"bernoulli"}))
    with pytest.raises(UnsupportedError, match=f"bernoulli inputs \\(group {first.id} "):
        Tiny().check(model)

    class Wide(Backend):
        name = "wide"
        capabilities = Capabilities(distributions=frozenset(dists))
    Wide().check(model)


def test_sum_flows_of_a_parent_far_below_its_blocks_largest_child_stay_finite():
    """A pruned block stored dense: parent 0 reads child 0 only, parent 1
    child 1 only, 200 nats apart. exp(max child - parent 1) overflows
    float32 (it made NaN parameters in the prune-grow check, branch
    pgcheck); the flows must be the exact ones."""
    from types import SimpleNamespace

    from pccompiler.backends.torch.engine import TorchEngine

    B = 3
    values = torch.zeros(6, B)
    values[4], values[5] = 0.0, -200.0            # children
    values[2], values[3] = 0.0, -200.0            # parents: log(1 * e^child)
    flows = torch.zeros(6, B)
    flows[2], flows[3] = 0.25, 0.75
    # weight w[k, p] of child k for parent p at sum_params[weight_index[0, k, p]]
    engine = SimpleNamespace(sum_params=torch.tensor([1.0, 0.0, 0.0, 1.0]),
                             sum_param_flows=torch.zeros(4))
    sp = SimpleNamespace(num_blocks=1, max_children=2, block_size=2,
                         parent_slots=torch.tensor([[2, 3]]), child_slots=torch.tensor([[4, 5]]),
                         weight_index=torch.tensor([[[0, 1], [2, 3]]]))
    TorchEngine._sum_backward(engine, sp, values, flows)
    assert torch.equal(flows[4], torch.full((B,), 0.25))
    assert torch.allclose(flows[5], torch.full((B,), 0.75))
    assert torch.allclose(engine.sum_param_flows, torch.tensor([0.25 * B, 0.0, 0.0, 0.75 * B]))
