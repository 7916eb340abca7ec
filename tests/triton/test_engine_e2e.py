"""The triton Engine end to end on real structures, against the oracles.

Log-likelihoods (with and without missing values) vs the float64 reference
(`pccompiler.backends.reference`), and node flows, parameter flows, input
statistics and one EM step vs the torch backend (itself tested against the
reference). Dots run in "ieee" precision here so fp32 tolerances apply.
Skips while the passes (compile_model, packing) are not available.
"""

from __future__ import annotations


import numpy as np
import pytest
import torch

import pccompiler as pc



def _compile(model, block_limit=32):
    from pccompiler.passes.manager import compile_model
    return compile_model(model, block_limit=block_limit, backend="triton")


def _nltcs(rows: int) -> np.ndarray:
    """The first rows of nltcs (the copy shipped in the package when the
    shared data folder is absent, e.g. on the GPU machine)."""
    from pccompiler.data import load_debd
    return load_debd("nltcs", "train")[:rows].astype(np.int64)


def _circuits():
    data = _nltcs(200)
    return {
        "hclt": (lambda: pc.hclt(data, num_latents=16, num_cats=2), data[:17]),
        # blocks of 256 rows: two 128-row tiles per block, TritonBackend.block_limit
        "hclt_k256": (lambda: pc.hclt(data[:, :4], num_latents=256, num_cats=2), data[:3, :4]),
        "hclt_bern": (lambda: pc.hclt(data, num_latents=4, input_dist="bernoulli"), data[:5]),
        "pd": (lambda: pc.pd((2, 4), num_latents=4, split_intervals=2, num_cats=3),
               np.random.default_rng(0).integers(0, 3, size=(3, 8))),
        "rat_spn": (lambda: pc.rat_spn(6, num_latents=4, depth=2, num_repetitions=2, num_cats=3),
                    np.random.default_rng(1).integers(0, 3, size=(1, 6))),
        "hmm": (lambda: pc.hmm(seq_length=4, num_latents=16, num_emits=5),
                np.random.default_rng(2).integers(0, 5, size=(3, 4))),
    }


CIRCUITS = ["hclt", "hclt_k256", "hclt_bern", "pd", "rat_spn", "hmm"]


def _both(name, device):
    from pccompiler.backends.reference import log_prob
    from pccompiler.backends.torch import TorchBackend
    from pccompiler.backends.triton import TritonBackend
    build, x = _circuits()[name]
    model = pc.lower(build())
    result = _compile(model, block_limit=256 if name == "hclt_k256" else 32)
    tri = TritonBackend().compile(result.model, result.layout,
                                  {"device": str(device), "precision": "ieee"})
    tor = TorchBackend().compile(result.model, result.layout, {"device": "cpu"})
    return result.model, tri, tor, x, log_prob


