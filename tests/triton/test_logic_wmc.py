"""Logic circuits on the triton backend: WMC with per-sample literal
weights (soft evidence in the input layer) against the reference backend,
its gradient with respect to the weights (TritonWMC's backward: node flows
of the triton backward) against the torch backend's autograd, and weighted
MPE (max-product with literal weights) against the reference and brute
force. Circuits are tiny: under the interpreter every launch is numpy."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import pccompiler as pc
from pccompiler.errors import DataError
from pccompiler.logic import mpe, wmc

from tests.logic.circuits import (assignments, brute_mpe, brute_wmc, random_cnf_sdd,
                                  tiny_formula, write)


def _grads(circuit, w0: np.ndarray, coef: np.ndarray, dtype, device="cpu"
           ) -> tuple[np.ndarray, np.ndarray]:
    w = torch.tensor(w0, dtype=dtype, device=device, requires_grad=True)
    out = wmc(circuit, w)
    (out * torch.tensor(coef, dtype=dtype, device=device)).sum().backward()
    return out.detach().double().cpu().numpy(), w.grad.double().cpu().numpy()


def test_tiny_wmc_and_gradients(tmp_path, device):
    model = pc.from_sdd(write(tmp_path))
    circuit = pc.compile(model, backend="triton", device=str(device), precision="ieee")
    rng = np.random.default_rng(0)
    w0 = rng.uniform(0.05, 0.95, size=(5, 3))
    coef = rng.uniform(-1, 1, size=5)                   # a non-uniform incoming gradient
    before = circuit.engine.input_param_flows.clone()
    got, grad = _grads(circuit, w0, coef, torch.float32, device)
    np.testing.assert_allclose(np.exp(got), brute_wmc(tiny_formula(assignments(3)).astype(bool),
                                                      assignments(3), w0), rtol=1e-6)
    np.testing.assert_allclose(got, wmc(model, w0), rtol=1e-6)
    ref, ref_grad = _grads(pc.compile(model, backend="torch", device="cpu", dtype="float64"), w0, coef,
                           torch.float64)
    np.testing.assert_allclose(grad, ref_grad, rtol=1e-5, atol=1e-6)
    assert torch.equal(circuit.engine.input_param_flows, before)   # no EM statistics touched
    both = torch.tensor(np.stack([1 - w0, w0], axis=2), dtype=torch.float32, device=device)
    np.testing.assert_allclose(wmc(circuit, both).cpu().numpy(), got, rtol=1e-6)
    with pytest.raises(DataError, match=r"shape \[batch, 3\]"):
        wmc(circuit, torch.rand(2, 4, device=device))
    if device.type == "cuda":
        with pytest.raises(DataError, match="move the weights"):
            wmc(circuit, torch.rand(2, 3))


def test_random_cnf_wmc_gradients_and_mpe(tmp_path, device):
    path, x, sat = random_cnf_sdd(tmp_path, np.random.default_rng(1), 7, 9)
    model = pc.from_sdd(path)
    circuit = pc.compile(model, backend="triton", device=str(device), precision="ieee")
    rng = np.random.default_rng(1)
    w0 = rng.uniform(0.05, 0.95, size=(4, x.shape[1]))
    coef = rng.uniform(0.5, 1.5, size=4)
    got, grad = _grads(circuit, w0, coef, torch.float32, device)
    np.testing.assert_allclose(np.exp(got), brute_wmc(sat, x, w0), rtol=1e-6)
    _, ref_grad = _grads(pc.compile(model, backend="torch", device="cpu", dtype="float64"), w0, coef,
                         torch.float64)
    np.testing.assert_allclose(grad, ref_grad, rtol=1e-5, atol=1e-6)
    assign, score = mpe(circuit, torch.tensor(w0, dtype=torch.float32, device=device))
    want, want_score = mpe(model, w0)
    np.testing.assert_array_equal(assign.cpu().numpy(), want)
    np.testing.assert_allclose(np.exp(score.cpu().numpy()), brute_mpe(sat, x, w0), rtol=1e-6)
    np.testing.assert_allclose(score.cpu().numpy(), want_score, rtol=1e-6)
