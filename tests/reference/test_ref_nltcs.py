"""The reference interpreter on real rows of the NLTCS data set (16 binary
variables, shipped with the package): a random 16-variable circuit is
normalized over all 2^16 assignments, its marginals on test rows with
missing entries equal explicit sums, and MPE completions of those rows
reach the best max-product value among all completions."""

from __future__ import annotations

import numpy as np
import pytest

import pccompiler as pc
from pccompiler.backends import reference as ref
from pccompiler.data.debd import load_debd
from tests.reference.random_circuits import all_assignments, completions, logsumexp, random_circuit

CATS = (2,) * 16


@pytest.fixture(scope="module")
def model():
    return pc.lower(random_circuit(21, "sparse", CATS))


@pytest.fixture(scope="module")
def rows():
    return load_debd("nltcs", "test")[:40].astype(np.int64)


def test_normalized_over_all_assignments(model):
    total = np.exp(ref.log_prob(model, all_assignments(CATS))).sum()
    assert abs(total - 1.0) < 1e-9


def test_marginals_of_real_rows(model, rows):
    rng = np.random.default_rng(0)
    missing = rng.random(rows.shape) < 0.25
    got = ref.log_prob(model, rows, missing)
    for r in range(len(rows)):
        want = logsumexp(ref.log_prob(model, completions(rows[r], missing[r], CATS)))
        assert abs(got[r] - want) < 1e-9


def test_mpe_of_real_rows(model, rows):
    rng = np.random.default_rng(1)
    missing = rng.random(rows.shape) < 0.5
    assignment, value = ref.mpe(model, rows, missing)
    assert np.all(assignment[~missing] == rows[~missing])
    root = model.roots[0]
    for r in range(0, len(rows), 4):
        full = completions(rows[r], missing[r], CATS)
        best = ref.log_prob_groups(model, full, semiring="max")[root][:, 0].max()
        assert abs(value[r] - best) < 1e-9
