"""Product layers fused into the sum kernels' loads (`fuse_products=True`,
backends/triton/fusion.py) against the unfused plan and the torch backend:
log-likelihoods, marginals, parameter flows and one EM step on an HCLT
(nltcs) and a PD (nltcs as a 4 x 4 image), a pruned row-tiled sum, a product read by
two sum partitions and a sum shared by two products. The fused plan must
never read a folded product row (the values buffer is poisoned with NaN)
and must launch no product forward for it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import pccompiler as pc
from pccompiler.backends.triton import fusion, launch
from pccompiler.data.debd import load_debd
from pccompiler.errors import BackendError
from tests.triton.refs import reference_tol
from tests.triton.test_row_tiles_triton import TILES, _model as row_tile_model


def _hclt():
    data = load_debd("nltcs", "train")[:300, :8].astype(np.int64)
    return pc.lower(pc.hclt(data, num_latents=4, num_cats=2, seed=0)), data[:24], {}


def _pd():
    """PD over nltcs' 16 binary variables as a 4 x 4 image (shipped data:
    the GPU machine has no MNIST unless PCC_DATA_DIR is carried)."""
    model = pc.lower(pc.pd((4, 4), num_latents=4, split_intervals=2, num_cats=2, seed=0))
    return model, load_debd("nltcs", "test")[:24].astype(np.int64), {}


def _pruned():
    """test_row_tiles_triton's pruned sum: 64-row tiles plus remainder runs."""
    return row_tile_model(), np.random.default_rng(5).integers(0, 3, (24, 2)), TILES


def _shared():
    """A product group read by two sum groups, and a sum group (sa) that is
    a child of two product groups (the backward's accumulate path)."""
    a = pc.inputs(0, 4, pc.Categorical(num_cats=3), seed=1)
    b = pc.inputs(1, 4, pc.Categorical(num_cats=3), seed=2)
    c = pc.inputs(2, 4, pc.Categorical(num_cats=3), seed=3)
    sa = pc.summate(a, num_nodes=4, seed=4)
    sb1 = pc.summate(b, num_nodes=4, seed=5)
    sb2 = pc.summate(b, num_nodes=4, seed=6)
    p1, p2 = pc.multiply(sa, sb1), pc.multiply(sa, sb2)
    s1 = pc.summate(p1, p2, num_nodes=3, seed=7)
    s2 = pc.summate(p1, num_nodes=5, seed=8)
    sc = pc.summate(c, num_nodes=3, seed=9)
    top = pc.summate(pc.multiply(s1, sc), num_nodes=2, seed=10)
    top2 = pc.summate(pc.multiply(s2, pc.summate(c, num_nodes=5, seed=11)), num_nodes=2, seed=12)
    model = pc.lower(pc.summate(top, top2, num_nodes=1, seed=13))
    return model, np.random.default_rng(1).integers(0, 3, (24, 3)), {}


CASES = {"hclt_nltcs": _hclt, "pd_nltcs": _pd, "pruned_tiles": _pruned, "shared": _shared}


def _folded_rows(plan) -> torch.Tensor:
    """Slots of product partitions whose backward is fused (no flow row)."""
    rows = [p.slot_start + torch.arange(p.num_nodes) for lp in plan.layers
            for p in lp.products if p.fused_bwd]
    plain = [p.slot_start + torch.arange(p.num_nodes) for lp in plan.layers
             for p in lp.products if not p.fused_bwd]
    rows = torch.cat(rows) if rows else torch.zeros(0, dtype=torch.long)
    if plain:       # a compact plan's scratch rows may also serve unfused products
        rows = rows[~torch.isin(rows, torch.cat(plain))]
    return rows


def _poison(engine):
    """Every row of a fresh values buffer is NaN until a kernel writes it;
    so is every flow row of a product whose backward is fused (never read,
    never written: checked after each backward)."""
    make_values, make_flows = engine._new_values, engine._new_flows
    engine.untouched = []

    def values(batch, plan=None):
        out = make_values(batch, plan)
        out[2:].fill_(float("nan"))
        return out

    def flows(values, plan=None):
        out = make_flows(values, plan)
        if plan is not None and plan is engine.fast_plan:
            rows = _folded_rows(plan).to(out.device)
            out[rows] = float("nan")
            engine.untouched.append((out, rows))
        return out
    engine._new_values, engine._new_flows = values, flows


