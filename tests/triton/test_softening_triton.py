"""Data softening on the triton engine (interpreter on CPU, the GPU when
there is one): softened EM steps match the torch engine's, for categorical
and Bernoulli inputs. Softening only touches the engine's public buffers
(input_params, input_param_flows, input_node_flows) in place, so CUDA
graphs replaying those buffers see the softened values."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import pccompiler as pc
from pccompiler.train import em_step, make_softening


@pytest.mark.parametrize("dist", ["categorical", "bernoulli"])
def test_softened_em_steps_match_torch(device, dist):
    from pccompiler.backends.torch import TorchBackend
    from pccompiler.backends.triton import TritonBackend
    from pccompiler.passes.manager import compile_model
    from pccompiler.data import load_debd
    data = load_debd("nltcs", "train")[:64, :6].astype(np.int64)
    kw = {"num_cats": 2} if dist == "categorical" else {"input_dist": "bernoulli"}
    result = compile_model(pc.lower(pc.hclt(data, num_latents=4, **kw)), block_limit=32,
                           backend="triton")
    circuits = [TorchBackend().compile(result.model, result.layout, {"device": "cpu"}),
                TritonBackend().compile(result.model, result.layout,
                                        {"device": str(device), "precision": "ieee"})]
    softs = [make_softening(c, 0.95, "uniform", data) for c in circuits]
    for step in range(2):
        rows = data[step * 16:(step + 1) * 16]
        lls = [em_step(c, rows, 0.5, 0.1, s).cpu() for c, s in zip(circuits, softs)]
        torch.testing.assert_close(lls[1], lls[0], rtol=1e-4, atol=1e-4)
    for name in ("sum_params", "input_params"):
        torch.testing.assert_close(getattr(circuits[1], name).cpu(), getattr(circuits[0], name),
                                   rtol=1e-4, atol=1e-5)
