"""Engine setup: what the triton engine allocates and how compile feeds it.

* device packing (backends/common/packing_upload.py) writes exactly the
  float64 reference packing (backends/common/packing.py) on every factory
  circuit;
* the triton engine never builds the generic LayoutIndex (int64
  per-parameter tensors) through construction, forward, backward and EM,
  and keeps no categorical node-flow buffer (its totals are row sums);
* `pccompiler.compile` gives triton layouts 128-row blocks and skips the
  verify pass only when asked (or when it lowered the group itself);
* a full block-sparse group turned dense packs like the scatter it replaces.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import pccompiler as pc
from pccompiler import passes
from pccompiler.backends.common.packing import pack_parameters
from pccompiler.backends.common.packing_upload import pack_parameters_into
from tests import factories
from tests.passes.circuits import block_mask, expand_blocks, two_level_model


@pytest.mark.parametrize("name", sorted(factories.ALL_FACTORIES))
def test_device_packing_matches_reference(name):
    model = factories.ALL_FACTORIES[name](seed=3)
    result = passes.compile_model(model)
    want_s, want_i = pack_parameters(result.model, result.layout)
    got_s = torch.full((want_s.size,), float("nan"), dtype=torch.float64)
    got_i = torch.full((want_i.size,), float("nan"), dtype=torch.float64)
    pack_parameters_into(result.model, result.layout, got_s, got_i)
    np.testing.assert_array_equal(got_s.numpy(), want_s)
    np.testing.assert_array_equal(got_i.numpy(), want_i)


def _hclt():
    rng = np.random.default_rng(0)
    data = rng.integers(0, 3, size=(64, 6))
    return pc.hclt(data, num_latents=8, num_cats=3), data[:5]


def test_engine_builds_no_generic_index_and_no_categorical_node_flows(device):
    from pccompiler.backends.triton import TritonBackend
    root, x = _hclt()
    cc = pc.compile(root, backend="triton", device=str(device), precision="ieee")
    eng = cc.engine
    assert eng._node_flows.numel() == 1          # all inputs categorical
    cc.em_step(x, step_size=0.5, pseudocount=0.1)
    cc.log_prob(x)
    assert eng._index is None
    # the derived totals equal the per-node flow sums the torch engine keeps
    from pccompiler.backends.torch import TorchBackend
    tor = TorchBackend().compile(cc.to_model(), cc.layout, {"device": "cpu"})
    for c in (cc, tor):
        c.zero_flows()
        c.accumulate_flows(x)
    np.testing.assert_allclose(eng.input_node_flows.cpu().numpy(),
                               tor.engine.input_node_flows.numpy(), rtol=1e-5, atol=1e-6)
    assert max(int(sp.block_size) for layer in cc.layout.layers
               for sp in layer.sum_partitions) <= TritonBackend.block_limit


def test_compile_uses_backend_block_limit_and_check_flag(device):
    from pccompiler.frontend.lowering import lower
    model = lower(pc.hclt(np.random.default_rng(1).integers(0, 2, size=(64, 5)),
                             num_latents=64, num_cats=2))
    tri = pc.compile(model, backend="triton", device=str(device))
    tor = pc.compile(model, backend="torch", device="cpu")
    size = lambda cc: max(int(sp.block_size) for layer in cc.layout.layers  # noqa: E731
                          for sp in layer.sum_partitions)
    assert size(tri) == 64 and size(tor) == 32
    ran = lambda cc: [r.name for r in cc.compile_report.records]  # noqa: E731
    assert "verify" in ran(tri)
    assert "verify" not in ran(pc.compile(model, backend="torch", device="cpu", check=False))


def test_returned_log_prob_is_not_a_buffer_view(device):
    root, x = _hclt()
    cc = pc.compile(root, backend="triton", device=str(device))
    first = cc.log_prob(x)
    keep = first.clone()
    cc.log_prob(x[::-1].copy())
    torch.testing.assert_close(first, keep)


def test_full_block_sparse_to_dense_keeps_weights():
    """Every 4x4 block present: the sparse group becomes block-sparse, then
    dense through the transpose path (or stays block-sparse above
    dense_max_params); log-likelihoods equal the plain sparse layout's."""
    rng = np.random.default_rng(2)
    model = two_level_model(expand_blocks(block_mask(rng, 3, 4, keep=1.0), 4), 12, 16, seed=4)
    x = rng.integers(0, 3, size=(6, 2))
    ref = pc.compile(model, backend="torch", device="cpu", pipeline="verify,layerize,layout")
    got = pc.compile(model, backend="torch", device="cpu")
    kept = pc.compile(model, backend="torch", device="cpu",
                      pass_options={"detect-block-sparsity": {"dense_max_params": 100}})
    for cc, mark in ((got, "-> dense"), (kept, "(complete, too big to rewrite)")):
        notes = [n for r in cc.compile_report.records for n in r.notes]
        assert any(mark in n for n in notes), notes
        torch.testing.assert_close(cc.log_prob(x), ref.log_prob(x))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a GPU")