def _compile(model, backend, device, passes, **kw):
    """Triton circuits run eagerly (CUDA graphs keep their own buffers, which
    `_poison` does not reach; the conformance suite runs fused graphs)."""
    if backend == "torch":
        return pc.compile(model, backend="torch", device="cpu", pass_options=passes, **kw)
    circuit = pc.compile(model, backend="triton", device=str(device), pass_options=passes,
                         cuda_graphs=False, **kw)
    _poison(circuit.engine)
    return circuit


def _close(got, want, tol=1e-4):
    torch.testing.assert_close(torch.as_tensor(got).double().cpu(),
                               torch.as_tensor(want).double().cpu(), rtol=tol, atol=tol)


@pytest.mark.parametrize("case", sorted(CASES))
def test_fused_matches_unfused_and_torch(case, device, monkeypatch):
    if case == "pruned_tiles":    # off by default (fusion.FUSE_TILE_CHILDREN): test the path
        monkeypatch.setattr(fusion, "FUSE_TILE_CHILDREN", True)
    model, data, passes = CASES[case]()
    ref = _compile(model, "torch", device, passes)
    plain = _compile(model, "triton", device, passes)
    fused = _compile(model, "triton", device, passes, fuse_products=True)
    plan = fused.engine.fast_plan
    folded = [p for lp in plan.layers for p in lp.products if p.fused]
    assert folded, "nothing was fused"
    assert any(p.fused_arity for lp in plan.layers for p in lp.sums)
    assert not any(p.fused for lp in plain.engine.fast_plan.layers for p in lp.products)
    if case == "pruned_tiles":
        assert any(p.fused_arity for lp in plan.layers for p in lp.tile_flows)
    if case in ("pd_nltcs", "shared"):
        assert any(p.atomic for p in folded)      # a sum shared by two products
    writers = [p for lp in plan.layers for p in lp.sum_backwards if p.fused_bwd]
    if case == "pruned_tiles":    # row tiles write these products' flows: backward kept
        assert not writers and not any(p.fused_bwd for p in folded)
    else:
        assert writers and all(p.fused_bwd for p in folded)
    if case == "pd_nltcs":        # two products of one node-flow part share a child
        assert any(p.atomic_out for p in writers)
    if case == "hclt_nltcs":      # one writer per sum row: it stores the log ratios
        assert any(p.ratio_out for p in writers)
    # log-likelihoods and marginals; against torch at the tf32 tolerance on a
    # GPU (row tiles' dots), fused against unfused to fp32 rounding anywhere
    ref_tol = reference_tol(device, 1e-4)
    lls = [c.log_prob(data) for c in (ref, plain, fused)]
    _close(lls[2], lls[1], 1e-6)
    _close(lls[2], lls[0], ref_tol)
    missing = np.random.default_rng(2).random(data.shape) < 0.3
    margs = [c.log_prob(data, missing) for c in (ref, plain, fused)]
    _close(margs[2], margs[1], 1e-6)
    _close(margs[2], margs[0], ref_tol)
    # parameter flows of one batch (the training path: fast plan, log ratios)
    for c in (ref, plain, fused):
        c.zero_flows()
        c.accumulate_flows(data)
    flows = [(c.engine.sum_param_flows.detach().cpu(), c.engine.input_node_flows.cpu())
             for c in (ref, plain, fused)]
    assert fused.engine.untouched
    for buf, rows in fused.engine.untouched:
        assert torch.isnan(buf[rows]).all(), "a fused product's flow row was written"
    for got, want in zip(flows[2], flows[1]):
        _close(got, want, 1e-5)
    if flows[0][0].shape == flows[2][0].shape:
        _close(flows[2][0], flows[0][0], reference_tol(device, 1e-3))
    # one EM step: parameters after it
    for c in (ref, plain, fused):
        c.em_update(0.5, 0.1)
        c.zero_flows()
    params = [c.parameter_arrays() for c in (ref, plain, fused)]
    for name in params[0]:
        _close(params[2][name], params[1][name], 1e-6)
        _close(params[2][name], params[0][name], ref_tol)
    _close(fused.log_prob(data), ref.log_prob(data), ref_tol)


def test_products_read_by_row_tiles_stay_unfused_by_default(device):
    model, _, passes = _pruned()
    plan = _compile(model, "triton", device, passes, fuse_products=True).engine.fast_plan
    assert plan.layers and any(lp.tile_flows for lp in plan.layers)
    assert not any(p.fused for lp in plan.layers for p in lp.products)
    assert not any(p.fused_arity for lp in plan.layers for p in lp.sums)


