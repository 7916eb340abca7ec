"""Sum-layer kernels vs float64 numpy references (tests/triton/refs.py).

Covers block sizes 1, 2, 16, 32 (broadcast and tensor-core variants), child
block sizes 1..16, fan-in 1, fan-in that is not a multiple of the K tile,
padded children (slot 0), -inf values, and batches 1, 3, 17, 64, 130, 200
(masked tails; batch 64 at a root-like block size 1 broke on an H100).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pccompiler.backends.triton import launch
from pccompiler.backends.triton.plan import sum_backward_part, sum_part
from tests.triton.refs import SumSpec, random_values, sum_em

# (parent block size, child block size, #parent blocks, #child blocks, batch, max cblocks/parent)
CASES = [
    (1, 1, 3, 1, 1, None),      # fan-in 1, sparse
    (1, 2, 2, 5, 3, None),      # root-like: bs 1, fan-in not a multiple of tiles
    (2, 1, 3, 7, 17, 4),        # tiny blocks, batch tail
    (16, 16, 2, 3, 17, None),   # tensor cores both ways
    (32, 16, 2, 2, 3, None),    # bs 32, child blocks 16
    (16, 4, 2, 5, 1, 3),        # dot forward, broadcast backward (cbs < 16)
    (3, 16, 2, 2, 5, None),     # block size not a power of two
    (1, 16, 1, 1, 64, None),    # the root over one block of 16 (TILE_I 1; wrong on an H100 once)
    (1, 1, 2, 3, 200, None),    # fan-in 1, two batch tiles
    (2, 16, 2, 3, 130, 2),      # broadcast both ways, batch 130
    (1, 16, 1, 64, 5, None),    # a root over 1,024 children: split-K forward
]


def _setup(case, seed, pad_children=0, full=False):
    bs, cbs, nb, ncb, batch, cap = case
    rng = np.random.default_rng(seed)
    child0 = 2
    parent0 = child0 + ncb * cbs
    spec = SumSpec(rng, parent0, nb, bs, child0, ncb, cbs, param_start=32,
                   max_cblocks_per_parent=cap, pad_children=pad_children, full=full)
    num_slots = parent0 + nb * bs
    params = np.zeros(spec.param_end + 8)
    spec.random_weights(rng, params)
    values = random_values(rng, num_slots, batch)
    return rng, spec, params, values


def _part(spec, device, atomic=False):
    return sum_part(spec.bs, spec.block_slots, spec.block_num_children, spec.child_slots,
                    spec.block_param_starts, device, atomic=atomic)


def _t(a, device):
    return torch.tensor(a, dtype=torch.float32, device=device)


def _close(got: torch.Tensor, want: np.ndarray, rtol=2e-5, atol=2e-5):
    got = got.detach().cpu().double().numpy()
    assert np.array_equal(np.isneginf(got), np.isneginf(want)), "-inf pattern differs"
    fin = np.isfinite(want)
    np.testing.assert_allclose(got[fin], want[fin], rtol=rtol, atol=atol)


def test_root_case_takes_the_split_k_path():
    from pccompiler.backends.triton.launch import split_k
    assert split_k(1, 1024, 32) == 4 and split_k(300, 1024, 32) == 1 and split_k(1, 64, 32) == 1


@pytest.mark.parametrize("case", CASES)
def test_sum_forward(case, device):
    _, spec, params, values = _setup(case, 1, pad_children=3)
    vt = _t(values, device)
    launch.sum_forward_launch(_part(spec, device), vt, _t(params, device), precision="ieee")
    spec.forward(values, params)
    _close(vt, values)


@pytest.mark.parametrize("case", CASES[:4])
def test_sum_forward_max(case, device):
    _, spec, params, values = _setup(case, 2)
    vt = _t(values, device)
    launch.sum_forward_launch(_part(spec, device), vt, _t(params, device), mode_max=True)
    spec.forward_max(values, params)
    _close(vt, values)


def test_sum_forward_tf32_close(device):
    """tf32 dots (the default) agree with fp32 to ~1e-3 in log space."""
    _, spec, params, values = _setup((32, 16, 2, 3, 17, None), 3)
    vt = _t(values, device)
    launch.sum_forward_launch(_part(spec, device), vt, _t(params, device), precision="tf32")
    spec.forward(values, params)
    _close(vt, values, rtol=5e-3, atol=5e-3)


def test_all_children_impossible_gives_neg_inf(device):
    _, spec, params, values = _setup((16, 16, 1, 2, 3, None), 4)
    values[2:2 + 32] = -np.inf
    vt = _t(values, device)
    launch.sum_forward_launch(_part(spec, device), vt, _t(params, device), precision="ieee")
    assert torch.isneginf(vt[spec.block_slots[0]:spec.block_slots[0] + 16]).all()


@pytest.mark.parametrize("atomic", [False, True])
@pytest.mark.parametrize("case", CASES)
def test_sum_backward_flows_and_param_flows(case, atomic, device):
    rng, spec, params, values = _setup(case, 5, pad_children=2)
    spec.forward(values, params)               # consistent parent values
    flows = np.zeros_like(values)
    parents = spec.block_slots[:, None] + np.arange(spec.bs)[None, :]
    flows[parents.reshape(-1)] = rng.random((parents.size, values.shape[1]))
    flows[parents.reshape(-1)[::3]] = 0.0      # some zero flows
    flows[2:spec.block_slots[0]] = 0.25 * rng.random((spec.block_slots[0] - 2, values.shape[1]))
    pflows = 0.1 * rng.random(params.size)     # accumulation onto existing flows
    vt, ft, pt = _t(values, device), _t(flows, device), _t(params, device)
    pft = _t(pflows, device)
    bpart = sum_backward_part(spec.cbs, spec.bs, spec.cblock_slots, spec.cblock_num_parents,
                              spec.parent_slots, spec.parent_param_starts, device)
    launch.sum_backward_launch(bpart, vt, ft, pt, precision="ieee")
    launch.sum_param_flows_launch(_part(spec, device, atomic), vt, ft, pt, pft, precision="ieee")
    spec.backward(values, flows, params, pflows)
    np.testing.assert_allclose(ft.cpu().double().numpy(), flows, rtol=2e-5, atol=1e-6)
    np.testing.assert_allclose(pft.cpu().double().numpy(), pflows, rtol=2e-5, atol=1e-5)


@pytest.mark.parametrize("case", CASES[2:5])
def test_sum_em(case, device):
    rng, spec, params, _ = _setup(case, 6)
    pflows = rng.random(params.size) * 3
    first = int(spec.block_param_starts[0])
    pflows[first:first + spec.bs * int(spec.block_num_children[0])] = 0.0
    for step, pc in ((1.0, 0.0), (0.3, 0.1)):
        pt = _t(params, device)
        launch.sum_em_launch(_part(spec, device), pt, _t(pflows, device), step, pc)
        np.testing.assert_allclose(pt.cpu().double().numpy(), sum_em(params, pflows, spec, step, pc),
                                   rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("atomic", [False, True])
def test_param_flows_split_over_the_batch(atomic, device):
    """One parent block and a long batch: the parameter flow kernel splits
    the batch across programs (atomic adds) and still equals the reference."""
    rng, spec, params, values = _setup((16, 16, 1, 2, 300, None), 8)
    spec.forward(values, params)
    flows = np.zeros_like(values)
    parents = spec.block_slots[:, None] + np.arange(spec.bs)[None, :]
    flows[parents.reshape(-1)] = rng.random((parents.size, values.shape[1]))
    pflows = np.zeros(params.size)
    vt, ft, pt, pft = (_t(a, device) for a in (values, flows, params, pflows))
    launch.sum_param_flows_launch(_part(spec, device, atomic), vt, ft, pt, pft, precision="ieee")
    nodes = flows.copy()
    spec.backward(values, nodes, params, pflows)
    np.testing.assert_allclose(pft.cpu().double().numpy(), pflows, rtol=2e-5, atol=1e-5)


def _check_ratio_backward(spec, part, bpart, values, flows, params, pflows, device):
    """Training's backward: log_ratio_launch turns the parents' flows into
    log(flow) - value in place, the node-flow and parameter-flow kernels read
    those (ratio=True); the children's flows and the parameter flows (added
    onto `pflows`) must equal the reference's. Returns the flows tensor."""
    vt, ft, pt, pft = (_t(a, device) for a in (values, flows, params, pflows))
    launch.log_ratio_launch(part, vt, ft)
    launch.sum_backward_launch(bpart, vt, ft, pt, precision="ieee", ratio=True)
    launch.sum_param_flows_launch(part, vt, ft, pt, pft, precision="ieee", ratio=True)
    want, want_pflows = flows.copy(), pflows.copy()
    spec.backward(values, want, params, want_pflows)
    parents = (spec.block_slots[:, None] + np.arange(spec.bs)[None, :]).reshape(-1)
    children = np.setdiff1d(np.arange(values.shape[0]), parents)
    np.testing.assert_allclose(ft.cpu().double().numpy()[children], want[children],
                               rtol=2e-5, atol=1e-6)
    np.testing.assert_allclose(pft.cpu().double().numpy(), want_pflows, rtol=2e-5, atol=1e-5)
    return ft