def test_graph_batch_claim_tail_and_reclaim_match_eager():
    """A one-off query claims the graphs, the training size takes them over
    after RECLAIM_AFTER forwards, a tail batch runs eagerly: every result
    equals the eager engine's, and returned tensors survive later calls."""
    from pccompiler.backends.triton.graphs import RECLAIM_AFTER
    root, _ = _hclt()
    rng = np.random.default_rng(9)
    eager = pc.compile(root, backend="triton", device="cuda", cuda_graphs=False)
    graphs = pc.compile(root, backend="triton", device="cuda")
    batches = [rng.integers(0, 3, size=(n, 6)) for n in [17] + [64] * (RECLAIM_AFTER + 3) + [5]]
    for x in batches:
        outs = [cc.em_step(x, step_size=0.3, pseudocount=0.1) for cc in (eager, graphs)]
        torch.testing.assert_close(outs[1], outs[0], rtol=1e-4, atol=1e-4)
    assert graphs.engine.graphs.batch == 64
    first = graphs.log_prob(batches[1])
    keep = first.clone()
    graphs.log_prob(batches[2])
    torch.testing.assert_close(first, keep)
    torch.testing.assert_close(graphs.engine.sum_params, eager.engine.sum_params,
                               rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(graphs.flows(batches[3]), eager.flows(batches[3]),
                               rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("dtype", [torch.uint8, torch.int64])
def test_out_of_range_category_found_by_the_input_kernel(dtype, device):
    """log_prob and em_step run the forward before looking at the values: the
    input kernel reports the first bad (row, column), missing entries are
    not checked, nothing is trained on a bad batch, and the flag clears."""
    from pccompiler.errors import DataError
    root, x = _hclt()
    cc = pc.compile(root, backend="triton", device=str(device))
    good = torch.as_tensor(x, dtype=dtype)
    bad = good.clone()
    bad[2, 5] = 200 if dtype == torch.uint8 else -1
    bad[3, 1] = 7
    with pytest.raises(DataError, match=r"row 2, column 5: category"):
        cc.log_prob(bad)
    before = cc.sum_params.detach().clone()
    with pytest.raises(DataError, match=r"row 2, column 5"):
        cc.em_step(bad, step_size=0.5)
    torch.testing.assert_close(cc.sum_params.detach(), before)
    missing = torch.zeros(bad.shape, dtype=torch.bool)
    missing[2, 5] = missing[3, 1] = True
    torch.testing.assert_close(cc.log_prob(bad, missing), cc.log_prob(good, missing))
    torch.testing.assert_close(cc.log_prob(good), cc.log_prob(x))


def test_uint8_over_256_categories_needs_no_check():
    from pccompiler.backends.compiled import _dtype_fits
    cats = np.array([256, 256, 300])
    assert _dtype_fits(torch.uint8, cats)
    assert not _dtype_fits(torch.uint8, np.array([256, 255]))
    assert not _dtype_fits(torch.int8, cats) and not _dtype_fits(torch.int64, cats)
    assert not _dtype_fits(torch.float32, cats)


def test_plans_are_built_on_first_use(device):
    """Compiling decodes no plan; log-likelihoods and EM build only the
    compact one; an all-node query builds the Layout-slot plan."""
    from tests.triton.test_engine_e2e import _circuits
    build, x = _circuits()["hmm"]
    cc = pc.compile(pc.lower(build()), backend="triton", device=str(device), cuda_graphs=False)
    eng = cc.engine
    assert eng._plan is None and eng._fast_plan is None
    cc.em_step(x, step_size=0.5)
    assert eng._fast_plan is not None and eng._plan is None
    assert eng.fast_plan.scratch_start is not None
    cc.flows(x)
    assert eng._plan is not None and eng.plan.num_slots > eng.fast_plan.num_slots
