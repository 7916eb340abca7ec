"""Hidden Markov models as circuits (PyJuice 2.6.3's `HMM`).

Latent chain Z_0 -> Z_1 -> ... -> Z_{T-1} with K states, each Z_t emitting
X_t over `num_emits` symbols. Built backwards from the last step as
PyJuice does:

    x_{T-1} = inputs(T-1, K)                    emission table
    z       = x_{T-1}
    for t = T-2 .. 0:
        s_t = summate(z, K)                     transition (K x K, dense)
        z   = multiply(inputs(t, K), s_t)
    root = summate(z, 1)                        initial distribution

`homogeneous=True` ties every emission group to x_{T-1} and every
transition to the first one (`pc.tie`): the Model stores one transition
matrix and one emission table. With `pyjuice_layers` (default) the first
transition's input child is wrapped in a one-child product, as PyJuice's
compiler does, so edge counts agree: (T-1) K^2 + 2 K T.
"""

from __future__ import annotations

import numpy as np

from pccompiler.frontend import builder as pcb
from pccompiler.errors import BuildError
from pccompiler.structures.common import Layering, check_positive, make_inputs, max_pow2_divisor


def hmm(seq_length: int, num_latents: int, num_emits: int, homogeneous: bool = True, *,
        seed: int = 0, dtype: type = np.float32, pyjuice_layers: bool = True) -> pcb.SumGroup:
    """Build an HMM circuit over variables 0..seq_length-1; returns the root.

    seq_length: T, the number of observed steps (>= 2).
    num_latents: K, hidden states.
    num_emits: categories of every observed variable.
    homogeneous: tie transitions and emissions across time steps.
    seed, dtype: random parameters and their float dtype.
    pyjuice_layers: add PyJuice's one-child wrapper product (see module doc).
    """
    check_positive(seq_length=seq_length, num_latents=num_latents, num_emits=num_emits)
    if seq_length < 2:
        raise BuildError(f"hmm: seq_length must be >= 2, got {seq_length}")
    rng = np.random.default_rng(seed)
    layers = Layering(block_size=min(max_pow2_divisor(num_latents), 1024), rng=rng, dtype=dtype,
                      pyjuice_layers=pyjuice_layers)
    last = make_inputs(seq_length - 1, num_latents, "categorical", num_emits, rng, dtype,
                       name=f"x{seq_length - 1}")
    first_sum = None
    current: pcb.Group = last
    for t in range(seq_length - 2, -1, -1):
        tie_input = last if homogeneous else None
        emit = make_inputs(t, num_latents, "categorical", num_emits, rng, dtype, name=f"x{t}",
                           tie=tie_input)
        tie_sum = first_sum if homogeneous else None
        trans = layers.summate([current], num_latents, tie=tie_sum, name=f"z{t + 1}")
        first_sum = first_sum or trans
        current = layers.multiply(emit, trans, name=f"p{t}")
    return layers.summate([current], 1, name="z0")


def hmm_num_edges(seq_length: int, num_latents: int, pyjuice_layers: bool = True) -> int:
    """PyJuice's edge count of `hmm(seq_length, num_latents, ...)`."""
    t, k = seq_length, num_latents
    return (t - 1) * k * k + 2 * k * (t - 1) + k + (k if pyjuice_layers else 0)
