"""The persistent small-batch forward (backends/triton/persistent*.py): one
launch whose programs claim work items and wait for their inputs inside the
kernel. Log-likelihoods and marginals must equal the torch backend (1e-5)
on an HCLT and a PD over nltcs and on circuits with shared children, mixed
product arities and an unfoldable product, at batch 1, 3 and B_MAX; the
counters must serve two calls in a row without a reset; the item tables
must be ordered by level. Tiny circuits: the interpreter runs them in CI.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import pccompiler as pc
from pccompiler import passes
from pccompiler.backends.triton import persistent
from pccompiler.backends.triton.persistent_kernel import PersistentForward
from pccompiler.data.debd import load_debd
from pccompiler.errors import BackendError, DataError, UnsupportedError
from tests.triton.test_fuse_products import _hclt, _pd, _shared


def _wide_product():
    """A product of 9 children (over persistent.MAX_ARITY: a product item)
    beside a folded product of a sum (over a folded product of 8 children:
    every grand-slot vector of the kernel) and an input, both under one
    sum, plus a product of a sum and an input read by the root."""
    leaves = [pc.inputs(v, 3, pc.Categorical(num_cats=3), seed=v) for v in range(10)]
    wide = pc.multiply(*leaves[:9])
    narrow = pc.multiply(pc.summate(pc.multiply(*leaves[:8]), num_nodes=3, seed=20), leaves[8])
    s = pc.summate(wide, narrow, num_nodes=3, seed=21)
    top = pc.multiply(s, leaves[9])
    model = pc.lower(pc.summate(top, num_nodes=1, seed=22))
    return model, np.random.default_rng(4).integers(0, 3, (16, 10)), {}


CASES = {"hclt_nltcs": _hclt, "pd_nltcs": _pd, "shared": _shared, "wide_product": _wide_product}


def _pair(case: str, device):
    model, data, passes_opts = {**CASES, **KNOB_CASES}[case]()
    ref = pc.compile(model, backend="torch", device="cpu", pass_options=passes_opts)
    cc = pc.compile(model, backend="triton", device=str(device), pass_options=passes_opts,
                    precision="ieee")
    return ref, cc, data


def _missing(shape, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).random(shape) < 0.3


@pytest.mark.parametrize("case", sorted(CASES))
def test_equals_torch_at_batch_1_3_and_b_max(case, device):
    ref, cc, data = _pair(case, device)
    for batch in (1, 3, persistent.B_MAX):
        x = np.resize(data, (batch, data.shape[1]))
        miss = np.random.default_rng(batch).random(x.shape) < 0.3
        q = cc.graphed_query(batch, persistent="on")
        assert q.persistent is not None
        for m in (None, miss):
            got = q(x, m).clone()
            want = ref.log_prob(x, m)
            torch.testing.assert_close(got.double().cpu(), want.double(), rtol=1e-5, atol=1e-5)


def test_two_calls_in_a_row_reuse_the_counters(device):
    ref, cc, data = _pair("hclt_nltcs", device)
    q = cc.graphed_query(3, persistent="on")
    run = q.persistent
    x1, x2 = data[:3], data[5:8]
    m = np.random.default_rng(0).random(x1.shape) < 0.3
    first = q(x1, m).clone()
    other = q(x2).clone()
    again = q(x1, m).clone()
    torch.testing.assert_close(first, again, rtol=0, atol=0)
    torch.testing.assert_close(other.double().cpu(), ref.log_prob(x2).double(), rtol=1e-5,
                               atol=1e-5)
    # three launches (a fourth on a GPU: the warm-up before the graph
    # capture): n_items + grid tickets each, every level counted each time
    launches = 3 + int(q.graphed)
    ctr = run.counters.cpu().numpy()
    assert ctr[0] == launches * (run.tables.n_items + run.grid)
    np.testing.assert_array_equal(ctr[1:-1], launches * run.tables.level_counts)
    assert ctr[-1] == 0                 # no wait gave up


def test_a_wait_that_cannot_end_gives_up_with_an_error(device, monkeypatch):
    """A broken table (an item waiting for more items than its level below
    has) must not hang the GPU: the wait gives up after SPIN_LIMIT polls,
    marks the launch aborted (later waits skip) and the bad-entry check
    raises; the next launch of the same counters runs normally again."""
    ref, cc, data = _pair("hclt_nltcs", device)
    monkeypatch.setattr(persistent, "SPIN_LIMIT", 3)
    run = PersistentForward(cc.engine, grid=2)
    items = run.tables.items
    good = items[:, persistent.WAIT_N].clone()
    items[items[:, persistent.LEVEL] > 0, persistent.WAIT_N] = 10 ** 6
    x = torch.as_tensor(data[:2]).to(device)
    cc.engine.bad_entry.fill_(cc.engine.NO_BAD_ENTRY)
    run.run(run.new_values(2), x, None)
    assert int(run.counters[-1]) == 1           # launch (epoch) 0 aborted
    with pytest.raises(BackendError, match="gave up waiting"):
        cc.engine.take_bad_entry()
    items[:, persistent.WAIT_N] = good
    monkeypatch.undo()                          # real waits need more than 3 polls on a GPU
    values = run.new_values(2)
    run.run(values, x, None)
    assert cc.engine.take_bad_entry() is None
    torch.testing.assert_close(values[run.tables.root_slot].double().cpu(),
                               ref.log_prob(data[:2]).double(), rtol=1e-5, atol=1e-5)


def test_replays_agree_bit_for_bit(device):
    """Many replays of one input on many programs (one per SM on a GPU,
    one-tile items: the most waits) give the same bits every time and the
    torch backend's values: a missing wait or a stale read would show as a
    replay that differs."""
    ref, cc, data = _pair("hclt_k64", device)
    x, miss = data[:8], _missing(data[:8].shape, 7)
    run = PersistentForward(cc.engine, spread=1)
    values = run.new_values(8)
    xt, mt = torch.as_tensor(x).to(device), torch.as_tensor(miss).to(device)
    run.run(values, xt, mt)
    first = values[run.tables.root_slot].clone()
    torch.testing.assert_close(first.double().cpu(), ref.log_prob(x, miss).double(), rtol=1e-5,
                               atol=1e-5)
    repeats = 300 if values.is_cuda else 2
    outs = torch.empty(repeats, 8, device=values.device)
    for i in range(repeats):
        values[2:] = float("nan")
        run.run(values, xt, mt)
        outs[i] = values[run.tables.root_slot]
    assert torch.equal(outs, first.expand_as(outs))


def _hclt_k64():
    """Sum blocks of 64 rows over 64 children: several 16-row tiles per
    block and more children than a 16-child chunk."""
    data = load_debd("nltcs", "train")[:300, :6].astype(np.int64)
    return pc.lower(pc.hclt(data, num_latents=64, num_cats=2, seed=1)), data[:24], {}


KNOB_CASES = {"hclt_k64": _hclt_k64}    # bigger blocks: the knob tests only


@pytest.mark.parametrize("knobs", [(16, 4, 16, 3, 1, True), (16, 4, 128, 2, 1, True),
                                   (32, 256, 128, 7, 132, False)],
                         ids=["tile_runs_online_lse", "tile_runs_one_chunk",
                              "one_chunk_volatile_poll"])
def test_grid_larger_than_one_and_knobs(knobs, device):
    """Programs beyond the first (under the interpreter each takes one
    failing ticket), runs of several row tiles per item (spread 1), child
    lists longer than a chunk (the online log-sum-exp) and both wait styles
    give the torch backend's values."""
    rows, wide, chunk, grid, spread, poll = knobs
    ref, cc, data = _pair("hclt_k64", device)
    x, miss = data[:5], _missing(data[:5].shape, 1)
    want = ref.log_prob(x, miss).double()
    run = PersistentForward(cc.engine, rows=rows, wide=wide, chunk=chunk, grid=grid,
                            spread=spread, poll_atomic=poll)
    assert run.grid == grid > 1
    sums = run.tables.items[run.tables.items[:, persistent.KIND] == persistent.SUM]
    if spread == 1:
        assert (sums[:, persistent.NROWS] > rows).any()
        assert (sums[:, persistent.ARG_C] > chunk).any() == (chunk < 64)
    values = run.new_values(5)
    values[2:] = float("nan")           # a row the forward needs and skips shows
    run.run(values, torch.as_tensor(x).to(device), torch.as_tensor(miss).to(device))
    torch.testing.assert_close(values[run.tables.root_slot].double().cpu(), want,
                               rtol=1e-5, atol=1e-5)
    assert int(run.counters[0]) == run.tables.n_items + grid


