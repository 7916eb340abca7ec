"""pccompiler: a compiler for probabilistic circuits.

Build a circuit (builder API, standard structures, networkx), lower it to the
protobuf IR (:mod:`pccompiler.ir`), run passes (:mod:`pccompiler.passes`) and
run it on a backend (:mod:`pccompiler.backends`).

The public names below are imported lazily, so `import pccompiler` stays
cheap (no torch import) and the stages stay independent.
"""

from __future__ import annotations

import importlib

from pccompiler.version import __version__

_EXPORTS = {
    # builder API (pccompiler/frontend/builder.py)
    "inputs": "pccompiler.frontend.builder", "multiply": "pccompiler.frontend.builder",
    "summate": "pccompiler.frontend.builder", "tie": "pccompiler.frontend.builder",
    "Categorical": "pccompiler.frontend.builder", "Bernoulli": "pccompiler.frontend.builder",
    "Gaussian": "pccompiler.frontend.builder", "BlockSparse": "pccompiler.frontend.builder",
    "Sparse": "pccompiler.frontend.builder", "Group": "pccompiler.frontend.builder",
    "lower": "pccompiler.frontend.lowering",
    "from_networkx": "pccompiler.frontend.networkx_io", "to_networkx": "pccompiler.frontend.networkx_io",
    # logic circuits (pccompiler/frontend/sdd.py; queries in pccompiler/logic.py)
    "from_sdd": "pccompiler.frontend.sdd", "from_nnf": "pccompiler.frontend.nnf",
    # standard structures (pccompiler/structures/)
    "hclt": "pccompiler.structures", "pd": "pccompiler.structures",
    "rat_spn": "pccompiler.structures", "hmm": "pccompiler.structures",
    # driver (pccompiler/driver.py)
    "compile": "pccompiler.driver", "load": "pccompiler.driver",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'pccompiler' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
