"""The reference backend: a float64 numpy interpreter of a `pcir.Model`.

It runs the circuit group by group, as simply as possible, and is the oracle
every other backend is tested against:

    from pccompiler.backends import reference
    reference.log_prob(model, x, missing=None)       # [B] log p(x_observed)
    reference.log_prob_groups(model, x, missing)     # every node's log-value
    reference.sample(model, n, rng)                  # ancestral samples [n, V]
    reference.conditional_sample(model, x, missing, rng)   # p(missing | observed)
    reference.mpe(model, x, missing)                 # max-product completion

`x` is [B, num_vars] (ints; floats where a variable is real), `missing` a bool
array of the same shape (True = marginalize / fill in).

`ReferenceBackend` puts the same interpreter behind a CompiledCircuit
(`pccompiler.compile(model, backend="reference")`): float64 torch tensors,
no flows, EM or gradients.
"""

from pccompiler.backends.reference.backend import ReferenceBackend
from pccompiler.backends.reference.evaluate import log_prob, log_prob_groups, prepare_data
from pccompiler.ir.model_view import ModelView
from pccompiler.backends.reference.topdown import conditional_sample, mpe, sample

__all__ = ["ReferenceBackend", "ModelView", "log_prob", "log_prob_groups", "prepare_data",
           "sample", "conditional_sample", "mpe"]
