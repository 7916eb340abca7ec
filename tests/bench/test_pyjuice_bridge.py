"""The PyJuice bridge builds the same circuit with the same parameters.

Structural tests run in this process (conversion is plain CPU torch).
Numerical tests run PyJuice's own compile / forward / backward /
MiniBatchEM under the Triton interpreter in a subprocess
(_pyjuice_cpu_run.py explains the CPU patches) and compare with an exact
float64 oracle (_exact.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import pccompiler as pc
from pccompiler import ir
from pccompiler.ir import pcir
from pccompiler.structures import edge_counts

from tests.bench._env import needs_pyjuice
from tests.bench._exact import ExactCircuit, dense_sum, input_table
from tests.bench._models import hmm_chain, kitchen_sink, random_data, small_structures

HERE = Path(__file__).resolve().parent
pytestmark = needs_pyjuice


def _bridge():
    import pyjuice_bridge
    return pyjuice_bridge


def test_block_sizes_follow_the_constraints():
    model = kitchen_sink()
    sizes = _bridge().assign_block_sizes(model)
    root = model.roots[0]
    # one class holds every 8-node group; the block-sparse sum (block 4) caps it at 4
    assert {gid: bs for gid, bs in sizes.items() if gid != root} == \
        {g.id: 4 for g in model.groups if g.id != root}
    assert sizes[root] == 1                      # a 1-node root stands alone
    assert set(_bridge().assign_block_sizes(model, max_block_size=2).values()) == {1, 2}
    assert _bridge().assign_block_sizes(hmm_chain(latents=8))[0] == 8
    with pytest.raises(ValueError, match="power of 2"):
        _bridge().assign_block_sizes(model, max_block_size=6)


@pytest.mark.parametrize("max_block_size", [1024, 2])
def test_parameters_are_ours(max_block_size):
    """Every PyJuice sum holds our [N, C] weight matrix; every input our
    [N, num_cats] table; tied groups point at the class's first vector.
    Block size 2 splits each 4x4 block of the block-sparse sum in four."""
    model = kitchen_sink()
    bridge = _bridge().convert(model, max_block_size)
    owners = ir.tie_targets(model)
    checked = 0
    for g in model.groups:
        ns = bridge.nodes.get(g.id)
        owner = model.groups[owners[g.id]]
        if g.kind == pcir.SUM:
            cols = sum(model.groups[c].num_nodes for c in g.sum.children)
            expected, _ = dense_sum(model, owner, cols)
            got = ns.get_source_ns().get_params(as_matrix=True).double().numpy()
            np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7)
            checked += 1
        elif g.kind == pcir.INPUT:
            got = ns.get_source_ns().get_params().double().numpy().reshape(g.num_nodes, -1)
            np.testing.assert_allclose(got, input_table(model, owner), rtol=1e-6)
            checked += 1
        if owners[g.id] != g.id:
            assert ns.is_tied() and ns.get_source_ns() is bridge.nodes[owners[g.id]]
    assert checked == sum(g.kind != pcir.PRODUCT for g in model.groups)


def test_edges_and_products():
    """PyJuice's edge count = ours + the 1-child wrappers + the zero padding
    of the sparse sum's blocks; block-aligned products use block edges and
    the permuted one node-level sparse edges."""
    model = kitchen_sink()
    bridge = _bridge().convert(model)
    table = ir.tensor_table(model)
    sizes = bridge.block_sizes
    expected = 0
    for g in model.groups:
        if g.kind == pcir.SUM:
            cols = sum(model.groups[c].num_nodes for c in g.sum.children)
            _, mask = dense_sum(model, model.groups[ir.tie_targets(model)[g.id]], cols)
            bs, cbs = sizes[g.id], sizes[g.sum.children[0]]
            blocks = mask.reshape(g.num_nodes // bs, bs, cols // cbs, cbs).any(axis=(1, 3))
            expected += int(blocks.sum()) * bs * cbs
        elif g.kind == pcir.PRODUCT and g.id in bridge.nodes:
            expected += g.num_nodes * bridge.nodes[g.id].num_chs
    expected += bridge.wrapper_edges
    assert bridge.num_wrappers == 2                  # the input child and the sum child
    assert _bridge().pyjuice_edge_count(bridge.root) == expected
    products = [g for g in model.groups if g.kind == pcir.PRODUCT]
    flattened = [g for g in products if any(model.groups[c].kind == pcir.PRODUCT
                                            for c in g.product.children)]
    assert len(flattened) == 1 and bridge.nodes[flattened[0].id].num_chs == 4
    unaligned = [g for g in products
                 if not np.array_equal(table[g.product.child_index],
                                       np.repeat(np.arange(g.num_nodes)[:, None],
                                                 len(g.product.children), axis=1))]
    assert len(unaligned) == 1 and bridge.nodes[unaligned[0].id].is_sparse()
    assert all(bridge.nodes[g.id].is_block_sparse() for g in products
               if g not in unaligned and g.id in bridge.nodes)


def test_gaussian_inputs_are_refused():
    x = pc.inputs(0, 4, pc.Gaussian(), seed=0)
    y = pc.inputs(1, 4, pc.Gaussian(), seed=1)
    model = pc.lower(pc.summate(pc.multiply(x, y), num_nodes=1, seed=2))
    with pytest.raises(NotImplementedError, match="Categorical and Bernoulli only"):
        _bridge().convert(model)


def _run_pyjuice(models: list[pcir.Model], xs: list[np.ndarray], tmp_path: Path,
                 step: float, pcount: float) -> list:
    """PyJuice's outputs for each (model, x), from one CPU subprocess."""
    jobs = []
    for i, (model, x) in enumerate(zip(models, xs)):
        ir.save(model, tmp_path / f"m{i}.pcir")
        np.save(tmp_path / f"x{i}.npy", x)
        jobs.append(f"{tmp_path}/m{i}.pcir:{tmp_path}/x{i}.npy:{tmp_path}/o{i}.npz")
    env = dict(os.environ, TRITON_INTERPRET="1")
    proc = subprocess.run([sys.executable, str(HERE / "_pyjuice_cpu_run.py"), *jobs,
                           "--em", str(step), str(pcount)],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return [np.load(tmp_path / f"o{i}.npz") for i in range(len(models))]


@pytest.mark.parametrize("name, pseudocount", [("kitchen_sink", 0.0), ("hmm_chain", 0.1)])
def test_pyjuice_matches_exact_ll_and_em(name, pseudocount, tmp_path):
    """PyJuice's forward on the bridged model is our distribution, and one
    PyJuice MiniBatchEM step is the exact EM step of our convention.

    The kitchen sink uses pseudocount 0: with a pseudocount PyJuice would
    also move mass onto its zero padding (the sparse sum's blocks) and onto
    the pass-through sums its compiler inserts, which our model lacks."""
    model = {"kitchen_sink": kitchen_sink, "hmm_chain": hmm_chain}[name]()
    x = random_data(model, 16, seed=3)
    out, = _run_pyjuice([model], [x], tmp_path, step=0.5, pcount=pseudocount)
    exact = ExactCircuit(model)
    with torch.no_grad():
        np.testing.assert_allclose(out["ll"], exact.log_likelihood(x).numpy(), atol=2e-5)
    exact.em_step(x, step_size=0.5, pseudocount=pseudocount)
    with torch.no_grad():
        after = exact.log_likelihood(x).numpy()
    np.testing.assert_allclose(out["ll_after"], after, atol=2e-5)
    assert np.abs(after - out["ll"]).max() > 1e-3    # the step did change the model


def test_race_structures_run_identically_in_pyjuice(tmp_path):
    """Tiny HCLT / PD / RAT-SPN / HMM from pccompiler.structures: PyJuice's
    node DAG and its compiled circuit have exactly our edge count (our
    structures already hold PyJuice's wrapper products and pass-throughs, so
    its compiler adds nothing), its log-likelihoods are ours, and its EM
    step (pseudocount 0.1) is the exact one."""
    models = small_structures()
    bridge = _bridge()
    for name, model in models.items():
        edges = edge_counts(model)["edges"]
        assert bridge.pyjuice_edge_count(bridge.convert(model, 4).root) == edges, name
    xs = [random_data(m, 16, seed=5) for m in models.values()]
    outs = _run_pyjuice(list(models.values()), xs, tmp_path, step=0.3, pcount=0.1)
    for (name, model), x, out in zip(models.items(), xs, outs):
        assert int(out["edges"]) == edge_counts(model)["edges"], name
        exact = ExactCircuit(model)
        with torch.no_grad():
            np.testing.assert_allclose(out["ll"], exact.log_likelihood(x).numpy(), atol=2e-5,
                                       err_msg=name)
        exact.em_step(x, step_size=0.3, pseudocount=0.1)
        with torch.no_grad():
            np.testing.assert_allclose(out["ll_after"], exact.log_likelihood(x).numpy(),
                                       atol=2e-5, err_msg=name)
