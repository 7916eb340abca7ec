"""Pruning by circuit flows and growing by copying nodes (#18), on a small
HCLT trained on nltcs, with the reference backend as the oracle after
recompiling; the prune-grow-train loop on a tiny circuit."""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest

import pccompiler as pc
from pccompiler import ir
from pccompiler.backends import reference
from pccompiler.data import load_debd
from pccompiler.errors import PCError
from pccompiler.ir import pcir
from pccompiler.ir.tensors import from_numpy
from pccompiler.passes.structure import grow_model, prune_edges
from pccompiler.train import train_em
from pccompiler.train.prune_grow import (edge_flows, grow, prune, prune_grow_train, recompile,
                                         sum_edge_count)


@functools.lru_cache(maxsize=None)
def _data():
    train = load_debd("nltcs", "train").astype(np.int64)[:2000]
    valid = load_debd("nltcs", "valid").astype(np.int64)[:500]
    return train, valid


@pytest.fixture(scope="module")
def trained():
    """A float64 HCLT (8 latents) after 3 epochs of EM, and its data."""
    train, valid = _data()
    model = pc.lower(pc.hclt(train, num_latents=8, num_cats=2, seed=0))
    circuit = pc.compile(model, backend="torch", device="cpu", dtype="float64")
    train_em(circuit, train, epochs=3, batch_size=500, step_size=0.5)
    return circuit, train, valid


def _sum_nodes(model: pcir.Model) -> int:
    return sum(int(g.num_nodes) for g in model.groups if g.kind == pcir.SUM)


def _matches_reference(model: pcir.Model, x: np.ndarray, tol: float = 1e-9) -> np.ndarray:
    """LLs of the recompiled torch circuit, asserted equal to the reference's."""
    compiled = pc.compile(model, backend="torch", device="cpu", dtype="float64")
    ours = compiled.log_prob(x).numpy()
    np.testing.assert_allclose(ours, reference.log_prob(model, x), rtol=0, atol=tol)
    return ours


def test_edge_flows_are_the_em_statistics(trained):
    circuit, train, _ = trained
    flows = edge_flows(circuit, train)
    model = circuit.model
    assert set(flows) == {g.id for g in model.groups if g.kind == pcir.SUM}
    assert flows[model.roots[0]].sum() == pytest.approx(len(train), rel=1e-9)
    assert all((f >= 0).all() and f.sum() <= len(train) * (1 + 1e-9) for f in flows.values())


@pytest.mark.parametrize("keep", [0.5, 0.25])
def test_pruning_by_flows_keeps_a_valid_circuit_matching_the_reference(trained, keep):
    circuit, train, valid = trained
    base = circuit.to_model()
    pruned = prune(circuit, train, keep)
    ir.check(pruned)                      # smoothness, decomposability, normalised weights
    before, after = sum_edge_count(base), sum_edge_count(pruned)
    # the ranked edges, plus at most one kept best edge per sum node
    assert after <= math.ceil(keep * before) + _sum_nodes(base)
    assert after < before
    pruned_ll = _matches_reference(pruned, train).mean()
    # flows choose well: random scores at the same keep lose far more
    rng = np.random.default_rng(0)
    scores = {g.id: rng.random(np.asarray(ir.tensor_table(base)[g.sum.weights]).shape)
              for g in base.groups if g.kind == pcir.SUM}
    randomly, _ = prune_edges(base, scores, keep)
    base_ll = reference.log_prob(base, train).mean()
    assert base_ll - pruned_ll < 0.25
    assert reference.log_prob(randomly, train).mean() < pruned_ll - 1.0


def test_tiny_keep_leaves_one_edge_per_live_sum_node(trained):
    circuit, train, valid = trained
    pruned = prune(circuit, train, 1e-6)
    assert sum_edge_count(pruned) == _sum_nodes(pruned)
    assert _sum_nodes(pruned) < _sum_nodes(circuit.model)      # unreachable nodes removed
    _matches_reference(pruned, valid)


def test_pruning_nothing_is_the_identity(trained):
    """keep=1 returns a Model equal (protobuf ==) to the input. A recompiled
    pruned circuit gives back the groups the passes stored dense with its
    pruned edges as zero weights; keep=1 drops those (they are no edges)
    and keeps the distribution and every real edge, round after round."""
    circuit, train, valid = trained
    assert prune(circuit, train, 1.0) == circuit.to_model()
    sparse = recompile(prune(circuit, train, 0.5), circuit)
    once = prune(sparse, train, 1.0)
    assert sum_edge_count(once) == sum_edge_count(sparse.to_model())
    np.testing.assert_allclose(reference.log_prob(once, valid),
                               reference.log_prob(sparse.to_model(), valid), rtol=0, atol=1e-9)
    assert sum_edge_count(prune(recompile(once, circuit), train, 1.0)) == sum_edge_count(once)


