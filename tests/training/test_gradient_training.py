"""Gradient training through `circuit.parameters()` (issue #20, point 6).

`circuit.requires_grad_()` holds the parameters as logits with a softmax per
node, so any optimizer keeps the circuit normalised; Adam on nltcs reaches
EM's test log-likelihood (the README example, run here as written)."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import numpy as np
import pytest
import torch

import pccompiler as pc
import pccompiler.data
from pccompiler.data import load_debd
from pccompiler.errors import UnsupportedError
from pccompiler.train import evaluate, train_em
from tests.conformance.circuits import (all_assignments, bernoulli_mixed, block_sparse, gaussian,
                                        random_data, tied)

# The README's example, read from the README itself (the python block that
# calls requires_grad_()); the test runs it on the first TRAIN_ROWS training
# rows to stay fast; the README trains on all 16,181.
README = Path(__file__).resolve().parents[2] / "README.md"
README_EXAMPLE = next(b for b in re.findall(r"^```python\n(.*?)^```", README.read_text(),
                                             re.M | re.S) if "requires_grad_()" in b)
TRAIN_ROWS = 6000
EM_EPOCHS = 20


def assert_normalised(circuit) -> None:
    """Every sum node's weights and every categorical row sum to 1,
    Bernoulli p in [0, 1], Gaussian std > 0; sum_params is the softmax image
    of the logits."""
    eng = circuit.engine
    for params, (sel, key, _) in zip((circuit.sum_params, circuit.input_params), eng.key_groups):
        p = params.detach().double()
        assert (p[sel] >= 0).all()
        totals = torch.zeros_like(p).index_add_(0, key, p[sel])[torch.unique(key)]
        torch.testing.assert_close(totals, torch.ones_like(totals), rtol=0, atol=1e-5)
    idx = eng.index
    p = circuit.input_params.detach()
    assert ((p[idx.bernoulli_rows] >= 0) & (p[idx.bernoulli_rows] <= 1)).all()
    assert (p[idx.gaussian_rows + 1] > 0).all()
    if circuit.gradient_training:
        with torch.no_grad():
            sum_p, input_p = eng.parameters_from_logits(circuit.sum_logits, circuit.input_logits)
        torch.testing.assert_close(circuit.sum_params.detach(), sum_p)
        torch.testing.assert_close(circuit.input_params.detach(), input_p)


def test_readme_example_matches_em_within_a_tenth_of_a_nat(monkeypatch):
    full = pccompiler.data.load_debd
    monkeypatch.setattr(pccompiler.data, "load_debd",
                        lambda name, split="train": full(name, split)[:TRAIN_ROWS]
                        if split == "train" else full(name, split))
    torch.manual_seed(0)
    ns: dict = {}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(README_EXAMPLE, "README example", "exec"), ns)
    assert out.getvalue().startswith("test log-likelihood -")
    circuit, train, test = ns["circuit"], ns["train"], ns["test"]
    assert len(train) == TRAIN_ROWS and len(test) == 3236
    assert_normalised(circuit)
    adam_ll = evaluate(circuit, test, 4096)

    # EM on the same circuit (same structure and initial parameters): full batch, step 1
    em = pc.compile(ns["root"], backend="torch")
    train_em(em, train, epochs=EM_EPOCHS, batch_size=TRAIN_ROWS, em="full", step_size=1.0)
    em_ll = evaluate(em, test, 4096)
    assert adam_ll > em_ll - 0.1, (adam_ll, em_ll)


@pytest.mark.parametrize("make", [block_sparse, tied, bernoulli_mixed, gaussian])
def test_any_number_of_steps_keeps_the_circuit_normalised(make):
    """Big Adam and SGD steps on sums, categoricals, Bernoullis and
    Gaussians: the parameters the engine reads stay a distribution."""
    model = make()
    circuit = pc.compile(model, backend="torch").requires_grad_()
    names = [n for n, p in circuit.named_parameters() if p.requires_grad]
    assert names == ["sum_logits", "input_logits"]
    x = random_data(model, 64, seed=1)
    lls = []
    for opt in (torch.optim.Adam(circuit.parameters(), lr=0.5),
                torch.optim.SGD(circuit.parameters(), lr=5.0)):   # huge steps
        for _ in range(15):
            loss = -circuit.log_prob(x).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            assert_normalised(circuit)     # the optimizer's step refreshed sum_params
            lls.append(-loss.item())
    assert max(lls[1:15]) > lls[0]            # Adam learns
    # discrete circuits: the probabilities of every assignment sum to 1
    if make is not gaussian:
        with torch.no_grad():
            total = torch.logsumexp(circuit.log_prob(all_assignments(model)).double(), 0)
        assert abs(total.item()) < 1e-4


def test_queries_em_and_state_dict_see_the_trained_parameters():
    model = block_sparse()
    circuit = pc.compile(model, backend="torch", dtype="float64").requires_grad_()
    x = random_data(model, 40, seed=2)
    opt = torch.optim.Adam(circuit.parameters(), lr=0.3)
    loss = -circuit.log_prob(x).mean()
    loss.backward()
    opt.step()
    # sampling right after the step uses the stepped parameters (no log_prob since)
    stepped = circuit.state_dict()
    assert set(stepped) == {"sum_params", "input_params"}          # same keys as without gradients
    plain = pc.compile(model, backend="torch", dtype="float64")
    plain.load_state_dict(stepped)
    with torch.no_grad():
        torch.testing.assert_close(circuit.log_prob(x), plain.log_prob(x))
    g = torch.Generator().manual_seed(3)
    torch.testing.assert_close(circuit.sample(5, generator=g),
                               plain.sample(5, generator=torch.Generator().manual_seed(3)))
    # EM in gradient mode updates the probabilities; the logits follow
    circuit.em_step(x, step_size=0.5, pseudocount=0.1)
    plain.em_step(x, step_size=0.5, pseudocount=0.1)
    torch.testing.assert_close(circuit.sum_params, plain.sum_params)
    assert_normalised(circuit)
    # loading a state dict resets the logits (strict loading: no missing keys)
    circuit.load_state_dict(pc.compile(model, backend="torch", dtype="float64").state_dict())
    assert_normalised(circuit)
    # off again: the logits go, the probabilities stay
    circuit.requires_grad_(False)
    assert not circuit.gradient_training and [n for n, _ in circuit.named_parameters()] == [
        "sum_params", "input_params"]


def test_probability_space_gradients_still_work():
    """`sum_params.requires_grad_()` (no logits) differentiates the packed
    probabilities as before (tests/backends/test_torch_engine.py)."""
    model = block_sparse()
    circuit = pc.compile(model, backend="torch")
    circuit.sum_params.requires_grad_(True)
    circuit.log_prob(random_data(model, 8)).sum().backward()
    assert circuit.sum_params.grad is not None and not circuit.gradient_training


def test_backends_without_autograd_refuse_gradients_clearly():
    model = block_sparse()
    ref = pc.compile(model, backend="reference")
    with pytest.raises(UnsupportedError, match="'reference' does not support gradients"):
        ref.requires_grad_()
    pytest.importorskip("triton")
    from pccompiler.backends.triton.compat import device_ok
    if not device_ok(torch.device("cpu")):
        pytest.skip("triton needs TRITON_INTERPRET=1 on the CPU")
    tri = pc.compile(model, backend="triton", device="cpu")
    with pytest.raises(UnsupportedError, match="'triton' does not support gradients.*EM"):
        tri.requires_grad_()
    tri.sum_params.requires_grad_(True)
    with pytest.raises(UnsupportedError, match="'triton' does not support gradients"):
        tri.log_prob(random_data(model, 4))
    with torch.no_grad():                      # queries without gradients are fine
        assert torch.isfinite(tri.log_prob(random_data(model, 4))).all()
