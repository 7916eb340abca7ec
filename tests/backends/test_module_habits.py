"""nn.Module habits on a CompiledCircuit (issue #20, point 6): .double(),
.to(dtype/device), .float(), .cuda(), .cpu() move the parameters and the
engine together or fail clearly; repr shows what the circuit is."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import pccompiler as pc
from pccompiler.backends import reference
from pccompiler.errors import BackendError, UnsupportedError
from tests.conformance.circuits import block_sparse, gaussian, random_data

NO_CUDA = not torch.cuda.is_available()


def exact(circuit, x, missing=None) -> np.ndarray:
    """The reference's float64 log p(x) under the circuit's current parameters."""
    return reference.log_prob(circuit.engine.store_parameters(float64=True), x, missing)


@pytest.mark.parametrize("convert", [lambda c: c.double(), lambda c: c.to(torch.float64),
                                     lambda c: c.to("cpu", torch.float64),
                                     lambda c: c.to(dtype=torch.float64)])
def test_double_gives_float64_results(convert):
    model = block_sparse()
    circuit = pc.compile(model, backend="torch")
    x = random_data(model, 30, seed=0)
    missing = np.random.default_rng(1).random(x.shape) < 0.3
    assert convert(circuit) is circuit
    assert circuit.engine.dtype == torch.float64 and circuit.options.dtype == "float64"
    assert circuit.sum_params.dtype == circuit.input_params.dtype == torch.float64
    assert circuit.engine.sum_params is circuit.sum_params
    got = circuit.log_prob(x, missing)
    assert got.dtype == torch.float64
    np.testing.assert_allclose(got.numpy(), exact(circuit, x, missing), rtol=1e-12)
    # EM, flows and sampling keep working in the new dtype
    circuit.em_step(x, step_size=0.5)
    assert circuit.engine.sum_param_flows.dtype == torch.float64
    np.testing.assert_allclose(circuit.log_prob(x).numpy(), exact(circuit, x), rtol=1e-12)
    assert circuit.flows(x).dtype == torch.float64
    assert circuit.sample(3).shape == (3, len(model.variables))


def test_float_goes_back_and_accumulated_flows_move_along():
    model = gaussian()
    circuit = pc.compile(model, backend="torch", dtype="float64")
    x = random_data(model, 20, seed=2)
    circuit.zero_flows()
    circuit.accumulate_flows(x)
    flows = circuit.engine.sum_param_flows.clone()
    circuit.float()
    assert circuit.engine.dtype == torch.float32 and circuit.options.dtype == "float32"
    torch.testing.assert_close(circuit.engine.sum_param_flows, flows.float())
    circuit.em_update(1.0)                       # the statistics of before the move
    assert circuit.log_prob(x).dtype == torch.float32
    circuit.to("cpu")                            # no move: nothing changes
    circuit.cpu()
    assert circuit.engine.dtype == torch.float32 and str(circuit.device) == "cpu"


def test_gradient_training_survives_a_dtype_move():
    model = block_sparse()
    circuit = pc.compile(model, backend="torch").requires_grad_().double()
    assert circuit.sum_logits.dtype == torch.float64
    opt = torch.optim.Adam(circuit.parameters(), lr=0.1)
    x = random_data(model, 16, seed=3)
    loss = -circuit.log_prob(x).mean()
    loss.backward()
    opt.step()
    with torch.no_grad():
        np.testing.assert_allclose(circuit.log_prob(x).numpy(), exact(circuit, x), rtol=1e-12)


@pytest.mark.skipif(not NO_CUDA, reason="checks the error on a machine without CUDA")
@pytest.mark.parametrize("move", [lambda c: c.cuda(), lambda c: c.to("cuda"),
                                  lambda c: c.to("cuda", torch.float64)])
def test_cuda_without_cuda_is_a_clear_error_and_moves_nothing(move):
    model = block_sparse()
    circuit = pc.compile(model, backend="torch")
    x = random_data(model, 4, seed=4)
    before = circuit.log_prob(x)
    with pytest.raises(BackendError, match="cannot move the torch circuit from cpu: .*CUDA"):
        move(circuit)
    assert str(circuit.device) == "cpu" and circuit.engine.dtype == torch.float32
    assert circuit.sum_params.device.type == "cpu"
    torch.testing.assert_close(circuit.log_prob(x), before)


def test_unsupported_dtypes_and_backends_refuse_before_moving():
    model = block_sparse()
    circuit = pc.compile(model, backend="torch")
    with pytest.raises(UnsupportedError, match="backend 'torch' does not support dtype 'float16'"):
        circuit.half()
    with pytest.raises(UnsupportedError, match="float32 or float64, not complex64"):
        circuit.to(torch.complex64)
    with pytest.raises(UnsupportedError, match="dtype 'bfloat16'"):
        circuit.bfloat16()
    assert circuit.sum_params.dtype == torch.float32
    ref = pc.compile(model, backend="reference")
    with pytest.raises(BackendError, match="reference"):
        ref.to("cuda")
    ref.float()                                  # the oracle answers in float32 then
    x = random_data(model, 5, seed=5)
    assert ref.log_prob(x).dtype == torch.float32


def test_triton_circuits_stay_where_they_were_compiled():
    pytest.importorskip("triton")
    from pccompiler.backends.triton.compat import device_ok
    if not device_ok(torch.device("cpu")):
        pytest.skip("triton needs TRITON_INTERPRET=1 on the CPU")
    model = block_sparse()
    tri = pc.compile(model, backend="triton", device="cpu")
    with pytest.raises(UnsupportedError, match="backend 'triton' does not support dtype 'float64'"):
        tri.double()
    with pytest.raises(UnsupportedError, match="a triton circuit cannot move from cpu"):
        tri.engine.check_move(torch.device("cuda"), torch.float32)
    tri.to("cpu").float()                        # where it is already: fine
    assert tri.engine.sum_params is tri.sum_params


def test_repr_shows_backend_device_dtype_and_sizes():
    model = block_sparse()
    circuit = pc.compile(model, backend="torch")
    from pccompiler.ir.text import model_info
    t = model_info(circuit.model, max_groups=0)["totals"]
    assert repr(circuit) == (f"CompiledCircuit(backend='torch', device='cpu', dtype=float32, "
                             f"groups={t['groups']}, edges={t['edges']}, "
                             f"params={t['parameters']})")
    assert t["groups"] == len(model.groups) and t["edges"] > 0 and t["parameters"] > 0
    circuit.double().requires_grad_()
    assert "dtype=float64" in repr(circuit) and repr(circuit).endswith(", gradients=logits)")
    assert repr(pc.compile(model, backend="reference")).startswith(
        "CompiledCircuit(backend='reference', device='cpu', dtype=float64,")
