"""Ahead-of-time Triton kernels stored in the .pcc artifact (issue #16 A).

`pcc compile --backend triton --target cuda:sm_90` cross-compiles every
kernel specialization the Triton plans launch at the chosen batch sizes
(on a machine with or without a GPU) and stores Triton's own cache files
for them (JSON metadata, cubin, ptx; no host code) in the artifact; at load,
after their sha256 are checked, they are written into Triton's kernel cache,
so the JIT's first launch finds them and compiles nothing.

Modules, one job each:
  target   parse "cuda:sm_90", the running machine's target, a stand-in driver
  record   dry-run the engine with launches recorded instead of run
  build    cross-compile the recorded specializations, collect their files
  store    manifest entries + sections; verify and restore them at load
  warm     optional: load every restored kernel into the GPU at once (threads)
  count    count Triton compilations (tests, benchmarks)
"""

from pccompiler.backends.triton.aot.build import build_kernels
from pccompiler.backends.triton.aot.count import CompileCounter
from pccompiler.backends.triton.aot.store import (
    KernelMismatchWarning, kernel_manifest, restore_kernels, verify_kernels,
)
from pccompiler.backends.triton.aot.target import parse_target

__all__ = ["build_kernels", "CompileCounter", "KernelMismatchWarning", "kernel_manifest",
           "parse_target", "restore_kernels", "verify_kernels"]
