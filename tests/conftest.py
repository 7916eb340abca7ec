"""Options for the whole test suite.

`--backend` and `--device` belong to the conformance suite
(tests/conformance), but pytest only honours command-line options declared
in the root conftest, so they live here:

    pytest tests --backend torch,triton     # what `make test` runs
    pytest tests/conformance --backend NAME --device cuda

Every test runs with one torch thread: the circuits under test are small,
and on a busy 2-core machine OpenMP threads spinning against each other
make small ops tens of times slower.
"""

import pytest
import torch


@pytest.fixture(autouse=True)
def one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def pytest_addoption(parser):
    parser.addoption("--backend", action="store", default="torch",
                     help="conformance: backend name(s) to test, comma-separated (default torch)")
    parser.addoption("--device", action="store", default="cpu",
                     help="conformance: device to compile for (default cpu)")