def test_log_prob_on_runs_chunks_of_b_max_and_names_bad_rows(device):
    model, data, _ = _hclt()
    ref = pc.compile(model, backend="torch", device="cpu")
    cc = pc.compile(model, backend="triton", device=str(device), precision="ieee",
                    persistent="on")
    x = np.resize(data, (40, data.shape[1]))
    miss = np.random.default_rng(3).random(x.shape) < 0.3
    torch.testing.assert_close(cc.log_prob(x, miss).double().cpu(),
                               ref.log_prob(x, miss).double(), rtol=1e-5, atol=1e-5)
    bad = x.copy()
    bad[35, 2] = 5                      # a row of the third chunk
    with pytest.raises(DataError, match="row 35, column 2"):
        cc.log_prob(bad)


def test_tables_are_ordered_by_level(device):
    model, _, _ = _wide_product()
    layout = passes.compile_model(model, block_limit=128).layout
    t = persistent.build_tables(layout, rows=16, wide=4)
    items = t.items.numpy()
    level = items[:, persistent.LEVEL]
    assert (np.diff(level) >= 0).all() and level[0] == 0
    np.testing.assert_array_equal(np.bincount(level), t.level_counts)
    wait = items[:, persistent.WAIT_N]
    np.testing.assert_array_equal(wait[level > 0], t.level_counts[level[level > 0] - 1])
    assert (wait[level == 0] == 0).all()
    kinds = np.bincount(items[:, persistent.KIND], minlength=3)
    assert kinds[persistent.PRODUCT] >= 1          # the 9-child product
    assert t.arity == persistent.MAX_ARITY          # the 8-child one, folded
    _check_reads_come_from_lower_levels(t, layout.num_slots)
    assert items[items[:, persistent.KIND] == persistent.INPUT, persistent.LEVEL].max() == 0
    # the HCLT folds every product: sums and inputs only
    hl = passes.compile_model(_hclt()[0], block_limit=128).layout
    ht = persistent.build_tables(hl)
    hk = np.bincount(ht.items[:, persistent.KIND].numpy(), minlength=3)
    assert hk[persistent.PRODUCT] == 0 and hk[persistent.SUM] > 0
    _check_reads_come_from_lower_levels(ht, hl.num_slots)