@pytest.mark.parametrize("case", [CASES[3], CASES[4], CASES[6], CASES[9]])
def test_backward_from_in_place_log_ratios(case, device):
    """`_check_ratio_backward` on random partitions, and the parents' rows
    then hold log(flow) - value (-inf where the flow is 0)."""
    rng, spec, params, values = _setup(case, 9, pad_children=2)
    spec.forward(values, params)
    flows = np.zeros_like(values)
    parents = spec.block_slots[:, None] + np.arange(spec.bs)[None, :]
    flows[parents.reshape(-1)] = rng.random((parents.size, values.shape[1]))
    flows[parents.reshape(-1)[::3]] = 0.0
    bpart = sum_backward_part(spec.cbs, spec.bs, spec.cblock_slots, spec.cblock_num_parents,
                              spec.parent_slots, spec.parent_param_starts, device)
    ft = _check_ratio_backward(spec, _part(spec, device), bpart, values, flows, params,
                               np.zeros(params.size), device)
    t = ft.cpu().double().numpy()[parents.reshape(-1)]
    f, y = flows[parents.reshape(-1)], values[parents.reshape(-1)]
    with np.errstate(divide="ignore"):
        np.testing.assert_allclose(t, np.where(f > 0, np.log(f) - y, -np.inf), rtol=1e-5,
                                   atol=1e-5)


