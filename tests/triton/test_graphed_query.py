"""`CompiledCircuit.graphed_query`: the fixed-batch log p(x) / marginal query.

Under the interpreter (no graphs) the query runs eagerly and must equal
`log_prob` (and the float64 reference), graph=True must refuse with a clear
error, and bad input must name what is wrong. On a GPU the graphed query
must equal eager `log_prob` at batch 1 and 8, follow EM updates (the graph
reads the parameters by address) and catch an out-of-range category.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import pccompiler as pc
from pccompiler.backends.reference import evaluate
from pccompiler.errors import DataError, UnsupportedError

CATS, VARS = 3, 6


def _circuit(device):
    rng = np.random.default_rng(0)
    data = rng.integers(0, CATS, size=(64, VARS))
    root = pc.hclt(data, num_latents=8, num_cats=CATS)
    cc = pc.compile(root, backend="triton", device=str(device), precision="ieee")
    return cc, data


def _batch(batch: int, seed: int):
    rng = np.random.default_rng(seed)
    return rng.integers(0, CATS, size=(batch, VARS)), rng.random((batch, VARS)) < 0.4


@pytest.mark.skipif(torch.cuda.is_available(), reason="the eager fallback is what CPU runs")
def test_eager_fallback_equals_log_prob_and_reference(device):
    cc, _ = _circuit(device)
    q = cc.graphed_query(4)
    assert not q.graphed
    x, miss = _batch(4, 1)
    got = q(x, miss).clone()
    torch.testing.assert_close(got, cc.log_prob(x, miss), rtol=1e-5, atol=1e-5)
    want = evaluate.log_prob(cc.to_model(), x, miss)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-4, atol=1e-4)
    # filling the static buffers in place, then q()
    x2, miss2 = _batch(4, 2)
    q.x.copy_(torch.as_tensor(x2))
    q.missing.copy_(torch.as_tensor(miss2))
    torch.testing.assert_close(q(), cc.log_prob(x2, miss2), rtol=1e-5, atol=1e-5)
    # no mask: full evidence
    torch.testing.assert_close(q(x2), cc.log_prob(x2), rtol=1e-5, atol=1e-5)


@pytest.mark.skipif(torch.cuda.is_available(), reason="only the CPU cannot capture")
def test_graph_true_without_cuda_is_a_clear_error(device):
    cc, _ = _circuit(device)
    with pytest.raises(UnsupportedError, match="needs a CUDA device"):
        cc.graphed_query(1, graph=True)


def test_bad_input_is_named(device):
    cc, _ = _circuit(device)
    q = cc.graphed_query(2)
    x, miss = _batch(2, 3)
    with pytest.raises(DataError, match=r"made for \[2, 6\]"):
        q(np.zeros((3, VARS), dtype=np.int64))
    with pytest.raises(DataError, match="missing mask has shape"):
        q(x, miss[:, :3])
    with pytest.raises(DataError, match="must be integers"):
        q(x.astype(np.float32))
    bad = x.copy()
    bad[1, 4] = CATS
    with pytest.raises(DataError, match=r"row 1, column 4: category 3 is outside \[0, 3\)"):
        q(bad, miss & False)
    narrow = cc.graphed_query(2, dtype=torch.uint8)
    with pytest.raises(DataError, match=r"values \[0, 300\] do not fit"):
        narrow(np.full((2, VARS), 300) * (np.arange(VARS) == 0))
    with pytest.raises(DataError, match="batch_size must be >= 1"):
        cc.graphed_query(0)
    plain = cc.graphed_query(2, marginal=False)
    assert plain.missing is None
    with pytest.raises(DataError, match="marginal=False"):
        plain(x, miss)


def test_torch_backend_refuses():
    cc = pc.compile(_circuit_root(), backend="torch", device="cpu")
    with pytest.raises(UnsupportedError, match="needs the triton backend"):
        cc.graphed_query(1)


def _circuit_root():
    data = np.random.default_rng(0).integers(0, CATS, size=(64, VARS))
    return pc.hclt(data, num_latents=4, num_cats=CATS)


gpu_only = pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a GPU")


@gpu_only
@pytest.mark.parametrize("batch", [1, 8])
def test_graphed_equals_eager_and_follows_em(batch):
    cc, data = _circuit("cuda")
    eager = pc.compile(cc.to_model(), backend="triton", device="cuda", precision="ieee",
                       cuda_graphs=False)
    q = cc.graphed_query(batch, dtype=torch.uint8)
    assert q.graphed
    for seed in range(3):                       # replays on new data in the same buffers
        x, miss = _batch(batch, 10 + seed)
        torch.testing.assert_close(q(x, miss).clone(), eager.log_prob(x, miss),
                                   rtol=1e-5, atol=1e-5)
    for c in (cc, eager):
        c.em_step(data, step_size=0.5, pseudocount=0.1)
    x, miss = _batch(batch, 20)
    torch.testing.assert_close(q(x, miss).clone(), eager.log_prob(x, miss), rtol=1e-5, atol=1e-5)
    bad, seen = x.copy(), miss.copy()
    bad[0, 2] = 7
    seen[0, 2] = False          # a missing entry's category is never read (at batch 1 the
    with pytest.raises(DataError, match="row 0, column 2"):   # seed-20 mask hid it)
        q(bad, seen)
    torch.testing.assert_close(q(x, miss).clone(), eager.log_prob(x, miss), rtol=1e-5, atol=1e-5)
