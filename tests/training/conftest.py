"""One torch thread for these tests: the circuits are small, and on a busy
2-core machine OpenMP threads spinning against each other make small ops
tens of times slower."""

import pytest
import torch


@pytest.fixture(autouse=True)
def one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
