"""A float64 evaluator of a Model and one exact EM step, for these tests only.

It reads the IR directly (every sum group expanded to a dense [N, C]
matrix plus an edge mask), so it is an oracle independent of both
pccompiler's backends and PyJuice. Tiny models only.

EM: the expected counts are F = theta * d(sum_b log p(x_b)) / d(theta)
(autograd, tied groups share one leaf tensor so their counts add), and the
update is the one both libraries document:
    theta <- (1 - s) theta + s (F + a / n) / (sum F + a)
with n the number of edges of the node (categories of an input node).
"""

from __future__ import annotations

import numpy as np
import torch

from pccompiler import ir
from pccompiler.ir import pcir


def dense_sum(model: pcir.Model, owner: pcir.Group, cols: int) -> tuple[np.ndarray, np.ndarray]:
    """(weights [N, C], edge mask [N, C]) of the sum group that owns the parameters."""
    table = ir.tensor_table(model)
    w = np.asarray(table[owner.sum.weights], dtype=np.float64)
    n = owner.num_nodes
    if owner.sum.pattern == pcir.DENSE:
        return w, np.ones_like(w, dtype=bool)
    edges = np.asarray(table[owner.sum.edges], dtype=np.int64)
    dense, mask = np.zeros((n, cols)), np.zeros((n, cols), dtype=bool)
    if owner.sum.pattern == pcir.SPARSE:
        dense[edges[:, 0], edges[:, 1]] = w
        mask[edges[:, 0], edges[:, 1]] = True
        return dense, mask
    b = owner.sum.block_size
    dense.reshape(n // b, b, cols // b, b)[edges[:, 0], :, edges[:, 1], :] = w
    mask.reshape(n // b, b, cols // b, b)[edges[:, 0], :, edges[:, 1], :] = True
    return dense, mask


def input_table(model: pcir.Model, owner: pcir.Group) -> np.ndarray:
    p = np.asarray(ir.tensor_table(model)[owner.input.params], dtype=np.float64)
    if owner.input.dist == pcir.BERNOULLI_DIST:
        return np.concatenate([1.0 - p.reshape(-1, 1), p.reshape(-1, 1)], axis=1)
    return p


class ExactCircuit:
    """Dense float64 torch parameters of a Model, one leaf per tie class."""

    def __init__(self, model: pcir.Model):
        self.model = model
        self.table = ir.tensor_table(model)
        self.owner = ir.tie_targets(model)
        self.params: dict[int, torch.Tensor] = {}
        self.masks: dict[int, torch.Tensor] = {}
        for g in model.groups:
            if self.owner.get(g.id, g.id) != g.id:
                continue
            if g.kind == pcir.INPUT:
                t = input_table(model, g)
                self.params[g.id], self.masks[g.id] = torch.tensor(t), torch.ones(t.shape, dtype=torch.bool)
            elif g.kind == pcir.SUM:
                cols = sum(model.groups[c].num_nodes for c in g.sum.children)
                w, m = dense_sum(model, g, cols)
                self.params[g.id], self.masks[g.id] = torch.tensor(w), torch.tensor(m)

    def log_likelihood(self, x: np.ndarray) -> torch.Tensor:
        """[B] log-probability of the first node of the first root."""
        xt = torch.as_tensor(x, dtype=torch.long)
        values: dict[int, torch.Tensor] = {}
        for g in self.model.groups:
            theta = self.params.get(self.owner.get(g.id, g.id))
            if g.kind == pcir.INPUT:
                values[g.id] = torch.log(theta[:, xt[:, g.input.variable]])
            elif g.kind == pcir.PRODUCT:
                index = torch.as_tensor(np.asarray(self.table[g.product.child_index], dtype=np.int64))
                values[g.id] = sum(values[c][index[:, j]] for j, c in enumerate(g.product.children))
            else:
                v = torch.cat([values[c] for c in g.sum.children], dim=0)
                top = v.max(dim=0).values.detach()
                values[g.id] = torch.log(theta @ torch.exp(v - top)) + top
        return values[self.model.roots[0]][0]

    def em_step(self, x: np.ndarray, step_size: float, pseudocount: float) -> None:
        """One mini-batch EM step on batch x (in place)."""
        for p in self.params.values():
            p.requires_grad_(True)
        self.log_likelihood(x).sum().backward()
        with torch.no_grad():
            for gid, theta in self.params.items():
                mask = self.masks[gid]
                flows = theta * theta.grad
                count = mask.sum(dim=1, keepdim=True)
                new = (flows + pseudocount / count) / (flows.sum(dim=1, keepdim=True) + pseudocount)
                theta.mul_(1 - step_size).add_(step_size * torch.where(mask, new, 0.0))
                theta.grad = None
        for p in self.params.values():
            p.requires_grad_(False)


def log_likelihood(model: pcir.Model, x: np.ndarray) -> np.ndarray:
    """[B] float64 log-probability of x under the Model's parameters."""
    with torch.no_grad():
        return ExactCircuit(model).log_likelihood(x).numpy()
