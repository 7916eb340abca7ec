"""Row tiles of a pruned sum on the triton backend (interpreter on CPU, the
GPU when there is one): 64-row tiles over 64-column blocks plus the odd
remainders (70 rows = 64 + 4 + 2, 72 columns = 64 + 8) give the same
log-likelihoods and the same EM step as the torch engine, and the
zero-weight pseudo-edges stay exactly 0."""

from __future__ import annotations

import numpy as np
import torch

import pccompiler as pc
from pccompiler.train import em_step
from tests.triton.refs import reference_tol

# tile_dense off: the cost model would store these pruned groups DENSE (row_tiles.dense_cost)
TILES = {"detect-block-sparsity": {"tile_rows": 64, "tile_cols": "8/64", "tile_dense": False}}


def _model():
    rng = np.random.default_rng(0)
    x = pc.inputs(0, 72, pc.Categorical(num_cats=3), seed=1)
    y = pc.inputs(1, 72, pc.Categorical(num_cats=3), seed=2)
    mask = rng.random((70, 72)) < 0.2
    mask[np.arange(70), rng.integers(0, 72, 70)] = True
    s = pc.summate(pc.multiply(x, y), num_nodes=70, edges=pc.Sparse(np.argwhere(mask)), seed=3)
    return pc.lower(pc.summate(s, num_nodes=1, seed=4))


def test_row_tiles_match_torch_and_keep_padding_at_zero(device):
    model = _model()
    circuits = [pc.compile(model, backend=b, device=str(device) if b == "triton" else "cpu",
                           pass_options=TILES) for b in ("torch", "triton")]
    kernels = {sp.kernel for layer in circuits[1].layout.layers for sp in layer.sum_partitions}
    assert "row_tiles" in kernels
    padded = circuits[0].engine.sum_params.detach().cpu() == 0
    padded &= circuits[0].engine.index.sum_param_parent.cpu() >= 0
    assert int(padded.sum()) > 0
    rng = np.random.default_rng(5)
    data = rng.integers(0, 3, (32, 2))
    lls = [c.log_prob(data).detach().cpu() for c in circuits]
    tol = reference_tol(device, 1e-4)      # the tiles' dots are tf32 on a GPU
    torch.testing.assert_close(lls[1], lls[0], rtol=tol, atol=tol)
    # two EM steps per backend, then the step log-likelihoods and weights agree
    steps = [[em_step(c, data[i * 16:(i + 1) * 16], 0.5, 0.5).cpu() for i in range(2)]
             for c in circuits]
    for ours, want in zip(steps[1], steps[0]):
        torch.testing.assert_close(ours, want, rtol=tol, atol=tol)
    w_torch, w_triton = (c.engine.sum_params.detach().cpu() for c in circuits)
    assert torch.all(w_torch[padded] == 0) and torch.all(w_triton[padded] == 0)
    torch.testing.assert_close(w_triton, w_torch, rtol=tol, atol=reference_tol(device, 1e-5))
