"""Options for the whole test suite.

`--backend` and `--device` belong to the conformance suite
(tests/conformance), but pytest only honours command-line options declared
in the root conftest, so they live here:

    pytest tests --backend torch,triton     # what `make test` runs
    pytest tests/conformance --backend NAME --device cuda
"""


def pytest_addoption(parser):
    parser.addoption("--backend", action="store", default="torch",
                     help="conformance: backend name(s) to test, comma-separated (default torch)")
    parser.addoption("--device", action="store", default="cpu",
                     help="conformance: device to compile for (default cpu)")