@pytest.mark.parametrize("factor", [2, 3])
def test_growing_with_zero_noise_keeps_the_distribution(trained, factor):
    circuit, _, valid = trained
    base = circuit.to_model()
    grown = grow(circuit, factor, noise=0.0)
    ir.check(grown)
    assert _sum_nodes(grown) == factor * _sum_nodes(base) - (factor - 1)   # the root stays one
    root = base.groups[base.roots[0]]
    root_edges = int(np.count_nonzero(ir.tensor_table(base)[root.sum.weights]))
    assert sum_edge_count(grown) == factor ** 2 * (sum_edge_count(base) - root_edges) \
        + factor * root_edges
    lls = _matches_reference(grown, valid)
    np.testing.assert_allclose(lls, reference.log_prob(base, valid), rtol=0, atol=1e-6)


def test_growing_with_noise_changes_the_parameters_reproducibly(trained):
    circuit, _, valid = trained
    a, b = grow(circuit, 2, noise=0.2, seed=1), grow(circuit, 2, noise=0.2, seed=1)
    assert a == b
    ll = _matches_reference(a, valid)
    assert not np.allclose(ll, reference.log_prob(circuit.to_model(), valid), atol=1e-4)
    assert a != grow(circuit, 2, noise=0.2, seed=2)


def test_bad_arguments_are_refused(trained):
    circuit, train, _ = trained
    with pytest.raises(PCError, match="keep must be in"):
        prune(circuit, train, 0.0)
    with pytest.raises(PCError, match="factor must be"):
        grow(circuit, 0)


@functools.lru_cache(maxsize=None)
def _tied_hmm():
    """A trained homogeneous HMM (tied transitions and emissions) and its data."""
    rng = np.random.default_rng(0)
    data = (rng.random((400, 6)) < np.linspace(0.2, 0.8, 6)).astype(np.int64)
    model = pc.lower(pc.hmm(6, num_latents=4, num_emits=2, seed=0))
    assert model.ties
    circuit = pc.compile(model, backend="torch", device="cpu", dtype="float64")
    train_em(circuit, data, epochs=3, batch_size=200, step_size=0.5)
    return circuit, data


def test_tied_edges_are_scored_by_their_summed_flows():
    circuit, data = _tied_hmm()
    model = circuit.model
    flows = edge_flows(circuit, data)
    owner = ir.tie_targets(model)
    tied = [g.id for g in model.groups if g.kind == pcir.SUM and owner[g.id] != g.id]
    assert tied
    for gid in tied:
        np.testing.assert_array_equal(flows[gid], flows[owner[gid]])
    # the class total is every member's own flow: each transition step carries
    # one unit of flow per sample, so a class of m steps carries m per sample
    members = [g for g in model.groups if g.kind == pcir.SUM and owner[g.id] == owner[tied[0]]]
    assert flows[tied[0]].sum() == pytest.approx(len(members) * len(data), rel=1e-9)


def test_pruning_a_tied_model_breaks_its_ties_and_keeps_it_valid():
    circuit, data = _tied_hmm()
    pruned = prune(circuit, data, 0.5)
    assert not pruned.ties
    assert sum_edge_count(pruned) < sum_edge_count(circuit.to_model())
    _matches_reference(pruned, data[:50])
    # tied edges share one score, so every member of a class keeps the same edges
    sizes = [int(np.count_nonzero(ir.tensor_table(pruned)[g.sum.weights]))
             for g in pruned.groups if g.kind == pcir.SUM and g.num_nodes == 4]
    assert len(set(sizes[1:-1])) == 1


def test_growing_a_tied_model_with_zero_noise_keeps_the_distribution():
    circuit, data = _tied_hmm()
    grown = grow(circuit, 2, noise=0.0)
    assert not grown.ties
    lls = _matches_reference(grown, data[:50])
    np.testing.assert_allclose(lls, circuit.log_prob(data[:50]).numpy(), rtol=0, atol=1e-6)
    noisy = grow_model(circuit.to_model(), 2, noise=0.2, seed=3)
    _matches_reference(noisy, data[:50])


def test_the_prune_grow_loop_follows_its_schedule():
    train, valid = _data()
    model = pc.lower(pc.hclt(train, num_latents=4, num_cats=2, seed=0))
    circuit = pc.compile(model, backend="torch", device="cpu")
    start_edges, lines = sum_edge_count(circuit.to_model()), []
    final, rounds = prune_grow_train(circuit, train, valid, rounds=2, keep=0.5, factor=2,
                                     noise=0.1, epochs_per_round=1, batch_size=500,
                                     step_size=0.2, log=lines.append)
    assert [r.round for r in rounds] == [1, 2] and len(lines) == 2
    assert rounds[0].edges_before == start_edges
    assert rounds[1].edges_before == rounds[0].edges_trained
    assert rounds[-1].edges_trained == sum_edge_count(final.to_model())
    for r in rounds:
        assert r.edges_pruned <= math.ceil(0.5 * r.edges_before) + _sum_nodes(final.model)
        assert 2 * r.edges_pruned < r.edges_grown <= 4 * r.edges_pruned
        assert r.edges_trained == r.edges_grown       # EM keeps the padding at 0
        assert math.isfinite(r.valid_ll) and math.isfinite(r.train_ll)
    assert rounds[-1].valid_ll == pytest.approx(pc.train.evaluate(final, valid), abs=1e-9)