def _check_reads_come_from_lower_levels(t, num_slots: int) -> None:
    """Every row an item reads is written by an item of a lower level (the
    interpreter runs items in order, so only this check catches a level
    that is too low); rows 0 / 1 are constants."""
    items, table = t.items.numpy(), t.table.numpy()
    writer = np.full(num_slots, -1)
    writer[:2] = -2
    for it in items:
        writer[it[persistent.SLOT]:it[persistent.SLOT] + it[persistent.NROWS]] = \
            it[persistent.LEVEL]
    for it in items:
        kind, off = it[persistent.KIND], it[persistent.OFF]
        if kind == persistent.PRODUCT:
            k = it[persistent.ARG_B]
            reads = table[off:off + it[persistent.NROWS] * k]
        elif kind == persistent.SUM:
            reads = table[off:off + it[persistent.ARG_C] * t.arity]
        else:
            continue
        lv = writer[reads]
        assert (lv != -1).all(), "an item reads a row no item writes"
        assert (lv < it[persistent.LEVEL]).all()


def test_auto_uses_it_for_small_batches_only(device):
    _, cc, _ = _pair("hclt_nltcs", device)
    assert cc.engine.persistent == "off"                   # the default
    assert cc.graphed_query(persistent.B_MAX).persistent is None
    assert cc.graphed_query(persistent.B_MAX, persistent="auto").persistent is not None
    assert cc.graphed_query(persistent.B_MAX + 1, persistent="auto").persistent is None
    assert cc.graphed_query(2, persistent="off").persistent is None