# Tiles launch.choose_tiles picks for big or few-block layers (HCLT 512, HMM
# steps), forced here onto a small layer: the kernels mask every tile edge.
BIG_TILES = [
    {"pflow.TILE_M": "128", "pflow.TILE_K": "128", "pflow.BLOCK_B": "32",
     "pflow.num_warps": "8"},
    {"pflow.TILE_M": "32", "pflow.TILE_K": "64", "pflow.BLOCK_B": "16"},
    {"TILE_J": "128", "TILE_I": "64", "BLOCK_B": "32", "TILE_M": "128", "TILE_K": "64",
     "num_warps": "8"},
]


@pytest.mark.parametrize("options", BIG_TILES)
def test_big_and_narrow_tiles_match_the_reference(options, device):
    rng, spec, params, values = _setup((32, 16, 2, 3, 37, None), 10)
    want_values = values.copy()
    spec.forward(want_values, params)
    vt, pt = _t(values, device), _t(params, device)
    part = _part(spec, device)
    part.options = dict(options)
    launch.sum_forward_launch(part, vt, pt, precision="ieee")
    _close(vt, want_values)
    flows = np.zeros_like(want_values)
    parents = spec.block_slots[:, None] + np.arange(spec.bs)[None, :]
    flows[parents.reshape(-1)] = rng.random((parents.size, values.shape[1]))
    pflows = np.zeros(params.size)
    vt, ft, pft = _t(want_values, device), _t(flows, device), _t(pflows, device)
    bpart = sum_backward_part(spec.cbs, spec.bs, spec.cblock_slots, spec.cblock_num_parents,
                              spec.parent_slots, spec.parent_param_starts, device,
                              {k: v for k, v in options.items() if not k.startswith("pflow.")})
    launch.sum_backward_launch(bpart, vt, ft, pt, precision="ieee")
    launch.sum_param_flows_launch(part, vt, ft, pt, pft, precision="ieee")
    spec.backward(want_values, flows, params, pflows)
    np.testing.assert_allclose(ft.cpu().double().numpy(), flows, rtol=2e-5, atol=1e-6)
    np.testing.assert_allclose(pft.cpu().double().numpy(), pflows, rtol=2e-5, atol=1e-5)


