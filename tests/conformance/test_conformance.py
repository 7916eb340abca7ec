"""A backend against the float64 reference, on every circuit and query.

Run for any backend: `pytest tests/conformance --backend NAME`. A backend
that raises UnsupportedError for a query is recorded as "refused" in
docs/support.md; any other difference fails.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch

from pccompiler import passes
from pccompiler.driver import compiling_backend
from pccompiler.backends import reference
from pccompiler.errors import UnsupportedError
from tests.conformance.circuits import (
    all_assignments, all_circuits, is_discrete, random_data,
)
from tests.conformance.numpy_em import em_expected

CIRCUITS = all_circuits()
RTOL = 1e-5
# A backend may be named NAME:PRECISION (`--backend triton:bf16`): compiled
# with that dot precision and checked at its tolerance. bf16 operands keep 8
# mantissa bits (2^-9 relative rounding per weight and per value), so a
# log-likelihood is off by up to about 1e-3 nats per sum layer.
# A plain `triton` runs its tf32 default, exact fp32 under the interpreter and
# on blocks under 16 rows; on a GPU tf32 (10 mantissa bits) applies to the
# circuits with full 16-row dot tiles, listed here: `pruned_tiles` too, whose
# runs of >= 16 one-row blocks dot in tf32 (launch.dot_rows; on an H100,
# 2026-12-07: up to 6e-4 relative off the float64 log-likelihoods).
PRECISION_RTOL = {"bf16": 5e-3, "tf32": 2e-3}
FULL_TILE_CIRCUITS = {"hclt_wide", "pruned_tiles"}
# `triton:fuse` (or `triton:bf16+fuse`): the plan option fuse_products=True
# (backends/triton/fusion.py), checked at the tolerance of its precision.
FUSE_TOKEN = "fuse"
# `triton:persistent`: the option persistent="on" (backends/triton/persistent.py):
# every log_prob / marginal runs the one-launch forward in chunks of 16 rows;
# circuits with non-categorical leaves record those two queries as refused.
PERSISTENT_TOKEN = "persistent"
# `triton:pflow_split` / `triton:pflow_fused` / `triton:pflow_fused_split`: the
# option pflow="split" / "fused" / "fused_split"
# (backends/triton/pflow_launch.py): parameter flows under the split tiles, or
# inside the node-flow kernel of plain sum layers; same tolerances as the default.
PFLOW_TOKENS = {"pflow_split": {"pflow": "split"}, "pflow_fused": {"pflow": "fused"},
                "pflow_fused_split": {"pflow": "fused_split"}}
OPTION_TOKENS = {FUSE_TOKEN: {"fuse_products": True}, PERSISTENT_TOKEN: {"persistent": "on"},
                 **PFLOW_TOKENS}


def parse_backend(backend_name: str) -> tuple[str, str, dict]:
    """NAME[:TOKEN[+TOKEN]] -> (name, precision or "", extra compile options)."""
    name, _, suffix = backend_name.partition(":")
    tokens = [t for t in suffix.split("+") if t]
    extra = {k: v for t in tokens for k, v in OPTION_TOKENS.get(t, {}).items()}
    precision = "+".join(t for t in tokens if t not in OPTION_TOKENS)
    return name, precision, extra


def rtol_for(backend_name: str, circuit_name: str = "", device: str = "cpu") -> float:
    name, precision, _ = parse_backend(backend_name)
    if not precision and name == "triton" and str(device).startswith("cuda") \
            and circuit_name in FULL_TILE_CIRCUITS:
        precision = "tf32"
    return max(RTOL, PRECISION_RTOL.get(precision, RTOL))


@functools.lru_cache(maxsize=None)
def _compiled_layout(circuit_name: str):
    model = CIRCUITS[circuit_name]()
    result = passes.compile_model(model)
    return model, result.model, result.layout


def compile_for(backend_name: str, circuit_name: str, device: str = "cpu"):
    """(original model, CompiledCircuit) or a 'refused' skip."""
    model, model2, layout = _compiled_layout(circuit_name)
    name, precision, extra = parse_backend(backend_name)
    options = {"device": device, **({"precision": precision} if precision else {}), **extra}
    try:
        circuit = compiling_backend(name).compile(model2, layout, options)
    except UnsupportedError as exc:
        pytest.skip(f"refused: {exc}")
    return model, circuit


def run(fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except UnsupportedError as exc:
        pytest.skip(f"refused: {exc}")


def close(got, want, rtol=RTOL):
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * np.abs(want).max())


circuit_param = pytest.mark.parametrize("circuit_name", sorted(CIRCUITS))


def num_samples(backend_name: str, device: str) -> int:
    """Samples per sampling test: 20,000, or 5,000 under the Triton
    interpreter, whose per-element cost made these the slowest tests of CI.
    The tolerances scale with 1/sqrt(n), so the smaller count still fails
    any sampler whose marginals are off by more than about 0.03."""
    name = parse_backend(backend_name)[0]
    return 5000 if name == "triton" and str(device).startswith("cpu") else 20000


@pytest.mark.query("log_prob")
@circuit_param
def test_log_prob(backend_name, circuit_name, device):
    model, circuit = compile_for(backend_name, circuit_name, device)
    x = random_data(model, 64, seed=1)
    got = run(circuit.log_prob, x).detach().cpu().numpy()
    close(got, reference.log_prob(model, x), rtol_for(backend_name, circuit_name, device))


@pytest.mark.query("marginal")
@circuit_param
def test_marginal(backend_name, circuit_name, device):
    model, circuit = compile_for(backend_name, circuit_name, device)
    x = random_data(model, 64, seed=2)
    missing = np.random.default_rng(3).random(x.shape) < 0.35
    missing[0] = True                       # everything marginalised: log 1 = 0
    got = run(circuit.log_prob, x, missing).detach().cpu().numpy()
    rtol = rtol_for(backend_name, circuit_name, device)
    close(got, reference.log_prob(model, x, missing), rtol)
    assert abs(got[0]) < rtol


@pytest.mark.query("em")
@circuit_param
def test_em_step(backend_name, circuit_name, device):
    """One mini-batch EM step (with missing values) equals the numpy EM."""
    model, circuit = compile_for(backend_name, circuit_name, device)
    x = random_data(model, 48, seed=4)
    missing = np.random.default_rng(5).random(x.shape) < 0.2
    before = circuit.to_model()
    want = em_expected(before, x, missing, step_size=0.7, pseudocount=0.3)
    run(circuit.em_step, x, missing, step_size=0.7, pseudocount=0.3)
    from pccompiler import ir
    got = ir.tensor_table(circuit.to_model())
    for name, expected in want.items():
        rtol = rtol_for(backend_name, circuit_name, device)
        np.testing.assert_allclose(got[name], expected, rtol=max(2e-4, rtol),
                                   atol=2e-6 if rtol == RTOL else 1e-3, err_msg=name)


def _exact_marginals(model, var: int, evidence=None, evidence_mask=None):
    """Exact p(x_var = c | evidence) for every category c."""
    v = model.variables[var]
    n = int(v.num_cats)
    x = np.zeros((n, len(model.variables)), dtype=np.int64)
    missing = np.ones_like(x, dtype=bool)
    if evidence is not None:
        x[:] = evidence
        missing[:] = evidence_mask
    x[:, var] = np.arange(n)
    missing[:, var] = False
    lp = reference.log_prob(model, x, missing)
    p = np.exp(lp - lp.max())
    return p / p.sum()


def _check_discrete_samples(model, samples: np.ndarray, vars_, evidence=None, mask=None):
    n = len(samples)
    for var in vars_:
        want = _exact_marginals(model, var, evidence, mask)
        got = np.bincount(samples[:, var].astype(np.int64), minlength=len(want)) / n
        tol = 5 * np.sqrt(want * (1 - want) / n) + 2e-3
        assert np.all(np.abs(got - want) <= tol), (var, got, want)


def _gaussian_ks(model, samples: np.ndarray, var: int) -> float:
    """KS distance between the samples of a real variable and its exact marginal."""
    grid = np.linspace(samples[:, var].min() - 1, samples[:, var].max() + 1, 2001)
    x = np.zeros((len(grid), len(model.variables)))
    missing = np.ones_like(x, dtype=bool)
    x[:, var], missing[:, var] = grid, False
    dens = np.exp(reference.log_prob(model, x, missing))
    cdf = np.concatenate([[0], np.cumsum((dens[1:] + dens[:-1]) / 2 * np.diff(grid))])
    cdf /= cdf[-1]
    emp = np.searchsorted(np.sort(samples[:, var]), grid, side="right") / len(samples)
    return float(np.abs(emp - cdf).max())


@pytest.mark.query("sample")
@circuit_param
def test_sample(backend_name, circuit_name, device):
    model, circuit = compile_for(backend_name, circuit_name, device)
    gen = torch.Generator(device=circuit.device).manual_seed(0)
    n = num_samples(backend_name, device)
    samples = run(circuit.sample, n, generator=gen).cpu().numpy()
    assert samples.shape == (n, len(model.variables))
    if is_discrete(model):
        _check_discrete_samples(model, samples, range(min(4, len(model.variables))))
        # a pair: the joint of x0, x1 (catches independent-per-variable sampling)
        pair = samples[:, 0] * model.variables[1].num_cats + samples[:, 1]
        x = all_assignments(model)[:, :2]
        x = np.unique(x, axis=0)
        full = np.zeros((len(x), len(model.variables)), dtype=np.int64)
        full[:, :2] = x
        missing = np.ones_like(full, dtype=bool)
        missing[:, :2] = False
        want = np.exp(reference.log_prob(model, full, missing))
        got = np.bincount(pair.astype(np.int64), minlength=len(want)) / n
        assert np.all(np.abs(got - want) <= 5 * np.sqrt(want * (1 - want) / n) + 2e-3)
    else:
        for var in range(len(model.variables)):
            assert _gaussian_ks(model, samples, var) < 1.63 / np.sqrt(n) * 1.5


@pytest.mark.query("conditional_sample")
@circuit_param
def test_conditional_sample(backend_name, circuit_name, device):
    model, circuit = compile_for(backend_name, circuit_name, device)
    if not is_discrete(model):
        pytest.skip("n/a: exact conditionals checked on discrete circuits")
    evidence = random_data(model, 1, seed=6)[0]
    mask = np.zeros(len(evidence), dtype=bool)
    mask[1:] = True                                  # observe x0 only
    n = num_samples(backend_name, device)
    x = np.tile(evidence, (n, 1))
    m = np.tile(mask, (n, 1))
    gen = torch.Generator(device=circuit.device).manual_seed(1)
    samples = run(circuit.conditional_sample, x, m, generator=gen).cpu().numpy()
    assert np.all(samples[:, 0] == evidence[0])
    _check_discrete_samples(model, samples, range(1, min(4, len(model.variables))),
                            evidence, mask)


@pytest.mark.query("mpe")
@circuit_param
def test_mpe(backend_name, circuit_name, device):
    """The completion reaches the max-product value, found by enumerating
    every completion of the missing variables."""
    model, circuit = compile_for(backend_name, circuit_name, device)
    if not is_discrete(model) or np.prod([v.num_cats for v in model.variables]) > 5000:
        pytest.skip("n/a: exact enumeration needs a small discrete circuit")
    rows = random_data(model, 6, seed=8)
    missing = np.random.default_rng(9).random(rows.shape) < 0.6
    missing[0] = True
    completion = run(circuit.mpe, rows, missing).cpu().numpy()
    assert np.all(completion[~missing] == rows[~missing])
    every = all_assignments(model)
    maxprod = reference.log_prob_groups(model, every, semiring="max")[model.roots[0]][:, 0]
    mine = reference.log_prob_groups(model, completion, semiring="max")[model.roots[0]][:, 0]
    for r in range(len(rows)):
        consistent = np.all((every == rows[r]) | missing[r], axis=1)
        best = maxprod[consistent].max()
        assert mine[r] == pytest.approx(best, rel=1e-6, abs=1e-9), r
