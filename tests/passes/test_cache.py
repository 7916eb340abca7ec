"""The layout cache: hit, miss explanation, replay with new parameters,
corruption, concurrency and an unwritable folder."""

import multiprocessing as mp
import os
import warnings

import numpy as np
import pytest

from pccompiler import ir, passes
from pccompiler.backends.reference.layout_interp import layout_log_prob
from pccompiler.passes import cache as cache_mod
from tests.passes.circuits import block_mask, expand_blocks, reference_log_prob, two_level_model


def _shuffled_model(seed=0):
    rng = np.random.default_rng(seed)
    edges = expand_blocks(block_mask(rng, 2, 4, 0.5), 16)
    rows, cols = rng.permutation(32), rng.permutation(64)
    edges = np.stack([rows[edges[:, 0]], cols[edges[:, 1]]], 1)
    return two_level_model(edges[np.lexsort((edges[:, 1], edges[:, 0]))], 32, 64, seed=seed)


@pytest.fixture(autouse=True)
def _fresh_warnings():
    cache_mod._warned.clear()


def test_hit_replays_rewrites_with_current_parameters(tmp_path):
    model = _shuffled_model()
    cold = passes.compile_model(model, cache=tmp_path)
    assert not cold.cache_hit and len(list(tmp_path.glob("*.pclc"))) == 1
    # same structure, new parameter values: the hit must use them
    other = _shuffled_model()
    rng = np.random.default_rng(9)
    for t in other.tensors:
        if t.name == "g3.weights":
            w = ir.to_numpy(t, copy=True)
            w = rng.random(w.shape) + 0.1
            edges = ir.tensor_table(other)["g3.edges"]
            w /= np.bincount(edges[:, 0], weights=w)[edges[:, 0]]
            t.CopyFrom(ir.from_numpy(w, t.name))
    assert ir.structure_hash(other) == ir.structure_hash(model)
    hot = passes.compile_model(other, cache=tmp_path)
    assert hot.cache_hit and hot.report.records == []
    assert hot.layout == cold.layout
    ir.check_layout(hot.layout, hot.model, deep=True)
    x = rng.integers(0, 3, (6, 2))
    np.testing.assert_allclose(layout_log_prob(hot.model, hot.layout, x),
                               reference_log_prob(other, x), atol=1e-10)
    fresh = passes.compile_model(other)
    assert hot.model == fresh.model


def test_miss_names_the_changed_ingredient(tmp_path):
    model = _shuffled_model()
    passes.compile_model(model, cache=tmp_path)
    result = passes.compile_model(model, cache=tmp_path,
                                  pipeline=passes.DEFAULT_PIPELINE.replace(
                                      "layerize", "layerize{partitions=2}"))
    assert not result.cache_hit
    assert any("differs in pipeline" in n for n in result.report.cache_notes)
    result = passes.compile_model(model, cache=tmp_path, block_limit=16)
    assert any("block_limit" in n for n in result.report.cache_notes)


