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
    # builder API (pccompiler/builder.py)
    "inputs": "pccompiler.builder", "multiply": "pccompiler.builder",
    "summate": "pccompiler.builder", "tie": "pccompiler.builder",
    "Categorical": "pccompiler.builder", "Bernoulli": "pccompiler.builder",
    "Gaussian": "pccompiler.builder", "BlockSparse": "pccompiler.builder",
    "Sparse": "pccompiler.builder", "Group": "pccompiler.builder",
    "lower": "pccompiler.lowering",
    "from_networkx": "pccompiler.networkx_io", "to_networkx": "pccompiler.networkx_io",
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
