"""Numerical robustness: log-likelihoods below -10^4, zero-weight edges,
samples of probability zero, depth-1000 circuits and EM with pseudocount 0
give finite (or exactly -inf) results that match the float64 reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import pccompiler as pc
from pccompiler.backends import reference


def tiny_mixture(num_vars: int = 160, k: int = 4):
    """A mixture of k fully factorised components over binary variables where
    value 1 has probability 1e-35..1e-30 (float32-representable): an all-ones
    row has log-likelihood about -1.1e4."""
    eps = np.logspace(-35, -30, k)
    params = np.stack([1 - eps, eps], axis=1)
    leaves = [pc.inputs(var=v, num_nodes=k, dist=pc.Categorical(num_cats=2, params=params))
              for v in range(num_vars)]
    root = pc.summate(pc.multiply(*leaves), num_nodes=1, weights=np.array([[0.1, 0.2, 0.3, 0.4]]))
    return pc.lower(root)


@pytest.fixture(scope="module")
def tiny():
    model = tiny_mixture()
    x = np.ones((4, 160), np.int64)
    x[1] = 0
    x[2, :80] = 0
    x[3, ::3] = 0
    return model, x, reference.log_prob(model, x)


@pytest.mark.parametrize("dtype,rtol", [("float64", 1e-10), ("float32", 2e-6)])
def test_log_likelihood_below_minus_ten_thousand(tiny, dtype, rtol):
    model, x, ref = tiny
    assert ref[0] < -1e4 and np.isfinite(ref).all()
    got = pc.compile(model, backend="torch", dtype=dtype).log_prob(x).double().cpu().numpy()
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, ref, rtol=rtol, atol=1e-6)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_em_on_near_zero_likelihoods_stays_finite(tiny, dtype):
    model, x, _ = tiny
    circuit = pc.compile(model, backend="torch", dtype=dtype)
    for em in range(3):
        ll = circuit.em_step(x, step_size=1.0, pseudocount=0.0)
        assert torch.isfinite(ll).all()
    for p in (circuit.sum_params, circuit.input_params):
        assert torch.isfinite(p).all() and (p >= 0).all()
    after = circuit.log_prob(x).double().cpu().numpy()
    np.testing.assert_allclose(after, reference.log_prob(circuit.to_model(), x),
                               rtol=1e-5, atol=1e-4)


def zero_weight_model(pattern: str):
    """Two variables with 3 categories; the root gives weight 0 to half of its
    children, and category 2 has probability 0 in every leaf."""
    params = np.array([[0.5, 0.5, 0.0], [0.2, 0.8, 0.0], [0.9, 0.1, 0.0], [0.3, 0.7, 0.0]])
    leaves = [pc.inputs(var=v, num_nodes=4, dist=pc.Categorical(num_cats=3, params=params))
              for v in range(2)]
    prod = pc.multiply(*leaves)
    if pattern == "dense":
        mid = pc.summate(prod, num_nodes=4, weights=np.array(
            [[0.5, 0.0, 0.5, 0.0], [0.0, 1.0, 0.0, 0.0], [0.25, 0.25, 0.25, 0.25],
             [0.0, 0.0, 0.0, 1.0]]))
    else:   # explicit zero-weight edges in a sparse group
        pairs = np.array([[0, 0], [0, 1], [1, 1], [1, 2], [2, 2], [2, 3], [3, 3], [3, 0]])
        mid = pc.summate(prod, num_nodes=4, edges=pc.Sparse(pairs),
                         weights=np.array([1.0, 0.0, 0.0, 1.0, 0.5, 0.5, 1.0, 0.0]))
    root = pc.summate(mid, num_nodes=1, weights=np.array([[0.0, 0.5, 0.0, 0.5]]))
    return pc.lower(root)


@pytest.mark.parametrize("pattern", ["dense", "sparse"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_zero_weight_edges_and_zero_probability_samples(pattern, dtype):
    model = zero_weight_model(pattern)
    x = np.array([[0, 1], [1, 1], [2, 0], [0, 2], [1, 0]])
    ref = reference.log_prob(model, x)
    assert np.isneginf(ref[[2, 3]]).all() and np.isfinite(ref[[0, 1, 4]]).all()
    circuit = pc.compile(model, backend="torch", dtype=dtype)
    got = circuit.log_prob(x).double().cpu().numpy()
    assert not np.isnan(got).any()
    np.testing.assert_allclose(got, ref, rtol=1e-6)
    missing = np.zeros_like(x, dtype=bool)
    missing[:, 1] = True                                   # marginal over a zero column
    np.testing.assert_allclose(circuit.log_prob(x, missing).double().cpu().numpy(),
                               reference.log_prob(model, x, missing), rtol=1e-6)
    # EM over a batch containing probability-0 samples and zero-weight edges
    circuit.em_step(x, step_size=1.0, pseudocount=0.0)
    for p in (circuit.sum_params, circuit.input_params):
        assert not torch.isnan(p).any()
    ll = circuit.log_prob(x[[0, 1, 4]]).double().cpu().numpy()
    assert np.isfinite(ll).all()
    np.testing.assert_allclose(ll, reference.log_prob(circuit.to_model(), x[[0, 1, 4]]),
                               rtol=1e-5)


def test_depth_1000_hmm_matches_reference():
    model = pc.lower(pc.hmm(500, 2, 3, seed=0, dtype=np.float64))
    circuit = pc.compile(model, backend="torch", dtype="float64")
    assert len(circuit.layout.layers) >= 1000
    x = np.random.default_rng(0).integers(0, 3, (6, 500))
    missing = np.random.default_rng(1).random(x.shape) < 0.3
    for m in (None, missing):
        got = circuit.log_prob(x, m).double().cpu().numpy()
        ref = reference.log_prob(model, x, m)
        assert np.isfinite(got).all() and (ref < -300).all()
        np.testing.assert_allclose(got, ref, rtol=1e-10)
    ll = circuit.em_step(x, step_size=0.5, pseudocount=0.0)
    assert torch.isfinite(ll).all() and torch.isfinite(circuit.sum_params).all()


@pytest.mark.parametrize("em", ["mini", "full"])
def test_em_pseudocount_zero_with_unseen_categories(em):
    """Categories 3 and 4 never occur: their probabilities become exactly 0,
    nothing becomes NaN, and the training data keeps a finite likelihood."""
    from pccompiler.train import train_em
    rng = np.random.default_rng(0)
    leaves = [pc.inputs(var=v, num_nodes=4, dist=pc.Categorical(num_cats=5), seed=v)
              for v in range(3)]
    inner = pc.summate(pc.multiply(*leaves), num_nodes=2, seed=7)
    root = pc.summate(inner, num_nodes=1, seed=8)
    model = pc.lower(root)
    x = rng.integers(0, 3, (200, 3))
    circuit = pc.compile(model, backend="torch", dtype="float32")
    train_em(circuit, x, epochs=3, batch_size=64, em=em, step_size=1.0 if em == "full" else 0.5,
             pseudocount=0.0)
    for p in (circuit.sum_params, circuit.input_params):
        assert torch.isfinite(p).all()
    trained = circuit.to_model()
    table = {t.name: t for t in trained.tensors}
    from pccompiler import ir
    for g in trained.groups:
        if g.kind == ir.pcir.INPUT and g.input.params:
            probs = ir.to_numpy(table[g.input.params])
            if em == "full":
                assert (probs[:, 3:] == 0).all()
            np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    ll = circuit.log_prob(x).double().cpu().numpy()
    assert np.isfinite(ll).all()
    np.testing.assert_allclose(ll, reference.log_prob(trained, x), rtol=1e-5, atol=1e-5)
    unseen = np.array([[3, 0, 0]])
    assert not np.isnan(circuit.log_prob(unseen).double().cpu().numpy()).any()


def test_triton_interpreter_small_extreme_case(tiny):
    """The triton backend (interpreter on CPU) on the -1.1e4 case and the
    zero-weight case: finite where the reference is, equal within float32."""
    triton_ok = pytest.importorskip("triton")
    from pccompiler.backends import available_backends
    if "triton" not in available_backends():
        pytest.skip("no triton backend")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model, x, ref = tiny
    got = pc.compile(model, backend="triton", device=device).log_prob(x).double().cpu().numpy()
    np.testing.assert_allclose(got, ref, rtol=5e-6, atol=1e-5)
    zmodel = zero_weight_model("dense")
    zx = np.array([[0, 1], [2, 0], [1, 0]])
    zgot = pc.compile(zmodel, backend="triton", device=device).log_prob(zx).double().cpu().numpy()
    assert not np.isnan(zgot).any()
    np.testing.assert_allclose(zgot, reference.log_prob(zmodel, zx), rtol=1e-6)
    assert triton_ok


@pytest.mark.parametrize("dist", ["bernoulli", "gaussian"])
def test_em_pseudocount_zero_with_unreached_components_and_constant_data(dist):
    """A component with root weight 0 receives no flow; constant data drives a
    Bernoulli to 0/1 and a Gaussian's std to its floor: nothing is NaN, and
    the likelihood still matches the reference."""
    k = 3
    if dist == "bernoulli":
        leaves = [pc.inputs(var=v, num_nodes=k, dist=pc.Bernoulli(), seed=v) for v in range(2)]
        x = np.ones((50, 2), np.int64)
    else:
        leaves = [pc.inputs(var=v, num_nodes=k, dist=pc.Gaussian(), seed=v) for v in range(2)]
        x = np.full((50, 2), 1.5)
    root = pc.summate(pc.multiply(*leaves), num_nodes=1, weights=np.array([[0.5, 0.5, 0.0]]))
    model = pc.lower(root)
    circuit = pc.compile(model, backend="torch", dtype="float64")
    for _ in range(3):
        ll = circuit.em_step(x, step_size=1.0, pseudocount=0.0)
        assert not torch.isnan(ll).any()
    for p in (circuit.sum_params, circuit.input_params):
        assert torch.isfinite(p).all()
    got = circuit.log_prob(x).double().cpu().numpy()
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, reference.log_prob(circuit.to_model(), x), rtol=1e-6,
                               atol=1e-9)
