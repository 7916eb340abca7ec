"""Write bench/gpu/data/aot_dense_sm90_triton390.pcc: a small circuit whose
sm_90 kernels this (CPU, triton 3.9) machine cross-compiles, for the
mismatch step of bench/gpu/aot.sh (the H100 runs triton 3.6).

    .venv/bin/python bench/gpu/make_mismatch_artifact.py
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.append(str(ROOT / "tests"))

import triton  # noqa: E402

import pccompiler  # noqa: E402
from factories import small_dense_model  # noqa: E402

out = ROOT / "bench" / "gpu" / "data" / f"aot_dense_sm90_triton{triton.__version__.replace('.', '')}.pcc"
circuit = pccompiler.compile(small_dense_model(), backend="triton", target="cuda:sm_90",
                             batch_sizes=[24], data_dtypes=["int64"])
circuit.save(str(out))
print(f"wrote {out} ({len(circuit.aot_kernels[0]['kernels'])} kernels, triton {triton.__version__})")