@pytest.mark.parametrize("name", CIRCUITS)
def test_log_prob_matches_reference(name, device):
    model, tri, _, x, ref_log_prob = _both(name, device)
    rng = np.random.default_rng(3)
    missing = rng.random(x.shape) < 0.3
    for miss in (None, missing):
        got = tri.log_prob(x, miss).cpu().double().numpy()
        want = np.asarray(ref_log_prob(model, x, miss))
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", CIRCUITS)
def test_flows_and_em_match_torch(name, device):
    _, tri, tor, x, _ = _both(name, device)
    missing = np.random.default_rng(4).random(x.shape) < 0.2
    np.testing.assert_allclose(tri.flows(x, missing).cpu().numpy(),
                               tor.flows(x, missing).cpu().numpy(), rtol=1e-4, atol=1e-5)
    for cc in (tri, tor):
        cc.zero_flows()
        cc.accumulate_flows(x, missing)
    te, oe = tri.engine, tor.engine
    for attr in ("sum_param_flows", "input_param_flows", "input_node_flows"):
        np.testing.assert_allclose(getattr(te, attr).cpu().numpy(),
                                   getattr(oe, attr).cpu().numpy(), rtol=1e-4, atol=1e-5,
                                   err_msg=attr)
    for cc in (tri, tor):
        cc.em_update(step_size=0.5, pseudocount=0.1)
    np.testing.assert_allclose(te.sum_params.detach().cpu().numpy(),
                               oe.sum_params.detach().cpu().numpy(), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(te.input_params.detach().cpu().numpy(),
                               oe.input_params.detach().cpu().numpy(), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("name", ["hclt", "pd"])
def test_max_pass_matches_torch(name, device):
    _, tri, tor, x, _ = _both(name, device)
    missing = np.random.default_rng(5).random(x.shape) < 0.4
    xt, mt = tri.prepare(x, missing)
    got = tri.engine.forward(xt, mt, mode="max")
    want = tor.engine.forward(xt.cpu(), mt.cpu(), mode="max")
    np.testing.assert_allclose(got.cpu().numpy(), want.cpu().numpy(), rtol=1e-4, atol=1e-4)


gpu_only = pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs / big batches need a GPU")


@gpu_only
def test_cuda_graphs_match_eager():
    from pccompiler.backends.triton import TritonBackend
    build, _ = _circuits()["hmm"]
    result = _compile(pc.lower(build()))
    data = np.random.default_rng(6).integers(0, 5, size=(64, 4))
    eager = TritonBackend().compile(result.model, result.layout,
                                    {"device": "cuda", "cuda_graphs": False})
    graphs = TritonBackend().compile(result.model, result.layout,
                                     {"device": "cuda", "cuda_graphs": True})
    for _ in range(3):          # capture on the first call, replay afterwards
        for cc in (eager, graphs):
            cc.em_step(data, step_size=0.3, pseudocount=0.1)
    torch.testing.assert_close(graphs.log_prob(data), eager.log_prob(data), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(graphs.engine.sum_params, eager.engine.sum_params,
                               rtol=1e-4, atol=1e-6)


@gpu_only
@pytest.mark.parametrize("batch", [1, 8192])
def test_batch_extremes_match_torch(batch):
    from pccompiler.backends.torch import TorchBackend
    from pccompiler.backends.triton import TritonBackend
    data = _nltcs(200)
    result = _compile(pc.lower(pc.hclt(data, num_latents=32, num_cats=2)))
    x = np.random.default_rng(7).integers(0, 2, size=(batch, data.shape[1]))
    tri = TritonBackend().compile(result.model, result.layout, {"device": "cuda",
                                                                 "precision": "ieee"})
    tor = TorchBackend().compile(result.model, result.layout, {"device": "cuda"})
    torch.testing.assert_close(tri.log_prob(x), tor.log_prob(x), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(tri.flows(x), tor.flows(x), rtol=1e-4, atol=1e-5)


def _unread_products():
    """A block-sparse sum that skips one product group's block (as PD's
    decomposition mixtures do): those product rows have no reader."""
    xs = [pc.inputs(v, 4, pc.Categorical(3), seed=v) for v in range(4)]
    ys = [pc.inputs(v, 4, pc.Categorical(3), seed=10 + v) for v in range(4)]
    left = pc.summate(pc.multiply(xs[0], xs[1]), pc.multiply(ys[0], ys[1]), num_nodes=4,
                      edges=pc.BlockSparse([[0, 0]], 4), seed=0)
    right = pc.summate(pc.multiply(xs[2], xs[3]), pc.multiply(ys[2], ys[3]), num_nodes=4,
                       edges=pc.BlockSparse([[0, 0], [0, 1]], 4), seed=1)
    return pc.summate(pc.multiply(left, right), num_nodes=1, seed=2)


@pytest.mark.parametrize("name", ["hclt", "pd", "rat_spn", "hmm", "unread"])
def test_compact_fast_plan_matches_the_layout_plan(name, device):
    """Log-likelihoods and one EM step through the compact plan (products in
    a shared scratch region, recomputed in backward, parameter flows per
    layer) equal the Layout plan's, with fewer rows."""
    from pccompiler.backends.triton import TritonBackend
    build, x = (_unread_products, np.random.default_rng(3).integers(0, 3, size=(5, 4))) \
        if name == "unread" else _circuits()[name]
    result = _compile(pc.lower(build()))
    x = np.concatenate([x] * 3)
    opts = {"device": str(device), "precision": "ieee", "cuda_graphs": False}
    full = TritonBackend().compile(result.model, result.layout, dict(opts, compact=False))
    small = TritonBackend().compile(result.model, result.layout, opts)
    assert small.engine.fast_plan.num_slots < full.engine.fast_plan.num_slots
    assert full.engine.fast_plan is full.engine.plan
    if name == "unread":     # the unread rows moved too: their flows are zeroed in place
        assert any(lp.zero_flow_rows is not None for lp in small.engine.fast_plan.layers)
    torch.testing.assert_close(small.log_prob(x), full.log_prob(x), rtol=1e-5, atol=1e-5)
    for cc in (small, full):
        cc.zero_flows()
        cc.accumulate_flows(x)
    torch.testing.assert_close(small.engine.sum_param_flows, full.engine.sum_param_flows,
                               rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(small.engine.input_param_flows, full.engine.input_param_flows,
                               rtol=1e-4, atol=1e-6)
    for cc in (small, full):
        cc.em_update(0.5, 0.1)
    torch.testing.assert_close(small.engine.sum_params, full.engine.sum_params,
                               rtol=1e-4, atol=1e-6)


def _without_writer_ratios(plan) -> None:
    """Undo `mark_ratio_rows`: every sum partition takes its own ratio pass."""
    plan.ratio_rows = None
    for lp in plan.layers:
        for part in lp.sums:
            part.ratio_by_writer = False
        for part in lp.products:
            part.ratio_out = False


@pytest.mark.parametrize("name", ["hclt", "hmm", "rat_spn"])
def test_products_writing_log_ratios_match_the_ratio_pass(name, device):
    """Training's statistics when the single product writer of a sum
    partition's rows stores their log ratios equal those of the separate
    `log_ratio_kernel` pass, on both plans; every sum partition but the
    root's has its ratios written by its product in these structures."""
    from pccompiler.backends.triton import TritonBackend
    build, x = _circuits()[name]
    result = _compile(pc.lower(build()))
    x = np.concatenate([x] * 3)
    for compact in (True, False):
        opts = {"device": str(device), "precision": "ieee", "cuda_graphs": False,
                "compact": compact}
        by_writer, plain = (TritonBackend().compile(result.model, result.layout, opts)
                        for _ in range(2))
        sums = [p for lp in by_writer.engine.fast_plan.layers for p in lp.sums]
        assert sum(p.ratio_by_writer for p in sums) == len(sums) - 1
        _without_writer_ratios(plain.engine.fast_plan)
        for cc in (by_writer, plain):
            cc.zero_flows()
            cc.accumulate_flows(x)
        for attr in ("sum_param_flows", "input_param_flows"):
            torch.testing.assert_close(getattr(by_writer.engine, attr), getattr(plain.engine, attr),
                                       rtol=1e-5, atol=1e-6, msg=attr)
