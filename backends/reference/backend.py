"""`ReferenceBackend`: the oracle as an object with a backend's name.

The numpy functions (`log_prob`, `sample`, ...) are the main API; this
class exposes them as methods so the reference can sit in the backend
registry next to the compiled backends. It works on a Model directly (no
Layout), caching the decoded view of the last model it saw.
"""

from __future__ import annotations

import numpy as np

from pccompiler import ir
from pccompiler.backends.reference.evaluate import log_prob, log_prob_groups
from pccompiler.ir.model_view import ModelView
from pccompiler.backends.reference.topdown import conditional_sample, mpe, sample


class ReferenceBackend:
    """float64 numpy interpreter of a pcir.Model (see the package docstring)."""

    name = "reference"

    def __init__(self) -> None:
        self._model: ir.pcir.Model | None = None
        self._view: ModelView | None = None

    def view(self, model: ir.pcir.Model) -> ModelView:
        """The decoded model (decoded once per model object)."""
        if self._model is not model:
            self._model, self._view = model, ModelView(model)
        return self._view

    def log_prob(self, model: ir.pcir.Model, x, missing=None) -> np.ndarray:
        return log_prob(self.view(model), x, missing)

    def log_prob_groups(self, model: ir.pcir.Model, x, missing=None,
                        semiring: str = "sum") -> list[np.ndarray]:
        return log_prob_groups(self.view(model), x, missing, semiring)

    def sample(self, model: ir.pcir.Model, num_samples: int, rng=None) -> np.ndarray:
        return sample(self.view(model), num_samples, rng)

    def conditional_sample(self, model: ir.pcir.Model, x, missing, rng=None) -> np.ndarray:
        return conditional_sample(self.view(model), x, missing, rng)

    def mpe(self, model: ir.pcir.Model, x, missing=None) -> tuple[np.ndarray, np.ndarray]:
        return mpe(self.view(model), x, missing)