def test_tile_rules_follow_the_sweep():
    """The shapes bench/results/tile_sweep-h100-2026-11-24.md measured get
    the tiles that won there (HCLT 512 layer, HMM steps of 1024 and 256)."""
    from pccompiler.backends.triton.launch import choose_tiles
    big = choose_tiles("sum_pflow", 128, 512, 512, num_rows=128 * 300)
    assert (big["TILE_M"], big["TILE_K"], big["num_warps"]) == (128, 128, 8)
    hmm = choose_tiles("sum_pflow", 128, 1024, 512, num_rows=1024)
    assert (hmm["TILE_M"], hmm["TILE_K"], hmm["BLOCK_B"]) == (32, 64, 16)
    fwd = choose_tiles("sum_fwd", 128, 1024, 512, num_rows=1024)
    assert (fwd["TILE_M"], fwd["TILE_K"], fwd["BLOCK_B"]) == (128, 64, 32)
    small = choose_tiles("sum_bwd", 128, 2, 512, other_block_size=128, num_rows=256)
    assert (small["TILE_J"], small["TILE_I"], small["BLOCK_B"]) == (32, 64, 32)
    wide = choose_tiles("sum_bwd", 128, 4, 512, other_block_size=128, num_rows=128 * 300)
    assert (wide["TILE_J"], wide["BLOCK_B"], wide["num_warps"]) == (128, 64, 8)
    for batch in (1, 3, 17):                 # tiny batches keep tiles of at least 16
        for kind in ("sum_fwd", "sum_pflow", "sum_bwd"):
            cfg = choose_tiles(kind, 1, 1, batch, other_block_size=1, num_rows=1)
            assert min(v for k, v in cfg.items() if k != "num_warps") >= 16


def test_shared_run_finds_aligned_blocks_with_equal_children():
    from pccompiler.backends.triton.plan import shared_run
    lists = np.array([[5, 6], [5, 6], [5, 6], [5, 6], [7, 8], [7, 8], [7, 8], [7, 8]])
    counts = np.full(8, 2)
    assert shared_run(lists, counts, 16) == 4
    assert shared_run(lists, counts, 64) == 2          # runs stop at 128 rows
    assert shared_run(lists, counts, 128) == 1
    assert shared_run(lists[1:], counts[1:], 16) == 1  # 7 blocks: no aligned pairs
    shifted = np.roll(lists, 1, axis=0)                # [7 8] [5 6] ...: pairs differ
    assert shared_run(shifted, counts, 16) == 1
    fewer = counts.copy()
    fewer[1] = 1                                       # same padded row, fewer children
    assert shared_run(lists, fewer, 16) == 1


# (parent block size, child block size, #parent blocks, #child blocks, batch): dense
# layers in blocks, where runs of blocks share their partners (plan.shared_run).
GROUPED = [
    (16, 16, 4, 4, 37),     # runs of 4 both ways (64 rows)
    (2, 16, 8, 2, 5),       # 8 two-row blocks (16 rows), child runs of 2
    (32, 32, 8, 2, 17),     # runs of 4 parent blocks (128 rows), child runs of 2
]


@pytest.mark.parametrize("options", [{}, {"TILE_M": "32", "TILE_J": "32",
                                          "pflow.TILE_M": "16"}])
