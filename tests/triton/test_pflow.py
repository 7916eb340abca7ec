"""The `pflow` option (backends/triton/pflow_launch.py): parameter flows by
the separate kernel ("layer", the default), the same kernel under the
"split" tiles, inside the node-flow kernel ("fused", bwd_pflow.py), or
fused where a child block walks few parent tiles and split elsewhere
("fused_split", run here with a limit of 3 tiles: the 48-node layer fuses,
the 256-node one, 4 tiles, splits).

Every mode must give the default's parameter flows and node flows (fp32
"ieee" dots, so only the order of additions differs) and the float64 torch
engine's EM step, on a circuit whose child blocks have several parent
blocks (a 256-node sum in two 128-row blocks over 32 product rows; a
48-node sum in three 16-row blocks over 256 product rows), with a batch of
96 = three 32-sample ranges, so the fused and split launches add their
ranges atomically. Layers of row tiles keep the separate kernel."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import pccompiler as pc
from pccompiler.backends.triton import pflow_launch
from pccompiler.errors import BackendError

MODES = ("layer", "split", "fused", "fused_split")
BATCH = 96


def _model():
    x0 = pc.inputs(0, 32, pc.Categorical(num_cats=4), seed=1)
    x1 = pc.inputs(1, 32, pc.Categorical(num_cats=4), seed=2)
    wide = pc.summate(pc.multiply(x0, x1), num_nodes=256, seed=3)
    x2 = pc.inputs(2, 256, pc.Categorical(num_cats=4), seed=4)
    top = pc.summate(pc.multiply(wide, x2), num_nodes=48, seed=5)
    return pc.lower(pc.summate(top, num_nodes=1, seed=6))


def _data(n: int = BATCH, seed: int = 5) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 4, (n, 3))


def _run(model, device, mode: str, **options) -> dict:
    c = pc.compile(model, backend="triton", device=str(device), precision="ieee", pflow=mode,
                   cuda_graphs=False, **options)
    eng = c.engine
    out = {"fused": eng.fused_layers(eng.fast_plan),
           "plain": [bool(lp.sums) and all(p.group == 1 for p in lp.sum_backwards)
                     for lp in eng.fast_plan.layers],
           "parts": [(lp.sums, lp.sum_backwards, lp.tile_flows) for lp in eng.fast_plan.layers]}
    c.zero_flows()
    out["ll"] = c.accumulate_flows(_data()).double().cpu()
    out["pflows"] = eng.sum_param_flows.double().cpu().clone()
    c.zero_flows()
    out["node_flows"] = c.flows(_data(), accumulate=True).double().cpu()
    out["pflows_query"] = eng.sum_param_flows.double().cpu().clone()
    c.em_step(_data(seed=7), step_size=0.6, pseudocount=0.2)
    out["params"] = c.parameter_arrays()
    return out


def _close(a: torch.Tensor, b: torch.Tensor, rtol: float = 2e-5) -> None:
    scale = float(b.abs().max())
    assert float((a - b).abs().max()) <= rtol * max(scale, 1e-30), (a - b).abs().max()


@pytest.fixture(scope="module")
def runs(device):
    model = _model()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(pflow_launch, "FUSE_MAX_PARENT_TILES", 3)
        return {mode: _run(model, device, mode) for mode in MODES}


def test_fused_serves_every_plain_sum_layer(runs):
    """The 256- and 48-node sum layers fuse; the root's node-flow part walks
    its three 16-row child blocks as one run (plan.parent_union): not fused."""
    fused = runs["fused"]["fused"]
    assert fused == runs["fused"]["plain"] and sum(fused) == 2
    assert not any(runs["layer"]["fused"]) and not any(runs["split"]["fused"])
    assert sum(runs["fused_split"]["fused"]) == 1


@pytest.mark.parametrize("mode", ["split", "fused", "fused_split"])
def test_flows_match_the_default(runs, mode):
    base, got = runs["layer"], runs[mode]
    assert torch.equal(got["ll"], base["ll"])
    _close(got["pflows"], base["pflows"])            # training: compact plan, ratios
    _close(got["pflows_query"], base["pflows_query"])   # queries: Layout slots, true flows
    _close(got["node_flows"], base["node_flows"])
    assert float(got["pflows"].sum()) > 0


@pytest.mark.parametrize("mode", MODES)
def test_em_step_matches_torch_float64(runs, mode):
    model = _model()
    ref = pc.compile(model, backend="torch", device="cpu", dtype="float64")
    ref.accumulate_flows(_data())
    ref.zero_flows()
    ref.em_step(_data(seed=7), step_size=0.6, pseudocount=0.2)
    want = ref.parameter_arrays()
    for name, arr in runs[mode]["params"].items():
        np.testing.assert_allclose(np.asarray(arr, dtype=np.float64), want[name],
                                   rtol=1e-4, atol=1e-7, err_msg=name)


def test_row_tile_layers_keep_the_separate_kernel(device):
    """A pruned 70-node sum stored as row tiles: its layer is not fusable
    (the tiles' pairs are not in the node-flow parts), the others are, and
    the parameter flows still equal the default's."""
    rng = np.random.default_rng(0)
    x = pc.inputs(0, 40, pc.Categorical(num_cats=3), seed=1)
    y = pc.inputs(1, 40, pc.Categorical(num_cats=3), seed=2)
    mask = rng.random((70, 40)) < 0.2
    mask[np.arange(70), rng.integers(0, 40, 70)] = True
    tiled = pc.summate(pc.multiply(x, y), num_nodes=70, edges=pc.Sparse(np.argwhere(mask)),
                       seed=3)
    model = pc.lower(pc.summate(tiled, num_nodes=1, seed=8))
    opts = {"pass_options": {"detect-block-sparsity": {"tile_rows": 64, "tile_cols": "8/64",
                                                       "tile_dense": False}}}
    data = np.random.default_rng(2).integers(0, 3, (40, 2))
    got = {}
    for mode in ("layer", "fused"):
        c = pc.compile(model, backend="triton", device=str(device), precision="ieee",
                       pflow=mode, cuda_graphs=False, **opts)
        plan = c.engine.fast_plan
        fused = c.engine.fused_layers(plan)
        assert all(not f for f, lp in zip(fused, plan.layers) if lp.tile_flows)
        c.zero_flows()
        c.accumulate_flows(data)
        got[mode] = c.engine.sum_param_flows.double().cpu().clone()
    assert any(lp.tile_flows for lp in plan.layers)
    _close(got["fused"], got["layer"])


def test_fused_split_limits_the_parent_chain(runs):
    """With the default limit (2 tiles of 64 parent rows) neither layer of the
    circuit fuses: 2 x 128-row and 3 x 16-row parents make 4 and 3 tiles."""
    for sums, backwards, tiles in runs["fused"]["parts"]:
        assert not pflow_launch.fusable_layer(sums, backwards, tiles,
                                              pflow_launch.FUSE_MAX_PARENT_TILES)


def test_bad_mode_is_refused():
    assert pflow_launch.check_pflow("fused") == "fused"
    with pytest.raises(BackendError, match="pflow must be one of"):
        pflow_launch.check_pflow("atomic")
