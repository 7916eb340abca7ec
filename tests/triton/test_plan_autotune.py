"""The plan derived from a real Layout, and autotuning's record in the Layout.

Plan facts (ties, unique product children, EM owners) are checked against
a direct count on the layout arrays; autotune (with a deterministic fake
timer) must write its choice into the Layout's kernel_options, and the
kernels must give the same values under the tuned tiles.
"""

from __future__ import annotations

import numpy as np
import torch

import pccompiler as pc


def _layout(build):
    from pccompiler.passes.manager import compile_model
    return compile_model(pc.lower(build()))


def test_plan_of_tied_hmm(device):
    from pccompiler.backends.triton.plan import build_plan
    result = _layout(lambda: pc.hmm(seq_length=4, num_latents=16, num_emits=5))
    plan = build_plan(result.layout, device)
    sums = [p for lp in plan.layers for p in lp.sums]
    inputs = [p for lp in plan.layers for p in lp.inputs]
    # homogeneous HMM: transition blocks share parameters -> atomic flows,
    # and each shared parameter range is updated by exactly one owner block.
    starts = np.concatenate([p.block_param_starts.cpu().numpy() for p in sums])
    owners = np.concatenate([p.block_param_starts.cpu().numpy()[p.owner_blocks.cpu().numpy()]
                             for p in sums])
    assert sorted(owners.tolist()) == sorted(set(starts.tolist()))
    assert any(p.atomic for p in sums)
    rows = np.concatenate([p.node_param_starts.cpu().numpy() for p in inputs])
    owner_rows = np.concatenate([p.owner_param_starts.cpu().numpy() for p in inputs])
    assert sorted(owner_rows.tolist()) == sorted(set(rows.tolist()))
    assert all(p.atomic for p in inputs) == (len(set(rows.tolist())) < rows.size)


def test_autotune_records_options_and_keeps_results(device):
    from pccompiler.backends.triton import TritonBackend
    from pccompiler.backends.triton.autotune import BWD_SPACE, FWD_SPACE, autotune
    data = np.random.default_rng(0).integers(0, 2, size=(50, 6))
    result = _layout(lambda: pc.hclt(data, num_latents=16, num_cats=2))
    cc = TritonBackend().compile(result.model, result.layout,
                                 {"device": str(device), "precision": "ieee"})
    x, _ = cc.prepare(data[:5])
    before = cc.engine.forward(x).clone()
    calls = iter(range(10**6))

    def fake_timer(fn):           # run every config once; the last one "wins"
        fn()
        return -float(next(calls))

    passes_keys = [set(sp.kernel_options) for layer in result.layout.layers
                   for sp in layer.sum_partitions]
    autotune(cc.engine, batch=5, timer=fake_timer)
    after_keys = [set(sp.kernel_options) for layer in result.layout.layers
                  for sp in layer.sum_partitions]
    assert all(a >= b for a, b in zip(after_keys, passes_keys))   # the passes' notes stay
    last_fwd = {k: str(v[-1]) for k, v in FWD_SPACE.items()}
    last_bwd = {k: str(v[-1]) for k, v in BWD_SPACE.items()}
    tuned = 0
    for layer in result.layout.layers:
        for sp in layer.sum_partitions:
            opts = dict(sp.kernel_options)
            if sp.block_size >= 16:
                assert {k: opts[k] for k in last_fwd} == last_fwd
                assert "pflow.BLOCK_B" in opts
                tuned += 1
            else:                     # the root (block 1) keeps the defaults
                assert not set(opts) & set(last_fwd)
        for bp in layer.sum_backward_partitions:
            if bp.parent_block_size >= 16:
                opts = dict(bp.kernel_options)
                assert {k: opts[k] for k in last_bwd} == last_bwd
    assert tuned >= 1
    after = cc.engine.forward(x)
    torch.testing.assert_close(after, before, rtol=1e-5, atol=1e-5)


def test_first_writers_store_and_the_rest_is_zeroed(device):
    """Two product partitions of one layer share child slot 5: the first may
    store, the second must add; rows nobody stores into are zeroed."""
    from pccompiler.backends.triton import launch
    from pccompiler.backends.triton.plan import (
        LayerPlan, TritonPlan, mark_first_writers, product_part)
    a = product_part(8, np.array([[2, 3], [4, 5]]), device)
    b = product_part(10, np.array([[5, 6], [7, 1]]), device)
    plan = TritonPlan(num_slots=12, root_slot=11,
                      layers=[LayerPlan(kind=2, products=[a, b])])
    mark_first_writers(plan, device)
    assert a.store and not b.store
    assert sorted(plan.zero_rows.tolist()) == [0, 1, 6, 7, 8, 9, 10]
    assert plan.zero_all          # 7 of 12 rows: one memset is cheaper
    rng = np.random.default_rng(8)
    flows = torch.full((12, 3), float("nan"), device=device)   # uninitialised buffer
    flows.index_fill_(0, plan.zero_rows, 0.0)
    parent = torch.tensor(rng.random((4, 3)), dtype=torch.float32, device=device)
    flows[8:12] = parent
    launch.product_backward(a, flows)
    launch.product_backward(b, flows)
    want = np.zeros((12, 3))
    want[8:12] = parent.cpu().numpy()
    for slot0, cs in ((8, [[2, 3], [4, 5]]), (10, [[5, 6], [7, 1]])):
        for i, row in enumerate(cs):
            for c in row:
                if c != 1:
                    want[c] += want[slot0 + i]
    np.testing.assert_allclose(flows.cpu().numpy(), want, rtol=1e-6)


def test_adjacent_product_partitions_merge_with_padding():
    """A layer's product partitions over adjacent slots become one launch,
    padded with slot 1; separated ones stay apart."""
    from pccompiler.backends.triton.plan import merge_product_runs
    a = np.array([[2, 3], [4, 5]])
    b = np.array([[6, 7, 8]])
    c = np.array([[9, 10]])
    runs = merge_product_runs([(20, b), (18, a), (40, c)])
    assert [r[0] for r in runs] == [18, 40]
    np.testing.assert_array_equal(runs[0][1], [[2, 3, 1], [4, 5, 1], [6, 7, 8]])
    np.testing.assert_array_equal(runs[1][1], c)
