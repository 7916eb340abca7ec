"""Counting, weighted model counting and max-product on imported SDDs,
against PySDD (the SDD library) where installed and brute force over every
assignment; WMC gradients (torch backend, autograd) against finite
differences of the reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import pccompiler as pc
from pccompiler.errors import DataError
from pccompiler.frontend.sdd import from_sdd
from pccompiler.logic import model_count, mpe, wmc

from tests.logic.circuits import (SHARED, shared_sdd, assignments, brute_mpe, brute_wmc,
                                  random_cnf_sdd, tiny_formula, write)


def _pysdd():
    return pytest.importorskip("pysdd.sdd", reason="pysdd is not installed (extra 'logic')")


def _load_pysdd(sdd, path):
    vtree = sdd.Vtree.from_file(str(path.with_suffix(".vtree")).encode())
    mgr = sdd.SddManager.from_vtree(vtree)
    return mgr, mgr.read_sdd_file(str(path).encode())


def _pysdd_log_wmc(mgr, node, w: np.ndarray) -> float:
    wm = node.wmc(log_mode=True)
    for v in range(1, len(w) + 1):
        wm.set_literal_weight(mgr.literal(v), math.log(w[v - 1]))
        wm.set_literal_weight(mgr.literal(-v), math.log1p(-w[v - 1]))
    return wm.propagate()


@pytest.mark.parametrize("name", SHARED)
def test_shared_counts_and_wmc_match_pysdd(name):
    sdd = _pysdd()
    path = shared_sdd(name)
    model = from_sdd(path)
    mgr, node = _load_pysdd(sdd, path)
    count = model_count(model)[0]
    if count < 2 ** 63:
        assert count == node.global_model_count()
    else:   # the SDD library counts in 64 bits; its log-space unit-weight WMC does not wrap
        assert math.log(count) == pytest.approx(_pysdd_log_wmc(mgr, node, np.full(
            len(model.variables), 0.5)) + len(model.variables) * math.log(2), rel=1e-12)
    w = np.random.default_rng(0).uniform(0.05, 0.95, size=(2, len(model.variables)))
    ours = wmc(model, w)
    for row in range(2):
        ref = _pysdd_log_wmc(mgr, node, w[row])
        assert math.exp(ours[row] - ref) == pytest.approx(1.0, rel=1e-6)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_cnf_sdds_match_brute_force(tmp_path, seed):
    """PySDD compiles a random 3-CNF over 9 variables; the imported circuit's
    count, WMC and MPE equal enumeration of all 512 assignments."""
    rng = np.random.default_rng(seed)
    path, x, sat = random_cnf_sdd(tmp_path, rng, 9, 14)
    n = 9
    model = from_sdd(path)
    assert sat.any() and model_count(model) == [int(sat.sum())]
    w = rng.uniform(0.05, 0.95, size=(4, n))
    np.testing.assert_allclose(np.exp(wmc(model, w)), brute_wmc(sat, x, w), rtol=1e-10)
    assign, score = mpe(model, w)
    np.testing.assert_allclose(np.exp(score), brute_mpe(sat, x, w), rtol=1e-10)
    rows = (assign[:, None, :] == x[None, :, :]).all(axis=2).argmax(axis=1)
    assert sat[rows].all()                                 # the assignment is a model
    lit = np.where(assign == 1, w, 1 - w).prod(axis=1)
    np.testing.assert_allclose(lit, np.exp(score), rtol=1e-10)


def test_tiny_wmc_and_mpe_brute_force(tmp_path):
    model = from_sdd(write(tmp_path))
    x = assignments(3)
    sat = tiny_formula(x).astype(bool)
    w = np.random.default_rng(3).uniform(size=(5, 3))
    np.testing.assert_allclose(np.exp(wmc(model, w)), brute_wmc(sat, x, w), rtol=1e-12)
    both = np.stack([1 - w, w], axis=2)                    # the [B, V, 2] form
    np.testing.assert_allclose(wmc(model, both), wmc(model, w), rtol=1e-12)
    assign, score = mpe(model, w)
    np.testing.assert_allclose(np.exp(score), brute_mpe(sat, x, w), rtol=1e-12)
    assert tiny_formula(assign).all()
    with pytest.raises(DataError, match=r"shape \[batch, 3\]"):
        wmc(model, w[:, :2])


def test_torch_wmc_gradients_match_finite_differences(tmp_path):
    model = from_sdd(write(tmp_path))
    circuit = pc.compile(model, backend="torch", device="cpu", dtype="float64")
    w0 = np.random.default_rng(4).uniform(0.1, 0.9, size=(3, 3))
    w = torch.tensor(w0, requires_grad=True)
    out = wmc(circuit, w)
    np.testing.assert_allclose(out.detach().numpy(), wmc(model, w0), rtol=1e-12)
    out.sum().backward()
    eps = 1e-6
    fd = np.zeros_like(w0)
    for v in range(3):
        up, down = w0.copy(), w0.copy()
        up[:, v] += eps
        down[:, v] -= eps
        fd[:, v] = (wmc(model, up) - wmc(model, down)) / (2 * eps)
    np.testing.assert_allclose(w.grad.numpy(), fd, rtol=1e-6, atol=1e-8)


def test_torch_wmc_on_a_shared_circuit():
    path = shared_sdd("road_r")
    model = from_sdd(path)
    w0 = np.random.default_rng(5).uniform(0.1, 0.9, size=(2, len(model.variables)))
    w = torch.tensor(w0, requires_grad=True)
    out = wmc(model, w)                                    # compiled for the torch backend
    np.testing.assert_allclose(out.detach().numpy(), wmc(model, w0), rtol=1e-9)
    out[0].backward()
    v, eps = 7, 1e-6
    up, down = w0.copy(), w0.copy()
    up[0, v] += eps
    down[0, v] -= eps
    fd = (wmc(model, up)[0] - wmc(model, down)[0]) / (2 * eps)
    assert w.grad[0, v].item() == pytest.approx(fd, rel=1e-5)
    assert (w.grad[1] == 0).all()


@pytest.mark.parametrize("seed", [0, 1])
def test_torch_weighted_mpe_matches_reference_and_brute_force(tmp_path, seed):
    """Max-product with per-sample literal weights on the torch backend: the
    heaviest model and its log weight equal the reference's and enumeration."""
    rng = np.random.default_rng(10 + seed)
    n = 8
    path, x, sat = random_cnf_sdd(tmp_path, rng, n, 12)
    model = from_sdd(path)
    w = rng.uniform(0.05, 0.95, size=(6, n))
    circuit = pc.compile(model, backend="torch", device="cpu", dtype="float64")
    assign, score = mpe(circuit, torch.tensor(w))
    want, want_score = mpe(model, w)
    np.testing.assert_array_equal(assign.numpy(), want)
    np.testing.assert_allclose(score.numpy(), want_score, rtol=1e-12)
    np.testing.assert_allclose(np.exp(score.numpy()), brute_mpe(sat, x, w), rtol=1e-12)
    both = torch.tensor(np.stack([1 - w, w], axis=2) * 3.0)     # unnormalised literal weights
    _, scaled = mpe(circuit, both)
    np.testing.assert_allclose(scaled.numpy(), want_score + n * np.log(3.0), rtol=1e-12)


def test_torch_weighted_mpe_on_a_shared_circuit():
    path = shared_sdd("road_r")
    model = from_sdd(path)
    w = np.random.default_rng(6).uniform(0.05, 0.95, size=(3, len(model.variables)))
    assign, score = mpe(model, torch.tensor(w))            # compiled for the torch backend
    want, want_score = mpe(model, w)
    np.testing.assert_array_equal(assign.numpy(), want)
    np.testing.assert_allclose(score.numpy(), want_score, rtol=1e-10)
    assert model_count(model, assign.numpy(), np.zeros(assign.shape, dtype=bool)) == [1] * 3
