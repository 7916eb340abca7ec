"""Options that were removed: an old call is refused by name, an old file loads.

The triton option `fused` (a one-launch forward) was removed: it returned
-inf on the GPU. Backends pass over `extra` options they do not read, so
without backends/interface.py's REMOVED_OPTIONS a call that still passes it
would run without a word. Options were never stored in a .pcc; what a
session-8 file compiled with `target=` and `fused="auto"` can hold is kernel
records of the removed kernels, which must not stop it from loading.
"""

from __future__ import annotations

import numpy as np
import pytest

import pccompiler as pc
from pccompiler.backends.interface import CompileOptions
from pccompiler.errors import BackendError
from tests.factories import small_dense_model


@pytest.mark.parametrize("backend", ["torch", "triton"])
def test_compile_refuses_fused_before_any_pass(backend, monkeypatch):
    from pccompiler import passes

    def no_pass(*args, **kwargs):
        raise AssertionError("a pass ran before the removed option was refused")

    monkeypatch.setattr(passes, "compile_model", no_pass)
    with pytest.raises(BackendError, match=r"compile option fused='auto' no longer exists"):
        pc.compile(small_dense_model(), backend=backend, device="cpu", fused="auto")


@pytest.mark.parametrize("value", [False, True, "auto"])
def test_backend_compile_refuses_fused(value):
    """Backend.compile with an options mapping (the conformance suite's way)
    and a CompileOptions built directly."""
    from pccompiler.backends.triton import TritonBackend
    from pccompiler import passes
    result = passes.compile_model(small_dense_model())
    with pytest.raises(BackendError, match="fused"):
        TritonBackend().compile(result.model, result.layout, {"device": "cpu", "fused": value})
    with pytest.raises(BackendError, match="fused"):
        CompileOptions(device="cpu", extra={"precision": "ieee", "fused": value})
    assert CompileOptions.from_any({"device": "cpu", "precision": "ieee"}).extra == {
        "precision": "ieee"}


def test_file_with_removed_kernel_records_loads(tmp_path):
    """A .pcc whose kernels entry lists the removed one-launch kernels
    (as session 8 wrote with target= and fused="auto") loads, runs, and
    `pcc dump --kernels` lists it."""
    pytest.importorskip("triton")
    from pccompiler.backends.triton.aot.build import BuiltKernel, BuiltKernels
    from pccompiler.backends.triton.aot.store import describe, kernel_manifest
    from pccompiler.ir.artifact import read_pcc

    kernels = [BuiltKernel(name, digest * 32, '{"options": {"num_warps": 4}}',
                           {f"{name}.json": b"{}", f"{name}.cubin": b"\x7fELF" + name.encode()})
               for name, digest in (("input_fwd_kernel", "a1"), ("fused_fwd_kernel", "b2"),
                                    ("fused_bwd_kernel", "c3"))]
    built = BuiltKernels("cuda:sm_90", "3.6.0", [1], ["int64"], "tf32", kernels)
    circuit = pc.compile(small_dense_model(), backend="torch", device="cpu")
    circuit.aot_kernels = kernel_manifest(built)
    path = str(tmp_path / "session8.pcc")
    circuit.save(path)

    loaded = pc.load(path)            # no GPU here: torch on the CPU, kernels verified
    x = np.random.default_rng(0).integers(0, 3, (4, 4))
    np.testing.assert_allclose(loaded.log_prob(x).numpy(), circuit.log_prob(x).numpy())
    entry = read_pcc(path).manifest["kernels"]
    assert {k["name"] for k in entry["kernels"]} == {"input_fwd_kernel", "fused_fwd_kernel",
                                                      "fused_bwd_kernel"}
    assert "fused_fwd_kernel" in describe(entry)
