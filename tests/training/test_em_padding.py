"""EM keeps the zero-weight pseudo-edges of a pruned circuit at exactly 0.

After pruning, `detect-block-sparsity` pads nearly complete blocks with
zero-weight edges; the EM pseudocount is spread over a node's edges of
non-zero weight only, so those edges never gain weight (issue #18). The
triton kernel's twin of this test is tests/triton/test_em_padding_triton.py.
"""

from __future__ import annotations

import numpy as np
import torch

import pccompiler as pc
from pccompiler.data import load_debd
from pccompiler.train import em_step, train_em
from pccompiler.train.prune_grow import prune, recompile, sum_edge_count


def pruned_with_padding(num_vars: int, latents: int, keep: float, backend: str = "torch",
                        device: str = "cpu"):
    """(pruned circuit recompiled for `backend`, its data, mask of padded
    sum parameters): an HCLT on the first `num_vars` NLTCS variables after
    two EM epochs, pruned by flows to `keep`."""
    data = load_debd("nltcs", "train")[:1000, :num_vars].astype(np.int64)
    dense = pc.compile(pc.lower(pc.hclt(data, num_latents=latents, num_cats=2, seed=0)),
                       backend="torch", device="cpu")
    train_em(dense, data, epochs=2, batch_size=500, step_size=0.5)
    model = prune(dense, data, keep)
    circuit = pc.compile(model, backend=backend, device=device)
    eng = circuit.engine
    live = eng.index.sum_param_parent.cpu() >= 0
    padded = live & (eng.sum_params.detach().cpu() == 0)
    return circuit, data, padded


def per_node_totals(circuit) -> torch.Tensor:
    eng = circuit.engine
    key = eng.index.sum_param_parent.cpu()
    sel = key >= 0
    w = eng.sum_params.detach().cpu()
    return torch.zeros_like(w).index_add_(0, key[sel], w[sel])[key[sel]]


def test_padding_edges_stay_zero_under_em_with_a_pseudocount():
    circuit, data, padded = pruned_with_padding(16, 8, 0.5)
    assert int(padded.sum()) > 0, "the pruned circuit should have padded blocks"
    edges = sum_edge_count(circuit.to_model())
    for step in range(5):
        em_step(circuit, data[step * 200:(step + 1) * 200], 0.5, 1.0)
    w = circuit.engine.sum_params.detach().cpu()
    assert torch.all(w[padded] == 0)
    torch.testing.assert_close(per_node_totals(circuit), torch.ones(int(
        (circuit.engine.index.sum_param_parent >= 0).sum())), rtol=0, atol=1e-5)
    assert sum_edge_count(circuit.to_model()) == edges


def test_the_pseudocount_still_reaches_every_real_edge():
    """A node's real edges share the pseudocount: with flows only on one
    edge, the others keep a weight of pc / (live edges) / (total + pc)."""
    circuit, data, padded = pruned_with_padding(16, 8, 0.5)
    eng = circuit.engine
    circuit.zero_flows()
    real = (eng.index.sum_param_parent.cpu() >= 0) & ~padded
    circuit.em_update(1.0, 2.0)     # no flows: each real edge gets 1 / (its node's real edges)
    key = eng.index.sum_param_parent.cpu()
    counts = torch.zeros(len(key)).index_add_(0, key[real], torch.ones(int(real.sum())))
    w = eng.sum_params.detach().cpu()
    torch.testing.assert_close(w[real], 1.0 / counts[key[real]], rtol=1e-6, atol=0)
    assert torch.all(w[padded] == 0)
