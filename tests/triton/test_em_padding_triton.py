"""The fused triton EM keeps a pruned circuit's zero-weight pseudo-edges at
exactly 0 and matches the torch engine's update (interpreter on CPU, the GPU
when there is one); see tests/training/test_em_padding.py."""

from __future__ import annotations

import torch

from pccompiler.train import em_step
from tests.training.test_em_padding import pruned_with_padding


def test_triton_em_keeps_padding_at_zero_and_matches_torch(device):
    circuits, padded = [], None
    for backend in ("torch", "triton"):
        # triton compiles straight onto the test device: on a GPU machine
        # (no interpreter) it refuses a CPU circuit
        where = str(device) if backend == "triton" else "cpu"
        circuit, data, pad = pruned_with_padding(8, 4, 0.7, backend, where)
        circuits.append(circuit)
        padded = pad if padded is None else padded
        assert torch.equal(pad, padded)
    assert int(padded.sum()) > 0, "the pruned circuit should have padded blocks"
    for step in range(3):
        rows = data[step * 64:(step + 1) * 64]
        lls = [em_step(c, rows, 0.5, 1.0).cpu() for c in circuits]
        torch.testing.assert_close(lls[1], lls[0], rtol=1e-4, atol=1e-4)
    ws = [c.engine.sum_params.detach().cpu() for c in circuits]
    assert torch.all(ws[1][padded] == 0) and torch.all(ws[0][padded] == 0)
    torch.testing.assert_close(ws[1], ws[0], rtol=1e-4, atol=1e-5)
