"""tests/bench: the race harness. The bridge tests need pyjuice 2.6.3 and
skip when it is not importable (CI has no pyjuice); the case and report
tests run everywhere. To run the bridge tests locally:

    pip install --no-deps --target /tmp/pjsite .whl/pyjuice-2.6.3-py3-none-any.whl
    pip install --target /tmp/pjdeps matplotlib tqdm numba   # pyjuice imports them
    PYTHONPATH=/tmp/pjsite:/tmp/pjdeps .venv/bin/python -m pytest -q tests/bench

bench/ is a folder of scripts, not a package: it goes on sys.path here so
the tests import `pyjuice_bridge`, `race_cases` and `race_report` as the
scripts themselves do.
"""

from __future__ import annotations

import sys
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parents[2] / "bench"
if str(BENCH_DIR) not in sys.path:
    sys.path.insert(0, str(BENCH_DIR))
