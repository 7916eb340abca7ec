"""The one-launch path (backends/triton/fused*.py) against the layer-by-layer
triton path and the torch backend: logic WMC forward and gradients with
respect to per-sample literal weights (the four shared SDDs in both import
forms and random CNF SDDs; gradients against float64 autograd), and log-likelihoods, marginals
and MPE values of a small HCLT on real data (nltcs).

Under the interpreter the programs of a launch run one after another,
which is a legal schedule for the fused kernels (each program owns its batch
columns); batches are tiny and BLOCK_B is forced to 1 and 2 so that several
programs and a partly masked one run."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import pccompiler as pc
from pccompiler.backends.triton import fused
from pccompiler.backends.triton.fused_plan import FusedPlan
from pccompiler.errors import DataError, UnsupportedError
from pccompiler.ir import pcir
from pccompiler.logic import mpe, wmc

from tests.logic.circuits import random_cnf_sdd, shared_sdd


def _wmc_and_grad(circuit, w0: np.ndarray, coef: np.ndarray, dtype, device
                  ) -> tuple[np.ndarray, np.ndarray]:
    w = torch.tensor(w0, dtype=dtype, device=device, requires_grad=True)
    out = wmc(circuit, w)
    (out * torch.tensor(coef, dtype=dtype, device=device)).sum().backward()
    return out.detach().double().cpu().numpy(), w.grad.double().cpu().numpy()


def _triton(model, device, fused_mode, block_b: int | None = None):
    circuit = pc.compile(model, backend="triton", device=str(device), precision="ieee",
                         fused=fused_mode)
    if block_b is not None:
        circuit.engine.fused_options = {"BLOCK_B": block_b}
    return circuit


def _check_wmc(model, device, batch: int, block_b: int, seed: int = 0, tol: float = 1e-5,
               layered: bool = True) -> None:
    """Fused WMC and its gradient equal float64 autograd (to `tol` of the
    largest gradient) and, with `layered`, the layer-by-layer triton path
    (which takes minutes under the interpreter on the larger SDDs)."""
    rng = np.random.default_rng(seed)
    w0 = rng.uniform(0.05, 0.95, size=(batch, len(model.variables)))
    coef = rng.uniform(-1, 1, size=batch)              # a non-uniform incoming gradient
    one = _triton(model, device, True, block_b)
    assert one.engine.runs_fused(soft=True)
    got, grad = _wmc_and_grad(one, w0, coef, torch.float32, device)
    ref, ref_grad = _wmc_and_grad(pc.compile(model, backend="torch", device="cpu",
                                             dtype="float64"), w0, coef, torch.float64, "cpu")
    scale = np.abs(ref_grad).max()
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(grad, ref_grad, rtol=tol, atol=tol * scale)
    if layered:
        lay = _triton(model, device, False)
        assert not lay.engine.runs_fused(soft=True)
        lay_val, lay_grad = _wmc_and_grad(lay, w0, coef, torch.float32, device)
        np.testing.assert_allclose(got, lay_val, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(grad, lay_grad, rtol=2 * tol, atol=2 * tol * scale)


# fp32 rounding grows with depth: seq_fun (87 layers) is 1.3e-5 of its largest
# gradient off float64 on either triton path; the others stay under 5e-6.
# The layer path runs only where the interpreter takes seconds (road_r).
@pytest.mark.parametrize("name,block_b,tol,layered", [
    ("road_r", 1, 1e-5, True), ("sudoku_4", 2, 1e-5, False), ("4-grid", 1, 1e-5, False),
    ("seq_fun", 2, 3e-5, False)])
def test_shared_sdd_wmc_and_gradients(name, block_b, tol, layered, device):
    if device.type == "cuda":
        layered = True
    _check_wmc(pc.from_sdd(shared_sdd(name)), device, batch=3, block_b=block_b, tol=tol,
               layered=layered)


@pytest.mark.parametrize("name", ["road_r", "sudoku_4"])
def test_node_form_sdd_wmc_and_gradients(name, device):
    """The node form's Layouts (pc.from_sdd(form="nodes"): block-size-1 sums,
    levels of one kind) run the same kernels: the plan reads only partitions."""
    _check_wmc(pc.from_sdd(shared_sdd(name), form="nodes"), device, batch=3, block_b=2,
               layered=name == "road_r" or device.type == "cuda")


def test_random_cnf_wmc_gradients_and_mpe(tmp_path, device):
    path, x, sat = random_cnf_sdd(tmp_path, np.random.default_rng(3), 8, 12)
    model = pc.from_sdd(path)
    _check_wmc(model, device, batch=5, block_b=2, seed=3)
    w = torch.tensor(np.random.default_rng(4).uniform(0.05, 0.95, size=(4, x.shape[1])),
                     dtype=torch.float32, device=device)
    assign, score = mpe(_triton(model, device, True, 1), w)       # max-product forward
    want, want_score = mpe(model, w.double().cpu().numpy())
    np.testing.assert_array_equal(assign.cpu().numpy(), want)
    np.testing.assert_allclose(score.cpu().numpy(), want_score, rtol=1e-5)


@pytest.fixture(scope="module")
def hclt_model():
    from pccompiler import structures
    from pccompiler.data import load_debd

    train = load_debd("nltcs", "train")[:2000]
    out = structures.hclt(train, num_latents=4, seed=0)
    return out if isinstance(out, pcir.Model) else pc.lower(out)


def test_hclt_real_data_forward(hclt_model, device):
    """log p, marginals (30% missing) and the MPE pass's values of a small
    HCLT on nltcs test rows: fused == layer path == torch."""
    from pccompiler.data import load_debd

    x = torch.as_tensor(np.asarray(load_debd("nltcs", "test")[:5]), dtype=torch.long,
                        device=device)
    missing = torch.as_tensor(np.random.default_rng(0).random(tuple(x.shape)) < 0.3,
                              device=device)
    one = _triton(hclt_model, device, True, 2)
    layered = _triton(hclt_model, device, False)
    ref = pc.compile(hclt_model, backend="torch", device="cpu", dtype="float64")
    assert isinstance(one.engine.forward_plan(), FusedPlan)
    for miss in (None, missing):
        got = one.engine.root_log_prob(x, miss).cpu().numpy()
        want = ref.engine.root_log_prob(x.cpu(), None if miss is None else miss.cpu())
        np.testing.assert_allclose(got, want.numpy(), rtol=1e-5)
        np.testing.assert_allclose(got, layered.engine.root_log_prob(x, miss).cpu().numpy(),
                                   rtol=1e-5)
        for mode in ("sum", "max"):            # every node's value, Layout slots
            a = one.engine.forward(x, miss, mode)
            b = layered.engine.forward(x, miss, mode)
            live = torch.isfinite(b)
            assert torch.equal(live, torch.isfinite(a))
            np.testing.assert_allclose(a[live].cpu().numpy(), b[live].cpu().numpy(),
                                       rtol=1e-5, atol=1e-5)
    q = one.engine.graphed_query(5, marginal=True)      # eager on the CPU, same plan
    np.testing.assert_allclose(q(x, missing).cpu().numpy(),
                               layered.engine.root_log_prob(x, missing).cpu().numpy(), rtol=1e-5)
    bad = x.clone()
    bad[3, 2] = 7
    with pytest.raises(DataError, match="row 3, column 2"):
        q(bad)


def test_rule_and_option(hclt_model, tmp_path, device):
    layout = _triton(hclt_model, device, "auto").engine.layout
    assert fused.choose("auto", layout, torch.device("cpu"), False) is False   # interpreter
    assert fused.choose("auto", layout, torch.device("cuda"), False) is True   # small
    assert fused.choose("auto", layout, torch.device("cuda"), True) is True
    assert fused.choose(False, layout, torch.device("cuda"), False) is False
    with pytest.raises(UnsupportedError, match="fused=True"):
        fused.choose(True, _gaussian_layout(), torch.device("cpu"), soft=True)
    with pytest.raises(UnsupportedError, match="fused="):
        _triton(hclt_model, device, "sometimes")
    engine = _triton(hclt_model, device, True).engine
    engine.fused = "false"
    assert not engine.runs_fused() and engine.forward_plan() is engine.fast_plan
    for limit in ("FUSED_MAX_EDGES", "FUSED_MAX_ROWS", "FUSED_MAX_FAN_IN"):
        old = getattr(fused, limit)
        try:
            setattr(fused, limit, 3)
            assert fused.choose("auto", layout, torch.device("cuda"), False) is False   # big
        finally:
            setattr(fused, limit, old)


def _gaussian_layout():
    from tests.conformance.circuits import gaussian
    return pc.compile(gaussian(), backend="torch", device="cpu").engine.layout


def test_plan_tables(hclt_model, device):
    """Every node is one row of one step; steps of a layer never read each
    other's rows; CSR ranges tile the edge arrays; variables list their inputs."""
    engine = _triton(hclt_model, device, True).engine
    plan = engine.fused_plan
    slots = plan.row_slot.cpu().numpy()
    assert np.unique(slots).size == slots.size == plan.num_rows
    assert plan.root_slot in slots and not np.isin([0, 1], slots).any()
    steps = plan.steps.cpu().numpy().reshape(-1, 5)
    assert steps[0, 1] == 0 and steps[-1, 2] == plan.num_rows
    assert (steps[1:, 1] == steps[:-1, 2]).all()
    np.testing.assert_array_equal(plan.bwd_steps.cpu().numpy().reshape(-1, 5), steps[::-1])
    beg, cnt = plan.fwd_beg.cpu().numpy(), plan.fwd_cnt.cpu().numpy()
    order = np.argsort(beg, kind="stable")
    ends = beg[order] + cnt[order]
    assert beg[order][0] == 0 and (beg[order][1:] == ends[:-1]).all()
    assert ends[-1] == plan.num_edges
    step_of = np.repeat(np.arange(len(steps)), steps[:, 2] - steps[:, 1])
    row_of_slot = dict(zip(slots.tolist(), range(slots.size)))
    children = plan.fwd_slot.cpu().numpy()
    for r in range(plan.num_rows):           # a child is written by an earlier step
        for c in children[beg[r]:beg[r] + cnt[r]]:
            if c > 1:
                assert step_of[row_of_slot[int(c)]] < step_of[r]
    inputs = steps[steps[:, 0] == 0]
    n_inputs = int((inputs[:, 2] - inputs[:, 1]).sum())
    assert int(plan.var_cnt.sum()) == n_inputs
    assert set(plan.var_slot.cpu().numpy().tolist()) == set(
        np.concatenate([slots[lo:hi] for _, lo, hi, _, _ in inputs]).tolist())


def test_plan_refuses_a_step_reading_itself():
    """A child written in the same or a later step, or by no node, is refused
    (a Layout whose partitions of one layer depend on each other)."""
    from pccompiler.backends.triton.fused_plan import _check_order
    slots = np.array([2, 3, 4])
    steps = [(1, 0, 2, 0, 0), (2, 2, 3, 0, 0)]          # rows 0, 1: step 0; row 2: step 1
    _check_order(slots, steps, np.array([2, 2, 0]), np.array([2, 3, 1]), 5)
    with pytest.raises(UnsupportedError, match="slot 3 .*reads slot 2"):
        _check_order(slots, steps, np.array([1]), np.array([2]), 5)
    with pytest.raises(UnsupportedError, match="reads slot 5"):
        _check_order(slots, steps, np.array([2]), np.array([5]), 6)
    with pytest.raises(UnsupportedError, match="written by two"):
        _check_order(np.array([2, 2]), [(1, 0, 2, 0, 0)], np.zeros(0, int), np.zeros(0, int), 3)
