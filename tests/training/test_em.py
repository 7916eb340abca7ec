"""EM loops: sharded full-batch EM, monotone likelihood, mini-batch training."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch

import pccompiler as pc
from pccompiler.data import load_debd
from pccompiler.train import evaluate, full_batch_em_epoch, train_em


@pytest.fixture(scope="module")
def nltcs():
    train = load_debd("nltcs", "train").astype(np.int64)[:3000]
    valid = load_debd("nltcs", "valid").astype(np.int64)[:1000]
    return train, valid


@functools.lru_cache(maxsize=None)
def _hclt_model():
    train = load_debd("nltcs", "train").astype(np.int64)[:3000]
    return pc.lower(pc.hclt(train, num_latents=8, num_cats=2, seed=0))


def small_hclt(train, dtype="float32"):
    return pc.compile(_hclt_model(), backend="torch", device="cpu", dtype=dtype)


def test_full_batch_em_on_two_shards_equals_whole_data(nltcs):
    train, _ = nltcs
    whole, sharded = small_hclt(train, "float64"), small_hclt(train, "float64")
    ll_whole = full_batch_em_epoch(whole, [train], batch_size=700, step_size=1.0, pseudocount=0.5)
    shards = [train[:1234], train[1234:]]
    ll_sharded = full_batch_em_epoch(sharded, shards, batch_size=500, step_size=1.0,
                                     pseudocount=0.5)
    assert ll_whole == pytest.approx(ll_sharded, rel=1e-12)
    torch.testing.assert_close(whole.sum_params, sharded.sum_params, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(whole.input_params, sharded.input_params, rtol=1e-10, atol=1e-12)
    assert not torch.allclose(whole.sum_params, small_hclt(train, "float64").sum_params)


def test_full_batch_em_never_decreases_the_likelihood(nltcs):
    """EM without pseudocount is monotone on the training data."""
    train, _ = nltcs
    circuit = small_hclt(train, "float64")
    history = train_em(circuit, train, epochs=6, batch_size=1024, em="full", step_size=1.0,
                       pseudocount=0.0)
    lls = [h.train_ll for h in history] + [evaluate(circuit, train)]
    assert all(b >= a - 1e-9 for a, b in zip(lls, lls[1:])), lls
    assert lls[-1] > lls[0] + 0.5


def test_mini_batch_em_learns_and_logs(nltcs):
    train, valid = nltcs
    circuit = small_hclt(train)
    lines = []
    before = evaluate(circuit, valid)
    history = train_em(circuit, train, valid, epochs=2, batch_size=256, em="mini",
                       step_size=0.2, step_size_end=0.05, pseudocount=0.1, log=lines.append)
    assert len(lines) == 2 and "valid LL" in lines[0] and lines[0].endswith("s")
    assert history[-1].valid_ll > before + 1.0
    assert history[-1].valid_ll == pytest.approx(evaluate(circuit, valid), rel=1e-6)
