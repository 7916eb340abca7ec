"""The triton interpreter when no GPU exists (one torch thread comes from
tests/conftest.py): TRITON_INTERPRET must be set before
triton is first imported, so it is set at collection time, as in
tests/triton/conftest.py."""

import os

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

