"""The node form of a logic circuit (pcir.NodeCircuit, pc.from_sdd(form="nodes")):
its checker names the offending node; counts, WMC (with gradients), MPE and
log-likelihoods with evidence equal the group form's on the reference, torch
and triton backends; its Layout passes the layout checker; it saves, loads,
compiles to a .pcc, dumps and prints statistics."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import pccompiler as pc
from pccompiler import ir
from pccompiler.errors import CheckError, LoadError, PassError
from pccompiler.ir.checker import LOGIC_SEMANTICS, SEMANTICS_KEY
from pccompiler.ir.nodes import INPUT, PRODUCT, SUM, NodeArrays, node_arrays, set_nodes
from pccompiler.logic import model_count, mpe, wmc
from pccompiler.passes.manager import compile_model

from tests.cli.test_ir_commands import pcc
from tests.logic.circuits import (SHARED, VTREE, assignments, brute_wmc, random_cnf_sdd,
                                  shared_sdd, tiny_formula, write)


def _both(path):
    return pc.from_sdd(path), pc.from_sdd(path, form="nodes")


@pytest.mark.parametrize("name", SHARED)
def test_shared_circuits_agree_with_the_group_form(name):
    groups, nodes = _both(shared_sdd(name))
    ir.check(nodes)
    assert model_count(nodes) == model_count(groups)
    w = np.random.default_rng(0).uniform(0.05, 0.95, size=(3, len(nodes.variables)))
    np.testing.assert_allclose(wmc(nodes, w), wmc(groups, w), rtol=1e-10)
    a_n, s_n = mpe(nodes, w)
    a_g, s_g = mpe(groups, w)
    np.testing.assert_allclose(s_n, s_g, rtol=1e-10)
    np.testing.assert_array_equal(a_n, a_g)


def test_random_sdd_agrees_with_brute_force(tmp_path):
    rng = np.random.default_rng(3)
    path, x, sat = random_cnf_sdd(tmp_path, rng, 9, 14)
    model = pc.from_sdd(path, form="nodes")
    assert model_count(model) == [int(sat.sum())]
    w = rng.uniform(0.05, 0.95, size=(4, 9))
    np.testing.assert_allclose(np.exp(wmc(model, w)), brute_wmc(sat, x, w), rtol=1e-10)
    counts = model_count(model, x, np.zeros_like(x, dtype=bool))
    np.testing.assert_array_equal(counts, sat.astype(int))


def test_tiny_counts_every_evidence_pattern(tmp_path):
    model = pc.from_sdd(write(tmp_path), form="nodes")
    x = np.repeat(assignments(3), 8, axis=0)
    missing = np.tile(assignments(3).astype(bool), (8, 1))
    want = pc.from_sdd(tmp_path / "f.sdd")
    assert model_count(model, x, missing) == model_count(want, x, missing)
    full = model_count(model, assignments(3), np.zeros((8, 3), dtype=bool))
    np.testing.assert_array_equal(full, tiny_formula(assignments(3)))


@pytest.mark.parametrize("backend", ["torch", "triton"])
def test_backends_wmc_gradients_and_mpe_match_the_group_form(tmp_path, backend, request):
    """Node-form WMC, its gradient and MPE on a backend equal the group form on
    torch float64 (triton: its kernels on --device, the interpreter on the CPU)."""
    device = request.config.getoption("--device") if backend == "triton" else "cpu"
    groups, nodes = _both(write(tmp_path))
    w = np.random.default_rng(1).uniform(0.05, 0.95, size=(4, 3))
    ref = pc.compile(groups, backend="torch", device="cpu", dtype="float64")
    wr = torch.tensor(w, requires_grad=True)
    want = wmc(ref, wr)
    want.sum().backward()
    dtype = torch.float64 if backend == "torch" else torch.float32
    circuit = pc.compile(nodes, backend=backend, device=device, dtype=str(dtype)[6:])
    wn = torch.tensor(w, dtype=dtype, device=device, requires_grad=True)
    got = wmc(circuit, wn)
    got.sum().backward()
    tol = 1e-10 if backend == "torch" else 1e-5
    np.testing.assert_allclose(got.detach().cpu().numpy(), want.detach().numpy(), rtol=tol)
    np.testing.assert_allclose(wn.grad.cpu().numpy(), wr.grad.numpy(), rtol=tol, atol=tol)
    a_n, s_n = mpe(circuit, torch.tensor(w, dtype=dtype, device=device))
    a_g, s_g = mpe(ref, torch.tensor(w))
    np.testing.assert_array_equal(a_n.cpu().numpy(), a_g.numpy())
    np.testing.assert_allclose(s_n.cpu().numpy(), s_g.numpy(), rtol=tol)


@pytest.mark.parametrize("name", ["4-grid", "road_r"])
def test_torch_and_reference_log_prob_with_evidence_is_the_log_count(name):
    groups, nodes = _both(shared_sdd(name))
    n = len(nodes.variables)
    rng = np.random.default_rng(0)
    x, _ = mpe(groups, rng.uniform(size=(6, n)))                  # satisfying assignments
    missing = rng.random((6, n)) < 0.6
    counts = np.array(model_count(nodes, x, missing), dtype=np.float64)
    assert counts.min() >= 1 and counts.max() > 1
    for backend in ("torch", "reference"):
        circuit = pc.compile(nodes, backend=backend, device="cpu", dtype="float64")
        lp = circuit.log_prob(torch.tensor(x), missing=torch.tensor(missing)).numpy()
        np.testing.assert_allclose(lp, np.log(counts), rtol=1e-10)
        got = circuit.mpe(torch.tensor(x), missing=torch.tensor(missing)).numpy()
        assert min(model_count(nodes, got, np.zeros_like(missing))) == 1   # a model
        np.testing.assert_array_equal(got[~missing], x[~missing])


@pytest.mark.parametrize("name", ["sudoku_4", "seq_fun"])
def test_layout_passes_the_deep_layout_checker(name):
    model = pc.from_sdd(shared_sdd(name), form="nodes")
    result = compile_model(model, check_each=True)
    ir.check_layout(result.layout, model, deep=True)
    assert [r.name for r in result.report.records] == ["verify", "layerize", "layout"]
    assert not result.layout.placements and result.layout.HasField("node_placement")
    with pytest.raises(PassError, match="work on groups"):
        compile_model(model, pipeline="verify,canonicalize,layerize,layout")


def test_roots_below_the_vtree_root_true_and_false(tmp_path):
    """A literal root is smoothed over the other variables; a true root
    counts every assignment; a false one is refused."""
    lit = write(tmp_path, "sdd 1\nL 0 0 1\n", VTREE, name="lit")
    assert model_count(pc.from_sdd(lit, form="nodes")) == [4]
    true = write(tmp_path, "sdd 1\nT 0\n", VTREE, name="t")
    assert model_count(pc.from_sdd(true, form="nodes")) == [8]
    false = write(tmp_path, "sdd 1\nF 0\n", VTREE, name="f0")
    with pytest.raises(LoadError, match="false"):
        pc.from_sdd(false, form="nodes")


# ------------------------------------------------------------------ checker
def _chain_model(kind, offsets, kids, lo, hi, num_vars=2) -> ir.pcir.Model:
    """A hand-made node circuit over `num_vars` binary variables; inputs are
    indicators [x_v = 0] / [x_v = 1] for the input nodes in order."""
    kind = np.asarray(kind, dtype=np.uint8)
    inputs = int((kind == INPUT).sum())
    sums = kind == SUM
    fan = np.diff(offsets)
    arrays = NodeArrays(kind=kind, child_offsets=np.asarray(offsets, dtype=np.int64),
                        child_ids=np.asarray(kids, dtype=np.int32),
                        sum_weights=np.ones(int(fan[sums].sum())),
                        input_vars=np.repeat(np.arange(num_vars, dtype=np.int32), 2)[:inputs],
                        input_params=np.tile(np.eye(2), (num_vars, 1))[:inputs],
                        variable_order=np.arange(num_vars, dtype=np.int32),
                        scope_lo=np.asarray(lo, dtype=np.int32),
                        scope_hi=np.asarray(hi, dtype=np.int32),
                        roots=np.array([len(kind) - 1]))
    model = ir.make_model([ir.make_variable(f"x{v}", ir.pcir.CATEGORICAL, 2)
                           for v in range(num_vars)], [], [],
                          metadata={SEMANTICS_KEY: LOGIC_SEMANTICS})
    set_nodes(model, arrays)
    return model


# nodes 0..3: [x0=0] [x0=1] [x1=0] [x1=1]; 4 = x0 taut; 5 = x1 taut; 6 = 4 * 5
GOOD = dict(kind=[INPUT] * 4 + [SUM, SUM, PRODUCT], offsets=[0, 0, 0, 0, 0, 2, 4, 6],
            kids=[0, 1, 2, 3, 4, 5], lo=[0, 0, 1, 1, 0, 1, 0], hi=[1, 1, 2, 2, 1, 2, 2])


def test_checker_accepts_a_good_node_circuit_and_counts_it():
    model = _chain_model(**GOOD)
    ir.check(model)
    assert model_count(model) == [4]


@pytest.mark.parametrize("change, rule, node", [
    (dict(kids=[0, 3, 2, 3, 4, 5]), "smoothness", "node 4 (sum)"),
    (dict(kids=[0, 1, 2, 3, 4, 4], hi=[1, 1, 2, 2, 1, 2, 2]), "decomposability", "node 6 (product)"),
    (dict(kids=[0, 1, 2, 3, 6, 5]), "topological-order", "node 6 (product)"),
    (dict(kids=[0, 1, 2, 3, 4, 9]), "index-range", "node 6 (product)"),
    (dict(hi=[1, 1, 2, 2, 1, 2, 0]), "scope-range", "node 6 (product)"),
])
def test_checker_refuses_and_names_the_node(change, rule, node):
    model = _chain_model(**{**GOOD, **change})
    with pytest.raises(CheckError) as err:
        ir.check(model)
    assert err.value.rule == rule, str(err.value)
    assert node in str(err.value)


def test_checker_refuses_a_gap_in_a_product_and_unnormalised_weights():
    gap = _chain_model(kind=[INPUT] * 4 + [SUM, PRODUCT], offsets=[0, 0, 0, 0, 0, 2, 3],
                       kids=[2, 3, 4], lo=[0, 0, 1, 1, 1, 0], hi=[1, 1, 2, 2, 2, 2])
    with pytest.raises(CheckError, match=r"node 5 \(product\).*covered by no child"):
        ir.check(gap)
    model = _chain_model(**GOOD)
    del model.metadata[SEMANTICS_KEY]                   # a PC: weights must sum to 1
    with pytest.raises(CheckError, match=r"node 4 \(sum\): weights sum to 2"):
        ir.check(model)


# ------------------------------------------------------------------ files and tools
def test_save_load_pcir_and_pcc(tmp_path):
    path = shared_sdd("road_r")
    model = pc.from_sdd(path, form="nodes")
    ir.save(model, tmp_path / "r.pcir")
    back = ir.load(tmp_path / "r.pcir", check=True)
    assert back == model and ir.structure_hash(back) == ir.structure_hash(model)
    assert ir.parse_text(ir.dump_exact(model)) == model        # the exact text (PCC_DUMP)
    assert ir.structure_hash(model) != ir.structure_hash(pc.from_sdd(path))
    out = pcc("compile", tmp_path / "r.pcir", "--backend", "torch", "--device", "cpu", "-o",
              tmp_path / "r.pcc")
    assert out.returncode == 0, out.stderr
    circuit = pc.load(tmp_path / "r.pcc", device="cpu")
    w = np.random.default_rng(2).uniform(0.05, 0.95, size=(2, len(model.variables)))
    got = wmc(circuit, torch.tensor(w, dtype=torch.float32)).numpy()
    np.testing.assert_allclose(got, wmc(model, w), rtol=1e-4)
    assert node_arrays(circuit.model).num_nodes == model.nodes.num_nodes


def test_import_dump_and_stat_show_the_node_form(tmp_path):
    path = shared_sdd("road_r")
    out = pcc("import", path, "--form", "nodes", "-o", tmp_path / "r.pcir")
    assert out.returncode == 0, out.stderr
    assert "522 nodes" in out.stdout
    dump = pcc("dump", tmp_path / "r.pcir")
    assert dump.returncode == 0, dump.stderr
    assert "node circuit: 522 nodes (82 input, 246 product, 194 sum)" in dump.stdout
    stat = pcc("stat", tmp_path / "r.pcir")
    assert stat.returncode == 0, stat.stderr
    assert "nodes                   522" in stat.stdout and "depth" in stat.stdout
    nnf = tmp_path / "c.nnf"
    nnf.write_text("nnf 1 0 1\nL 1\n")
    out = pcc("import", nnf, "--form", "nodes", "-o", tmp_path / "c.pcir")
    assert out.returncode == 1 and "no --form" in out.stderr


def test_prune_and_grow_refuse_the_node_form_with_the_way_out(tmp_path):
    """The structure changes work on groups: a node-form circuit is refused
    before any flow is computed, naming the form and how to import groups
    (it used to fail inside the checker on a half-rebuilt Model)."""
    from pccompiler.errors import PCError
    from pccompiler.train.prune_grow import grow, prune
    path = shared_sdd("road_r")
    circuit = pc.compile(pc.from_sdd(path, form="nodes"), backend="torch", device="cpu")
    data = np.ones((4, circuit.num_vars), dtype=np.int64)
    for change in (lambda: prune(circuit, data, 0.5), lambda: grow(circuit, 2)):
        with pytest.raises(PCError, match="node-form circuit .* --form groups"):
            change()
    circuit.save(str(tmp_path / "r.pcc"))
    out = pcc("grow", tmp_path / "r.pcc", "-o", tmp_path / "g.pcc")
    assert out.returncode == 1 and "node-form circuit" in out.stderr
    assert not (tmp_path / "g.pcc").exists()


def test_set_nodes_release_writes_the_same_model():
    """set_nodes(release=True) writes the same Model bytes as the default,
    drops each array from the NodeArrays once written, and makes a field
    given in `later` when it is written."""
    want = _chain_model(**GOOD)
    arrays = node_arrays(want)
    weights = arrays.sum_weights.copy()
    arrays.sum_weights = None
    model = ir.make_model([ir.make_variable(f"x{v}", ir.pcir.CATEGORICAL, 2) for v in range(2)],
                          [], [], metadata={SEMANTICS_KEY: LOGIC_SEMANTICS})
    set_nodes(model, arrays, release=True, later={"sum_weights": lambda: weights})
    assert model.SerializeToString(deterministic=True) == \
        want.SerializeToString(deterministic=True)
    assert all(getattr(arrays, f) is None for f in ("kind", "child_ids", "sum_weights"))
    assert list(arrays.roots) == [6]