@pytest.mark.parametrize("batch", [1, 8])
def test_bad_category_is_reported(device, batch):
    """An observed out-of-range category is reported with its row and
    column; the same entry marked missing is never read (as the layer path
    and the torch backend do)."""
    _, cc, data = _pair("hclt_nltcs", device)
    q = cc.graphed_query(batch, persistent="on", dtype=torch.uint8)
    x = np.resize(data, (batch, data.shape[1])).astype(np.uint8)
    x[0, 2] = 7
    with pytest.raises(DataError, match="row 0, column 2"):
        q(x)
    miss = np.zeros(x.shape, dtype=bool)
    miss[0, 2] = True
    want = cc.graphed_query(batch, persistent="off", dtype=torch.uint8)(x, miss).clone()
    torch.testing.assert_close(q(x, miss).clone(), want, rtol=1e-5, atol=1e-5)


def test_bad_values_are_refused(device):
    model, data, _ = _hclt()
    with pytest.raises(BackendError, match="persistent must be one of"):
        pc.compile(model, backend="triton", device=str(device), persistent="sometimes")
    cc = pc.compile(model, backend="triton", device=str(device))
    with pytest.raises(BackendError, match="persistent must be one of"):
        cc.graphed_query(2, persistent=3)
    with pytest.raises(BackendError, match="over the persistent forward's 16 rows"):
        cc.graphed_query(persistent.B_MAX + 1, persistent="on")
    with pytest.raises(BackendError, match="power of two >= 16"):
        PersistentForward(cc.engine, rows=24)
    with pytest.raises(BackendError, match="chunk"):
        PersistentForward(cc.engine, chunk=8)


def test_bernoulli_and_gaussian_leaves(device):
    g = pc.inputs(0, 2, pc.Gaussian(), seed=1)
    b = pc.inputs(1, 2, pc.Bernoulli(), seed=2)
    c = pc.inputs(2, 2, pc.Categorical(num_cats=3), seed=3)
    model = pc.lower(pc.summate(pc.multiply(g, b, c), num_nodes=1, seed=4))
    ref = pc.compile(model, backend="torch", device="cpu")
    cc = pc.compile(model, backend="triton", device=str(device), precision="ieee")
    rng = np.random.default_rng(5)
    x = np.stack([rng.normal(size=6), rng.integers(0, 2, 6), rng.integers(0, 3, 6)], axis=1)
    miss = rng.random(x.shape) < 0.3
    q = cc.graphed_query(6, persistent="on")
    torch.testing.assert_close(q(x, miss).clone().double().cpu(),
                               ref.log_prob(x, miss).double(), rtol=1e-5, atol=1e-5)


def test_unknown_leaves_fall_back_or_refuse(device, monkeypatch):
    model, _, _ = _hclt()
    layout = passes.compile_model(model, block_limit=128).layout
    assert persistent.unsupported_reason(layout) is None
    odd = type(layout)()
    odd.CopyFrom(layout)
    odd.layers[0].input_partitions[0].dist = 9      # no input item reads it
    assert "distribution 9" in persistent.unsupported_reason(odd)
    with pytest.raises(BackendError, match="distribution 9"):
        persistent.build_tables(odd)
    cc = pc.compile(model, backend="triton", device=str(device))
    monkeypatch.setattr(cc.engine, "persistent_reason", lambda: "a leaf it cannot read")
    assert cc.graphed_query(2, persistent="auto").persistent is None   # the layer path
    with pytest.raises(UnsupportedError, match="a leaf it cannot read"):
        cc.graphed_query(2, persistent="on")