def test_corrupt_entry_is_reported_once_and_rebuilt(tmp_path):
    model = _shuffled_model()
    passes.compile_model(model, cache=tmp_path)
    (entry,) = tmp_path.glob("*.pclc")
    data = bytearray(entry.read_bytes())
    data[len(data) // 2] ^= 0xFF
    entry.write_bytes(bytes(data))
    with pytest.warns(RuntimeWarning, match="corrupt"):
        again = passes.compile_model(model, cache=tmp_path)
    assert not again.cache_hit
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert passes.compile_model(model, cache=tmp_path).cache_hit


def _compile_in_child(path, seed, queue):
    try:
        result = passes.compile_model(_shuffled_model(seed), cache=path)
        queue.put(("ok", result.layout.SerializeToString(deterministic=True)))
    except Exception as exc:        # report to the parent instead of dying silently
        queue.put(("error", repr(exc)))


def test_two_processes_compile_at_once(tmp_path):
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_compile_in_child, args=(str(tmp_path), 0, queue))
             for _ in range(2)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0
    assert [r[0] for r in results] == ["ok", "ok"]
    assert results[0][1] == results[1][1]
    assert len(list(tmp_path.glob("*.pclc"))) == 1
    assert not list(tmp_path.glob("*.tmp"))
    assert passes.compile_model(_shuffled_model(0), cache=tmp_path).cache_hit


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_read_only_folder_warns_once_and_compiles(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.warns(RuntimeWarning, match="not writable"):
            passes.compile_model(_shuffled_model(), cache=folder)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert not passes.compile_model(_shuffled_model(), cache=folder).cache_hit
    finally:
        folder.chmod(0o700)


def test_unwritable_path_warns_once_and_compiles(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.warns(RuntimeWarning, match="not writable"):
        result = passes.compile_model(_shuffled_model(), cache=blocker / "cache")
    assert not result.cache_hit and result.layout.num_slots > 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        passes.compile_model(_shuffled_model(), cache=blocker / "cache")


def test_default_folder_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("PCC_CACHE_DIR", str(tmp_path / "env"))
    passes.compile_model(_shuffled_model(), cache=True)
    assert len(list((tmp_path / "env").glob("*.pclc"))) == 1


def _input_child_model(seed, unsorted=True):
    """A shuffled block-sparse sum directly over an input group (so the
    permutation moves input parameter rows), edges stored unsorted (so
    canonicalize's reorder composes with the later gathers)."""
    from pccompiler.ir import pcir
    from tests.passes.circuits import normalize_sparse
    rng = np.random.default_rng(seed)
    edges = expand_blocks(block_mask(rng, 2, 4, 0.5), 16)
    rows, cols = rng.permutation(32), rng.permutation(64)
    edges = np.stack([rows[edges[:, 0]], cols[edges[:, 1]]], 1)
    edges = edges[np.lexsort((edges[:, 1], edges[:, 0]))]
    weights = normalize_sparse(rng, edges, 32)
    if unsorted:
        order = rng.permutation(len(edges))
        edges, weights = edges[order], weights[order]
    p = rng.random((64, 3)) + 0.1
    w = rng.random((1, 32)) + 0.1
    return ir.make_model(
        [ir.make_variable("x0", pcir.CATEGORICAL, 3)],
        [ir.make_input_group(0, 0, pcir.CATEGORICAL_DIST, 64, "in"),
         ir.make_sum_group(1, [0], 32, [0], pcir.SPARSE, "s.w", "s.e"),
         ir.make_sum_group(2, [1], 1, [0], pcir.DENSE, "root.w")], [2],
        [ir.make_tensor("in", p / p.sum(1, keepdims=True)), ir.make_tensor("s.e", edges),
         ir.make_tensor("s.w", weights), ir.make_tensor("root.w", w / w.sum())])


def test_hit_replays_composed_gathers_and_input_rows(tmp_path):
    from pccompiler.ir import pcir
    pipeline = passes.DEFAULT_PIPELINE.replace("verify,", "")   # ir.check wants sorted edges
    # tile_dense=false: the permuted 16-row blocks, unpriced (priced, this small
    # group would be stored DENSE with no permutation to replay)
    pipeline = pipeline.replace("detect-block-sparsity", "detect-block-sparsity{tile_dense=false}")
    model = _input_child_model(0)
    cold = passes.compile_model(model, cache=tmp_path, pipeline=pipeline)
    assert cold.model.groups[1].sum.pattern == pcir.BLOCK_SPARSE
    moved = ir.tensor_table(cold.model)["in"]
    original = ir.tensor_table(model)["in"]
    assert not np.array_equal(moved, original)                   # rows were permuted
    np.testing.assert_array_equal(np.sort(moved, 0), np.sort(original, 0))
    # same structure (same edges in the same stored order), new values everywhere
    other = _input_child_model(0)
    rng = np.random.default_rng(5)
    table = ir.tensor_table(other)
    new_values = {"in": rng.random((64, 3)) + 0.1}
    new_values["in"] /= new_values["in"].sum(1, keepdims=True)
    e = table["s.e"]
    w = rng.random(len(e)) + 0.1
    new_values["s.w"] = w / np.bincount(e[:, 0], weights=w)[e[:, 0]]
    for t in other.tensors:
        if t.name in new_values:
            t.CopyFrom(ir.from_numpy(new_values[t.name], t.name))
    hot = passes.compile_model(other, cache=tmp_path, pipeline=pipeline)
    assert hot.cache_hit
    assert hot.model == passes.compile_model(other, pipeline=pipeline).model
    x = rng.integers(0, 3, (8, 1))
    np.testing.assert_allclose(layout_log_prob(hot.model, hot.layout, x),
                               reference_log_prob(other, x), atol=1e-10)
