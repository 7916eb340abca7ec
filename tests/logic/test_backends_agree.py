"""A logic-circuit Model runs through the ordinary pipeline: the torch
backend's log-likelihood with evidence is the log of the exact conditional
model count, its MPE equals the reference's; and the checker relaxes
normalization only for models marked semantics=logic."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import pccompiler as pc
from pccompiler import ir
from pccompiler.backends.reference import mpe as reference_mpe
from pccompiler.errors import CheckError
from pccompiler.logic import model_count, mpe

from tests.logic.circuits import shared_sdd


@pytest.mark.parametrize("name", ["4-grid", "road_r"])
def test_torch_counts_and_mpe_match_the_reference(name):
    path = shared_sdd(name)
    model = pc.from_sdd(path)
    n = len(model.variables)
    rng = np.random.default_rng(0)
    x, _ = mpe(model, rng.uniform(size=(6, n)))            # satisfying assignments
    missing = rng.random((6, n)) < 0.6
    counts = model_count(model, x, missing)
    assert min(counts) >= 1 and max(counts) > 1
    circuit = pc.compile(model, backend="torch", device="cpu", dtype="float64")
    lp = circuit.log_prob(torch.tensor(x), missing=torch.tensor(missing)).numpy()
    np.testing.assert_allclose(lp, np.log(np.array(counts, dtype=np.float64)), rtol=1e-10)
    got = circuit.mpe(torch.tensor(x), missing=torch.tensor(missing)).numpy()
    want, _ = reference_mpe(model, x, missing)
    np.testing.assert_array_equal(got, want)
    assert min(model_count(model, got, np.zeros_like(missing))) == 1   # each is a model


def test_unnormalised_sums_need_the_logic_marker():
    path = shared_sdd("road_r")
    model = pc.from_sdd(path)
    ir.check(model)
    del model.metadata["semantics"]
    with pytest.raises(CheckError) as err:
        ir.check(model)
    assert err.value.rule == "normalized-weights"


@pytest.mark.parametrize("backend", ["torch", "triton"])
def test_tiny_counts_with_evidence_on_each_backend(tmp_path, backend):
    """Every evidence pattern over the tiny SDD: exp(log_prob) is the exact
    conditional count (triton: its kernels under the interpreter on CPU)."""
    from tests.logic.circuits import assignments, write

    model = pc.from_sdd(write(tmp_path))
    x = np.repeat(assignments(3), 8, axis=0)
    missing = np.tile(assignments(3).astype(bool), (8, 1))
    counts = np.array(model_count(model, x, missing), dtype=np.float64)
    circuit = pc.compile(model, backend=backend)
    got = circuit.log_prob(torch.tensor(x), missing=torch.tensor(missing)).exp().numpy()
    np.testing.assert_allclose(got, counts, rtol=1e-5)
    assert counts.max() == 4 and counts.min() == 0
