"""The reference oracle as a registered backend: `pc.compile(...,
backend="reference")` answers log_prob, sample, conditional_sample and mpe
like the compiled backends (float64 torch tensors), and refuses flows, EM
and gradients with an UnsupportedError that names the backend to use."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import pccompiler as pc
from pccompiler import backends
from pccompiler.backends import reference
from pccompiler.backends.registry import register_backend
from pccompiler.cli.main import main as pcc
from pccompiler.errors import BackendError, UnsupportedError
from pccompiler.ir import pcir
from tests import factories
from tests.conformance.circuits import random_data

FACTORIES = [factories.small_dense_model, factories.small_sparse_model, factories.tied_model,
             factories.bernoulli_model, factories.gaussian_model]


def _pair(make):
    model = make(3)
    ref = pc.compile(model, backend="reference")
    exact = pc.compile(model, backend="torch", device="cpu", dtype="float64")
    return model, ref, exact


def _missing(x: np.ndarray, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).random(x.shape) < 0.3


def _is_valid(model: pcir.Model, x: torch.Tensor) -> bool:
    for j, v in enumerate(model.variables):
        col = x[:, j]
        if v.kind == pcir.REAL:
            if not torch.isfinite(col).all():
                return False
        elif ((col < 0) | (col >= v.num_cats)).any():
            return False
    return True


@pytest.mark.parametrize("make", FACTORIES)
def test_log_prob_matches_torch_float64(make):
    model, ref, exact = _pair(make)
    assert ref.backend_name == "reference" and ref.options.dtype == "float64"
    assert ref.device == torch.device("cpu")
    x = random_data(model, 40, seed=1)
    got = ref.log_prob(x)
    assert got.dtype == torch.float64 and got.shape == (40,)
    torch.testing.assert_close(got, exact.log_prob(x), rtol=0, atol=1e-10)
    missing = _missing(x, 2)
    torch.testing.assert_close(ref.log_prob(x, missing), exact.log_prob(x, missing),
                               rtol=0, atol=1e-10)
    # the oracle's own numbers, unchanged by the CompiledCircuit around them
    np.testing.assert_allclose(ref.log_prob(x, missing).numpy(),
                               reference.log_prob(model, x, missing), rtol=0, atol=1e-12)


@pytest.mark.parametrize("make", FACTORIES)
def test_sample_conditional_sample_and_mpe_are_valid(make):
    model, ref, _ = _pair(make)
    torch.manual_seed(0)
    s = ref.sample(7)
    assert s.shape == (7, len(model.variables)) and _is_valid(model, s)
    again = ref.sample(7, generator=torch.Generator().manual_seed(5))
    assert torch.equal(again, ref.sample(7, generator=torch.Generator().manual_seed(5)))
    x = random_data(model, 9, seed=4)
    missing = _missing(x, 5)
    for out in (ref.conditional_sample(x, missing), ref.mpe(x, missing)):
        assert out.shape == x.shape and _is_valid(model, out)
        observed = torch.as_tensor(~missing)
        assert torch.equal(out[observed].double(), torch.as_tensor(x)[observed].double())
    best, _ = reference.mpe(model, x, missing)
    assert torch.equal(ref.mpe(x, missing).double(), torch.as_tensor(best).double())


def test_flows_em_and_gradients_are_refused_naming_torch():
    model, ref, _ = _pair(factories.small_dense_model)
    x = random_data(model, 5, seed=0)
    for call in (lambda: ref.em_step(x), lambda: ref.flows(x), lambda: ref.accumulate_flows(x),
                 lambda: ref.em_update()):
        with pytest.raises(UnsupportedError, match="'reference' cannot compute .*backend='torch'"):
            call()
    ref.sum_params.requires_grad_(True)
    with pytest.raises(UnsupportedError, match="gradients"):
        ref.log_prob(x)
    with pytest.raises(UnsupportedError, match="query 'em'"):
        backends.get_backend("reference").check(query="em")
    with pytest.raises(UnsupportedError, match="device 'cuda'"):
        pc.compile(model, backend="reference", device="cuda")


def test_parameters_are_the_circuit_state():
    """Edited parameters (load_state_dict, to_model) are what the oracle uses."""
    model, ref, exact = _pair(factories.small_dense_model)
    x = random_data(model, 6, seed=2)
    before = ref.log_prob(x)
    exact.em_step(random_data(model, 50, seed=9))          # new parameters, same structure
    ref.load_state_dict(exact.state_dict())
    after = ref.log_prob(x)
    assert not torch.allclose(before, after)
    np.testing.assert_allclose(after.numpy(), reference.log_prob(exact.engine.store_parameters(float64=True), x),
                               rtol=0, atol=1e-12)
    torch.testing.assert_close(after, exact.log_prob(x), rtol=0, atol=1e-10)
    ref.load_model_parameters(model)
    torch.testing.assert_close(ref.log_prob(x), before, rtol=0, atol=0)


def test_declared_origin_fields(tmp_path):
    model = factories.small_dense_model(0)
    ref = pc.compile(model, backend="reference")
    assert ref.compile_report is not None and ref.manifest is None
    path = tmp_path / "m.pcc"
    ref.save(str(path))
    loaded = pc.load(str(path))
    assert loaded.backend_name == "reference" and loaded.manifest["backend"] == "reference"
    assert loaded.compile_report is None
    via_torch = pc.load(str(path), backend="torch")
    x = random_data(model, 8, seed=3)
    torch.testing.assert_close(loaded.log_prob(x), via_torch.log_prob(x), rtol=0, atol=1e-10)
    torch_file = tmp_path / "t.pcc"
    pc.compile(model, backend="torch", device="cpu").save(str(torch_file))
    as_ref = pc.load(str(torch_file), backend="reference")
    np.testing.assert_allclose(as_ref.log_prob(x).numpy(), reference.log_prob(model, x),
                               rtol=0, atol=1e-12)


def test_registry_admits_only_backends():
    class NotABackend:
        def compile(self, model, layout, options=None):
            raise AssertionError("never called")

    with pytest.raises(BackendError, match="not a pccompiler.backends.Backend"):
        register_backend("duck", NotABackend)
    register_backend("duck", lambda: NotABackend())
    try:
        with pytest.raises(BackendError, match="'duck' is a NotABackend, not a"):
            pc.compile(factories.small_dense_model(0), backend="duck")
    finally:
        from pccompiler.backends import registry
        registry._registered.pop("duck", None)


def test_pcc_compile_and_eval_with_the_reference_backend(tmp_path, capsys):
    model = factories.small_dense_model(0)
    src = tmp_path / "m.pcir"
    pc.ir.save(model, str(src))
    out = tmp_path / "m.pcc"
    assert pcc(["compile", str(src), "--backend", "reference", "--no-cache", "-o", str(out)]) == 0
    assert "backend reference on cpu" in capsys.readouterr().out
    x = random_data(model, 12, seed=7)
    data = tmp_path / "d.csv"
    np.savetxt(data, x, fmt="%d", delimiter=",")
    assert pcc(["eval", str(out), "--data", str(data)]) == 0
    printed = capsys.readouterr().out
    ll = float(printed.split("LL ")[1].split()[0])
    assert abs(ll - reference.log_prob(model, x).mean()) < 1e-3
