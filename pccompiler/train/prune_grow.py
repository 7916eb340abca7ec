"""Prune and grow a compiled circuit, and the prune-grow-train loop
(Dang, Liu & Van den Broeck, "Sparse Probabilistic Circuits via Pruning and
Growing", NeurIPS 2022).

- `edge_flows(circuit, data)`: every sum edge's circuit flow summed over
  `data` (the EM statistic: w x flow(parent) x p(child) / p(parent) per
  sample), per sum group of `circuit.model` in its weight tensor's shape.
- `prune(circuit, data, keep)`: `passes.structure.prune_edges` by those flows.
- `grow(circuit_or_model, factor, noise, seed)`: `passes.structure.grow_model`.
- `recompile(model, like)`: the passes again, for `like`'s backend, device
  and dtype (block detection follows the new sparsity).
- `prune_grow_train`: rounds of prune -> grow -> EM (`RoundStats` per round).

Both structure changes return a new pcir.Model checked by `ir.check`
(smoothness, decomposability, normalised weights, shapes).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any, Callable

import numpy as np

from pccompiler import ir
from pccompiler.backends.common.packing import unpack_parameters
from pccompiler.ir import pcir
from pccompiler.passes.structure import grow_model, prune_edges
from pccompiler.passes.structure.graph import edges_of, require_groups
from pccompiler.train.em import evaluate, train_em
from pccompiler.train.progress import batches


def edge_flows(circuit, data: np.ndarray, batch_size: int = 1024) -> dict[int, np.ndarray]:
    """{sum group id of circuit.model: summed edge flows in its weight shape}.

    Every member of a tie class gets the class's flows (the shared
    accumulator sums them), so pruning ranks tied edges by their total flow.

    Leaves the circuit's parameters and (zeroed) flow accumulators as EM
    would find them after `zero_flows`."""
    circuit.zero_flows()
    for rows in batches(len(data), batch_size):
        circuit.accumulate_flows(data[rows])
    eng = circuit.engine
    sum_flows = eng.sum_param_flows.detach().cpu().numpy().astype(np.float64)  # a copy
    circuit.zero_flows()
    model = circuit.model
    flows = unpack_parameters(model, circuit.layout, sum_flows,
                              np.zeros(int(circuit.layout.num_input_params)), np.float64)
    # a tied group reads its class's tensor, whose flows sum the class's members
    return {g.id: flows[ir.param_tensor_name(model, g)] for g in model.groups
            if g.kind == pcir.SUM}


def prune(circuit, data: np.ndarray, keep: float = 0.5, batch_size: int = 1024) -> pcir.Model:
    """circuit's Model (current parameters) pruned to the `keep` fraction of
    sum edges with the largest flows on `data` (passes/structure/prune.py says
    exactly what is kept); checked by `ir.check`."""
    model = circuit.to_model()
    require_groups(model, "prune")          # before the flows, not after
    scores = edge_flows(circuit, data, batch_size)
    model, _ = prune_edges(model, scores, keep)
    ir.check(model)
    return model


def grow(circuit_or_model, factor: int = 2, noise: float = 0.0, seed: int = 0) -> pcir.Model:
    """Every node copied `factor` times, parameters perturbed by `noise`
    (passes/structure/grow.py); checked by `ir.check`."""
    model = circuit_or_model if isinstance(circuit_or_model, pcir.Model) else \
        circuit_or_model.to_model()
    grown = grow_model(model, factor, noise, seed)
    ir.check(grown)
    return grown


def recompile(model: pcir.Model, like) -> Any:
    """`pccompiler.compile(model)` for the backend, device and dtype of `like`."""
    from pccompiler.driver import compile as compile_model
    return compile_model(model, backend=like.backend_name, device=str(like.device),
                         dtype=like.options.dtype)


def sum_edge_count(model: pcir.Model) -> int:
    """Stored sum edges with a non-zero weight (padding excluded); a tied
    group counts its edges too (they read its class's weights)."""
    table = ir.tensor_table(model)
    return int(sum(np.count_nonzero(edges_of(model, g, table,
                                             table[ir.param_tensor_name(model, g)])[2])
                   for g in model.groups if g.kind == pcir.SUM))


@dataclass
class RoundStats:
    round: int
    edges_before: int        # sum edges (non-zero weight) entering the round
    edges_pruned: int        # after pruning
    edges_grown: int         # after growing
    edges_trained: int       # after the round's EM (equal to edges_grown: EM keeps the
                             # zero-weight pseudo-edges the passes pad blocks with at 0)
    train_ll: float          # after the round's EM epochs
    valid_ll: float | None
    seconds: float

    def line(self) -> str:
        valid = f"  valid LL {self.valid_ll:.4f}" if self.valid_ll is not None else ""
        return (f"round {self.round:2d}  edges {self.edges_before} -> pruned "
                f"{self.edges_pruned} -> grown {self.edges_grown} -> trained "
                f"{self.edges_trained}  train LL "
                f"{self.train_ll:.4f}{valid}  {self.seconds:.2f}s")

    def as_dict(self) -> dict:
        return asdict(self)


def prune_grow_train(circuit, train: np.ndarray, valid: np.ndarray | None = None,
                     rounds: int = 1, keep: float = 0.5, factor: int = 2, noise: float = 0.1,
                     epochs_per_round: int = 1, seed: int = 0,
                     log: Callable[[str], None] | None = None, **em_options: Any
                     ) -> tuple[Any, list[RoundStats]]:
    """The paper's loop: each round prunes to `keep` of the sum edges by
    their flows on `train`, grows every node `factor` times with `noise`
    (seed `seed + round`), recompiles for `circuit`'s backend and runs
    `epochs_per_round` epochs of `train_em(**em_options)`. With keep = 1 /
    factor the edge count stays near constant round to round. Returns the
    final circuit and one RoundStats per round (`log` gets its line)."""
    history = []
    for r in range(1, rounds + 1):
        start = time.perf_counter()
        before = sum_edge_count(circuit.to_model())
        pruned = prune(circuit, train, keep)
        grown = grow(pruned, factor, noise, seed + r)
        circuit = recompile(grown, circuit)
        epochs = train_em(circuit, train, valid, epochs=epochs_per_round, seed=seed + r,
                          **em_options)
        train_ll = epochs[-1].train_ll if epochs else evaluate(circuit, train)
        valid_ll = evaluate(circuit, valid) if valid is not None else None
        stats = RoundStats(r, before, sum_edge_count(pruned), sum_edge_count(grown),
                           sum_edge_count(circuit.to_model()), train_ll, valid_ll,
                           time.perf_counter() - start)
        history.append(stats)
        if log:
            log(stats.line())
    return circuit, history
