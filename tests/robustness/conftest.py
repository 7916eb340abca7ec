"""One torch thread (small circuits on a busy 2-core machine), and the
triton interpreter when no GPU exists: TRITON_INTERPRET must be set before
triton is first imported, so it is set at collection time, as in
tests/triton/conftest.py."""

import os

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")


@pytest.fixture(autouse=True)
def one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