def test_the_passes_find_blocks_again_after_a_structure_change(trained):
    """Grown and pruned groups are written SPARSE; recompiling classifies
    them again: the grown HCLT's complete groups become DENSE; some pruned
    groups pad into blocks (detect-block-sparsity with permutations), which
    the cost model prices above these small groups stored DENSE (2-row
    blocks: row_tiles.block_sparse_cost), so every one is DENSE unless
    tile_dense=false keeps the blocks unpriced."""
    circuit, train, _ = trained
    grown, pruned = grow(circuit, 2, noise=0.0), prune(circuit, train, 0.5)
    patterns = lambda m: [g.sum.pattern for g in m.groups if g.kind == pcir.SUM and  # noqa: E731
                          g.num_nodes > 1]
    assert set(patterns(grown)) == {pcir.SPARSE}
    assert set(patterns(recompile(grown, circuit).model)) == {pcir.DENSE}
    assert pcir.SPARSE in patterns(pruned)
    assert set(patterns(recompile(pruned, circuit).model)) == {pcir.DENSE}
    unpriced = pc.compile(pruned, backend="torch", device="cpu", dtype="float64",
                          pass_options={"detect-block-sparsity": {"tile_dense": False}})
    assert pcir.BLOCK_SPARSE in patterns(unpriced.model)


def test_zero_weight_edges_are_not_ranked_counted_or_kept(trained):
    """A dense-stored pruned group gives its pruned edges back as zero
    weights; a second prune takes `keep` of the real edges only (the
    2026-12-07 prune-grow run took 0.25 of the padded count instead)."""
    circuit, train, valid = trained
    model = circuit.to_model()
    table = ir.tensor_table(model)
    rng = np.random.default_rng(3)
    scores, zeroed = {}, 0
    for g in model.groups:
        if g.kind != pcir.SUM:
            continue
        w = np.array(table[g.sum.weights], dtype=np.float64)
        if w.ndim == 2 and w.shape[1] > 1:          # dense [n, C]: zero half of each row
            dead = rng.random(w.shape) < 0.5
            dead[np.arange(len(w)), np.argmax(w, axis=1)] = False
            w[dead] = 0.0
            w /= w.sum(axis=1, keepdims=True)
            zeroed += int(dead.sum())
            tensor = next(t for t in model.tensors if t.name == g.sum.weights)
            tensor.CopyFrom(from_numpy(w.astype(table[g.sum.weights].dtype), tensor.name))
        scores[g.id] = rng.random(w.shape) + 1.0
    assert zeroed > 0
    real = sum_edge_count(model)
    pruned, stats = prune_edges(model, scores, 0.5)
    assert stats.sum_edges_before == real
    assert stats.ranked_kept == math.ceil(0.5 * real - 1e-9)
    assert sum_edge_count(pruned) <= stats.ranked_kept + _sum_nodes(pruned)
    ir.check(pruned)
    _matches_reference(pruned, valid)


def _copy_gap(model: pcir.Model, factor: int) -> float:
    """Largest difference between copy 0 and copy 1 of any categorical leaf
    of a grown Model (copy k of node i is node k*n + i)."""
    table = ir.tensor_table(model)
    gaps = [0.0]
    for g in model.groups:
        if g.kind == pcir.INPUT:
            p = np.asarray(table[g.input.params], np.float64)
            n = len(p) // factor
            gaps.append(float(np.abs(p[:n] - p[n:2 * n]).max()))
    return max(gaps)


@pytest.mark.parametrize("noise", [0.0, 0.2])
def test_grown_copies_separate_under_em_only_with_noise(trained, noise):
    """At noise 0 every copy gets the same flows, so EM keeps the copies
    identical: the grown circuit stays the pruned one (and fine-tuning it is
    fine-tuning the pruned circuit). Noise breaks the tie and the copies
    move apart during EM: why prune-grow needs noise > 0."""
    circuit, train, _ = trained
    grown = grow(prune(circuit, train, 0.25), 2, noise=noise, seed=3)
    tuned = pc.compile(grown, backend="torch", device="cpu", dtype="float64")
    start = _copy_gap(grown, 2)
    train_em(tuned, train, epochs=3, batch_size=500, step_size=0.5)
    end = _copy_gap(tuned.to_model(), 2)
    if noise == 0:
        assert start == 0 and end < 1e-12
    else:
        assert end > start > 0