def test_fused_forward_launches_no_folded_product(device, monkeypatch):
    model, data, _ = _hclt()
    fused = _compile(model, "triton", device, {}, fuse_products=True)
    launched = []
    real = launch.io_kernels.product_fwd_kernel

    class Spy:
        def __getitem__(self, grid):
            def call(*args, **kw):
                launched.append(int(args[2]))
                return real[grid](*args, **kw)
            return call
    monkeypatch.setattr(launch.io_kernels, "product_fwd_kernel", Spy())
    fused.log_prob(data)
    fused.accumulate_flows(data)
    folded = {p.slot_start for lp in fused.engine.fast_plan.layers for p in lp.products if p.fused}
    assert folded and not folded & set(launched)


def test_fused_split_k_forward(device, monkeypatch):
    """The split-K forward (few programs over a long fan-in) with fused children."""
    model, data, _ = _hclt()
    plain = _compile(model, "triton", device, {})
    want = plain.log_prob(data)
    monkeypatch.setattr(launch, "split_k", lambda programs, fan_in, tile_k: 2)
    fused = _compile(model, "triton", device, {}, fuse_products=True)
    _close(fused.log_prob(data), want, 1e-6)


def test_queries_over_every_node_keep_the_unfused_plan(device):
    model, data, _ = _hclt()
    plain = _compile(model, "triton", device, {})
    fused = _compile(model, "triton", device, {}, fuse_products=True)
    missing = np.zeros(data.shape, dtype=bool)
    missing[:, :3] = True
    assert not any(p.fused for lp in fused.engine.plan.layers for p in lp.products)
    assert torch.equal(fused.mpe(data, missing), plain.mpe(data, missing))
    _close(fused.flows(data), plain.flows(data), 1e-6)


@pytest.mark.parametrize("bad", ["yes", 1, None, "fused"])
def test_fuse_products_refuses_bad_values(bad, device):
    model, _, _ = _hclt()
    with pytest.raises(BackendError, match="fuse_products must be True or False"):
        pc.compile(model, backend="triton", device=str(device), fuse_products=bad)


def test_fused_wmc_and_gradients(tmp_path, device):
    """Logic circuits (SDD, one-row blocks): the soft-evidence forward and
    the backward that makes the literal weights' gradient, fused vs not."""
    from pccompiler.logic import wmc
    from tests.logic.circuits import random_cnf_sdd
    path, x, _ = random_cnf_sdd(tmp_path, np.random.default_rng(1), 7, 9)
    model = pc.from_sdd(path)
    w0 = np.random.default_rng(1).uniform(0.05, 0.95, size=(4, x.shape[1]))
    coef = torch.tensor(np.random.default_rng(2).uniform(0.5, 1.5, size=4),
                        dtype=torch.float32, device=device)
    got = []
    for fused in (False, True):
        circuit = pc.compile(model, backend="triton", device=str(device), precision="ieee",
                             fuse_products=fused)
        if fused:
            plan = circuit.engine.fast_plan
            assert any(p.fused for lp in plan.layers for p in lp.products)
        w = torch.tensor(w0, dtype=torch.float32, device=device, requires_grad=True)
        out = wmc(circuit, w)
        (out * coef).sum().backward()
        got.append((out.detach().cpu(), w.grad.cpu()))
    _close(got[1][0], got[0][0], 1e-6)
    _close(got[1][1], got[0][1], 1e-5)


@pytest.mark.parametrize("case", ["hclt_nltcs", "pd_nltcs", "shared"])
def test_fused_without_compact_plan(case, device):
    """compact=False: the fused plan keeps the Layout's slots and runs the
    parameter flows once over the merged sum parts, whose grand slots mix
    fused members of different arities (HCLT, PD) and plain ones (shared):
    plan._merged_grand."""
    model, data, _ = CASES[case]()
    plain, fused = (_compile(model, "triton", device, {}, compact=False, fuse_products=f)
                    for f in (False, True))
    plan = fused.engine.fast_plan
    assert plan.scratch_start is None and any(p.fused_arity for p in plan.merged_sums)
    for c in (plain, fused):
        c.em_step(data, step_size=0.5, pseudocount=0.1)
    _close(fused.log_prob(data), plain.log_prob(data), 1e-6)
    for name, want in plain.parameter_arrays().items():
        _close(fused.parameter_arrays()[name], want, 1e-6)
