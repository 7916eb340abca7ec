"""Sampling from the reference interpreter follows the circuit's
distribution (unconditional and conditional), checked by chi-square tests
with fixed seeds.

The critical value is the chi-square quantile at 1 - 1e-6 (computed by
tests/reference/chi_square.py, itself checked against table values): a
correct sampler fails with probability 1e-6 per seed, and since seeds are
fixed the outcome is deterministic. A power check shows that the same test
rejects samples compared with a slightly different distribution.
"""

from __future__ import annotations

import numpy as np
import pytest

import pccompiler as pc
from pccompiler.backends import reference as ref
from pccompiler.errors import DataError
from tests.reference.chi_square import chi2_quantile, chi2_statistic
from tests.reference.random_circuits import all_assignments, random_circuit

CATS = (3, 2, 2, 3)
FALSE_ALARM = 1e-6


def _cell_counts(samples: np.ndarray, cats) -> np.ndarray:
    cell = np.ravel_multi_index(tuple(samples.T), cats)
    return np.bincount(cell, minlength=int(np.prod(cats)))


def test_chi_square_quantile_matches_tables():
    assert abs(chi2_quantile(0.95, 1) - 3.841458820694124) < 1e-6
    assert abs(chi2_quantile(0.99, 10) - 23.209251158954356) < 1e-6
    assert abs(chi2_quantile(0.999, 35) - 66.61890) < 1e-3


@pytest.mark.parametrize("pattern", ["dense", "block_sparse", "sparse"])
def test_unconditional_samples_match_exact_joint(pattern):
    model = pc.lower(random_circuit(11, pattern, CATS))
    probs = np.exp(ref.log_prob(model, all_assignments(CATS)))
    samples = ref.sample(model, 100_000, np.random.default_rng(0))
    assert samples.shape == (100_000, 4) and samples.dtype == np.int64
    counts = _cell_counts(samples, CATS)
    critical = chi2_quantile(1 - FALSE_ALARM, len(probs) - 1)
    assert chi2_statistic(counts, probs) < critical
    # power: the same counts against a slightly different distribution fail
    other = np.exp(ref.log_prob(pc.lower(random_circuit(12, pattern, CATS)),
                                all_assignments(CATS)))
    mixed = 0.9 * probs + 0.1 * other
    assert chi2_statistic(counts, mixed) > critical


def test_conditional_samples_match_exact_conditional():
    model = pc.lower(random_circuit(5, "sparse", CATS))
    n = 40_000
    x = np.zeros((n, 4), dtype=np.int64)
    x[:, 0], x[:, 3] = 2, 1
    missing = np.zeros(x.shape, dtype=bool)
    missing[:, 1:3] = True
    samples = ref.conditional_sample(model, x, missing, np.random.default_rng(1))
    assert np.all(samples[:, 0] == 2) and np.all(samples[:, 3] == 1)
    grid = all_assignments(CATS)
    keep = (grid[:, 0] == 2) & (grid[:, 3] == 1)
    joint = np.exp(ref.log_prob(model, grid[keep]))
    probs = joint / joint.sum()                       # over (x1, x2) in row-major order
    counts = _cell_counts(samples[:, 1:3], (2, 2))
    assert chi2_statistic(counts, probs) < chi2_quantile(1 - FALSE_ALARM, 3)
    # the conditional differs from the unconditional marginal of (x1, x2)
    marginal = np.exp(ref.log_prob(model, grid[keep] * [0, 1, 1, 0],
                                   np.tile([True, False, False, True], (4, 1))))
    assert not np.allclose(probs, marginal, atol=1e-3)


def test_gaussian_sample_moments():
    mean, std, w = np.array([-2.0, 1.0, 3.0]), np.array([0.5, 1.0, 0.3]), np.array([.2, .5, .3])
    g = pc.inputs(0, 3, pc.Gaussian(mean=mean, std=std))
    model = pc.lower(pc.summate(g, num_nodes=1, weights=w[None, :]))
    samples = ref.sample(model, 200_000, 3)[:, 0]
    m1 = np.sum(w * mean)
    var = np.sum(w * (std ** 2 + mean ** 2)) - m1 ** 2
    assert abs(samples.mean() - m1) < 6 * np.sqrt(var / len(samples))
    assert abs(samples.var() - var) < 0.05 * var


def test_zero_probability_evidence_is_refused():
    a = pc.inputs(0, 1, pc.Categorical(2, params=np.array([[1.0, 0.0]])))
    b = pc.inputs(1, 1, pc.Bernoulli(params=np.array([0.5])))
    model = pc.lower(pc.summate(pc.multiply(a, b), num_nodes=1, weights=[[1.0]]))
    with pytest.raises(DataError, match="row 1"):
        ref.conditional_sample(model, np.array([[0, 0], [1, 0]]),
                               np.array([[False, True], [False, True]]), 0)
