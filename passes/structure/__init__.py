"""Structure changes of a circuit: pure functions Model -> Model.

- `prune_edges`: keep the highest-scoring sum edges (globally), drop the
  nodes no longer reachable from a root, renormalise (passes/structure/prune.py).
- `grow_model`: copy every node `factor` times, wiring the copies so the
  distribution is unchanged at zero noise, then perturb (passes/structure/grow.py).

They are not registered passes (they change the distribution, which no
pass may do); their output goes through the pass pipeline again, so block
detection and kernel choice follow the new sparsity (DESIGN.md "Queries,
semirings, structure changes"). Scores such as edge flows need a backend:
`pccompiler.train.prune_grow` computes them and calls these.
"""

from pccompiler.passes.structure.grow import grow_model
from pccompiler.passes.structure.prune import prune_edges

__all__ = ["grow_model", "prune_edges"]