@pytest.mark.parametrize("case", GROUPED)
def test_grouped_blocks_match_the_reference(case, options, device):
    """Forward, node flows and parameter flows with runs of blocks walked as
    one (also with row tiles narrower than a run), against the reference."""
    bs, cbs, nb, ncb, batch = case
    rng, spec, params, values = _setup((bs, cbs, nb, ncb, batch, None), 11, pad_children=2,
                                       full=True)
    part = _part(spec, device)
    bpart = sum_backward_part(spec.cbs, spec.bs, spec.cblock_slots, spec.cblock_num_parents,
                              spec.parent_slots, spec.parent_param_starts, device)
    assert part.group == min(nb, 128 // bs) and bpart.group == min(ncb, 128 // cbs)
    part.options = {k: v for k, v in options.items() if k != "TILE_J"}
    bpart.options = {k: v for k, v in options.items() if k == "TILE_J"}
    want_values = values.copy()
    spec.forward(want_values, params)
    vt, pt = _t(values, device), _t(params, device)
    launch.sum_forward_launch(part, vt, pt, precision="ieee")
    _close(vt, want_values)
    flows = np.zeros_like(want_values)
    parents = spec.block_slots[:, None] + np.arange(spec.bs)[None, :]
    flows[parents.reshape(-1)] = rng.random((parents.size, batch))
    flows[parents.reshape(-1)[::3]] = 0.0
    _check_ratio_backward(spec, part, bpart, want_values, flows, params,
                          0.1 * rng.random(params.size), device)


def test_parent_union_tables(monkeypatch):
    from pccompiler.backends.triton import plan
    from pccompiler.backends.triton.plan import parent_union
    psl = np.array([[100, 200], [200, 0], [100, 300], [300, 0]])
    pps = np.array([[1, 2], [3, 0], [4, 5], [6, 0]])
    npar = np.array([2, 1, 2, 1])
    assert parent_union(psl, pps, npar, 16)[0] == 1       # gaps: off by default
    monkeypatch.setattr(plan, "UNIONS_WITH_GAPS", True)
    g, slots, starts, counts = parent_union(psl, pps, npar, 16)
    assert g == 4                                  # 3 parent reads instead of 6
    assert slots.tolist() == [[100, 200, 300]] * 4 and counts.tolist() == [3] * 4
    assert starts.tolist() == [[1, 2, -1], [-1, 3, -1], [4, -1, 5], [-1, -1, 6]]
    assert parent_union(psl, pps, npar, 64)[0] == 2       # 128-row cap
    assert parent_union(psl, pps, npar, 128)[0] == 1
    apart = np.array([[100, 0], [200, 0], [300, 0], [400, 0]])
    assert parent_union(apart, pps, np.ones(4, dtype=int), 16)[0] == 1   # nothing shared
    g, slots, starts, counts = parent_union(psl[:3], pps[:3], npar[:3], 16)
    assert g == 4 and counts.tolist() == [3] * 3 and starts.shape == (3, 3)   # one short run


@pytest.mark.parametrize("case", [(16, 16, 6, 8, 19, None), (32, 16, 5, 8, 3, 4), (16, 16, 4, 7, 5, None)])
def test_node_flows_over_a_parent_union_match_the_reference(case, device, monkeypatch):
    """Runs of child blocks walked over their parents' union (zero weights
    where a block lacks a parent), from true flows and from log ratios."""
    from pccompiler.backends.triton import plan
    monkeypatch.setattr(plan, "UNION_MAX_READS", 1.0)     # take the best run whatever it saves
    monkeypatch.setattr(plan, "UNIONS_WITH_GAPS", True)
    rng, spec, params, values = _setup(case, 12, pad_children=1)
    spec.forward(values, params)
    bpart = sum_backward_part(spec.cbs, spec.bs, spec.cblock_slots, spec.cblock_num_parents,
                              spec.parent_slots, spec.parent_param_starts, device)
    assert bpart.group > 1 and (bpart.parent_param_starts < 0).any()
    flows = np.zeros_like(values)
    parents = (spec.block_slots[:, None] + np.arange(spec.bs)[None, :]).reshape(-1)
    flows[parents] = rng.random((parents.size, values.shape[1]))
    flows[parents[::4]] = 0.0
    want = flows.copy()
    spec.backward(values, want, params, np.zeros(params.size))
    children = np.setdiff1d(np.arange(values.shape[0]), parents)
    for ratio in (False, True):
        vt, ft, pt = _t(values, device), _t(flows, device), _t(params, device)
        if ratio:
            launch.log_ratio_launch(_part(spec, device), vt, ft)
        launch.sum_backward_launch(bpart, vt, ft, pt, precision="ieee", ratio=ratio)
        np.testing.assert_allclose(ft.cpu().double().numpy()[children], want[children],
                                   rtol=2e-5, atol=1e-6)
