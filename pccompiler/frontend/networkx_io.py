"""networkx interop: node-level DAGs <-> group-level circuits.

A networkx circuit is a `DiGraph` with edges parent -> child and node
attributes `kind` ("sum" | "product" | "input"); input nodes carry `var`,
`dist` ("categorical" | "bernoulli" | "gaussian") and `params` (categorical
probabilities; [p] for Bernoulli; [mean, std] for Gaussian); sum edges
carry `weight`. The root is the unique node without parents.

Grouping (`from_networkx`): nodes are visited children first; each node's
group is keyed by what its group-level structure needs to agree on:
  input   (var, dist, number of params)
  product the tuple of its children's groups (scope follows)
  sum     the set of its children's groups (scope follows)
A group's key only names groups created earlier, so the group DAG is
acyclic with ids in creation order. Products get an index matrix; sums get
a sparse edge list over the concatenated child groups. This is a per-node
Python walk (networkx is per-node anyway): for hand-made and mid-size
circuits, not for 100M edges.
"""

from __future__ import annotations

from collections import defaultdict

import networkx as nx
import numpy as np

from pccompiler.frontend import builder as b
from pccompiler import ir
from pccompiler.errors import BuildError

__all__ = ["from_networkx", "groups_from_networkx", "to_networkx", "MAX_TO_NETWORKX_NODES"]

pcir = ir.pcir
MAX_TO_NETWORKX_NODES = 1_000_000
_DISTS = ("categorical", "bernoulli", "gaussian")


def _attr(G: nx.DiGraph, node, key: str):
    data = G.nodes[node]
    if key not in data:
        raise BuildError(f"node {node!r}: missing attribute {key!r}")
    return data[key]


def _topological(G: nx.DiGraph) -> tuple[list, object]:
    if not isinstance(G, nx.DiGraph):
        raise BuildError(f"from_networkx needs a networkx.DiGraph, got {type(G).__name__}")
    if G.number_of_nodes() == 0:
        raise BuildError("from_networkx: the graph is empty")
    try:
        order = list(nx.topological_sort(G))
    except nx.NetworkXUnfeasible:
        cycle = nx.find_cycle(G)
        raise BuildError(f"node {cycle[0][0]!r}: lies on a cycle "
                         f"{' -> '.join(repr(u) for u, _ in cycle)}") from None
    roots = [n for n in order if G.in_degree(n) == 0]
    if len(roots) != 1:
        raise BuildError(f"from_networkx: the circuit needs exactly one node without parents "
                         f"(the root), found {len(roots)}: {roots[:5]!r}")
    return order[::-1], roots[0]


def _input_key(G: nx.DiGraph, node) -> tuple:
    dist = _attr(G, node, "dist")
    var = _attr(G, node, "var")
    if dist not in _DISTS:
        raise BuildError(f"node {node!r}: dist must be one of {_DISTS}, got {dist!r}")
    if not isinstance(var, (int, np.integer)) or var < 0:
        raise BuildError(f"node {node!r}: var must be a non-negative int, got {var!r}")
    params = np.asarray(_attr(G, node, "params"), dtype=np.float64).reshape(-1)
    if dist == "bernoulli" and params.size != 1:
        raise BuildError(f"node {node!r}: bernoulli params must be [p], got {params.tolist()}")
    if dist == "gaussian" and params.size != 2:
        raise BuildError(f"node {node!r}: gaussian params must be [mean, std], "
                         f"got {params.tolist()}")
    return ("input", int(var), dist, params.size), params


def groups_from_networkx(G: nx.DiGraph) -> tuple[b.Group, dict]:
    """Build groups from a node-level DAG.

    Returns (root group, {node: (group, index in group)}).
    """
    order, root = _topological(G)
    where: dict = {}                          # node -> (group key, position)
    members: dict = defaultdict(list)         # group key -> nodes in order
    scope_of: dict = {}                       # group key -> frozenset of vars
    key_order: list = []                      # keys in creation order
    rank: dict = {}                           # group key -> its position in key_order
    input_params: dict = defaultdict(list)
    for node in order:
        kind = _attr(G, node, "kind")
        children = list(G.successors(node))
        if kind == "input":
            if children:
                raise BuildError(f"node {node!r}: an input node cannot have children")
            key, params = _input_key(G, node)
            scope = frozenset([key[1]])
        elif kind in ("product", "sum"):
            if not children:
                raise BuildError(f"node {node!r}: a {kind} node needs children")
            child_keys = [where[c][0] for c in children]
            scopes = [scope_of[k] for k in child_keys]
            if kind == "product":
                seen: set = set()
                for c, s in zip(children, scopes):
                    if seen & s:
                        raise BuildError(f"node {node!r}: product children overlap on variables "
                                         f"{sorted(seen & s)[:8]} (child {c!r}); "
                                         "not decomposable")
                    seen |= s
                scope = frozenset(seen)
                key = ("product", tuple(sorted(set(child_keys), key=rank.__getitem__)))
            else:
                for c, s in zip(children, scopes):
                    if s != scopes[0]:
                        raise BuildError(f"node {node!r}: sum children have different scopes "
                                         f"({children[0]!r}: {sorted(scopes[0])[:8]}, {c!r}: "
                                         f"{sorted(s)[:8]}); not smooth")
                weights = []
                for c in children:
                    w = G.edges[node, c].get("weight")
                    if w is None:
                        raise BuildError(f"node {node!r}: sum edge to {c!r} has no 'weight'")
                    weights.append(float(w))
                total = sum(weights)
                if min(weights) < 0 or abs(total - 1) > b.NORMALIZATION_TOL:
                    raise BuildError(f"node {node!r}: sum weights {weights[:8]} must be "
                                     f"non-negative and sum to 1 (sum {total:.6g})")
                scope = scopes[0]
                key = ("sum", tuple(sorted(set(child_keys), key=rank.__getitem__)))
        else:
            raise BuildError(f"node {node!r}: kind must be 'sum', 'product' or 'input', "
                             f"got {kind!r}")
        if node == root:   # the root gets a group of its own
            key = ("root",) + key
        if key not in scope_of:
            scope_of[key] = scope
            rank[key] = len(key_order)
            key_order.append(key)
        where[node] = (key, len(members[key]))
        members[key].append(node)
        if kind == "input":
            input_params[key].append(params)

    made: dict = {}
    for full_key in key_order:
        nodes = members[full_key]
        key = full_key[1:] if full_key[0] == "root" else full_key
        if key[0] == "input":
            _, var, dist, _ = key
            params = np.stack(input_params[full_key])
            made[full_key] = _make_input(var, dist, params, nodes[0])
        elif key[0] == "product":
            child_keys = key[1]
            column = {k: j for j, k in enumerate(child_keys)}
            index = np.zeros((len(nodes), len(child_keys)), dtype=np.int64)
            for i, node in enumerate(nodes):
                # Decomposability put each child in a different group.
                cols = [column[where[c][0]] for c in G.successors(node)]
                index[i, cols] = [where[c][1] for c in G.successors(node)]
            made[full_key] = b.multiply(*[made[k] for k in child_keys], index=index)
        else:
            child_keys = key[1]
            offsets = np.cumsum([0] + [len(members[k]) for k in child_keys])
            offset_of = {k: offsets[j] for j, k in enumerate(child_keys)}
            pairs, weights = [], []
            for i, node in enumerate(nodes):
                for c in G.successors(node):
                    ck, pos = where[c]
                    pairs.append((i, offset_of[ck] + pos))
                    weights.append(float(G.edges[node, c]["weight"]))
            made[full_key] = b.summate(*[made[k] for k in child_keys], num_nodes=len(nodes),
                                       edges=b.Sparse(np.array(pairs, dtype=np.int64)),
                                       weights=np.array(weights), normalize=True)
    node_map = {node: (made[key], pos) for node, (key, pos) in where.items()}
    return node_map[root][0], node_map


def _make_input(var: int, dist: str, params: np.ndarray, first_node) -> b.InputGroup:
    try:
        if dist == "categorical":
            return b.inputs(var, len(params), b.Categorical(params.shape[1], params=params))
        if dist == "bernoulli":
            return b.inputs(var, len(params), b.Bernoulli(params=params[:, 0]))
        return b.inputs(var, len(params), b.Gaussian(mean=params[:, 0], std=params[:, 1]))
    except BuildError as err:
        raise BuildError(f"input nodes of var {var} (first: {first_node!r}): {err}") from None


def from_networkx(G: nx.DiGraph, *, name: str = "", validate: bool = True,
                  num_vars: int | None = None) -> pcir.Model:
    """Lower a node-level networkx circuit to a Model (see the module docstring)."""
    from pccompiler.frontend.lowering import lower
    root, _ = groups_from_networkx(G)
    return lower(root, name=name, validate=validate, num_vars=num_vars)


def to_networkx(model: pcir.Model) -> nx.DiGraph:
    """Expand a Model into a node-level DiGraph: node (group id, i); attributes
    as `from_networkx` reads them. Refuses models over a million nodes."""
    total = sum(int(g.num_nodes) for g in model.groups)
    if total > MAX_TO_NETWORKX_NODES:
        raise BuildError(f"to_networkx: the model has {total} nodes; networkx graphs are "
                         f"limited to {MAX_TO_NETWORKX_NODES} nodes")
    from pccompiler.ir.model_view import ModelView
    view = ModelView(model)
    names = {pcir.CATEGORICAL_DIST: "categorical", pcir.BERNOULLI_DIST: "bernoulli",
             pcir.GAUSSIAN_DIST: "gaussian"}
    G = nx.DiGraph()
    # Roots first so that networkx's insertion order shows the root first.
    for g in reversed(view.groups):
        nodes = [(g.id, i) for i in range(g.num_nodes)]
        if g.kind == pcir.INPUT:
            G.add_nodes_from((node, {"kind": "input", "var": g.var, "dist": names[g.dist],
                                     "params": g.params[i].tolist()})
                             for i, node in enumerate(nodes))
            continue
        G.add_nodes_from(nodes, kind="sum" if g.kind == pcir.SUM else "product")
        if g.kind == pcir.PRODUCT:
            for j, c in enumerate(g.children):
                G.add_edges_from(zip(nodes, zip([c] * g.num_nodes, g.index[:, j].tolist())))
        else:
            e = g.edges
            child_pos = np.searchsorted(e.col_offsets, e.cols, side="right") - 1
            child_ids = np.asarray(g.children)[child_pos].tolist()
            local = (e.cols - e.col_offsets[child_pos]).tolist()
            G.add_edges_from(((g.id, p), (c, i), {"weight": w}) for p, c, i, w in
                             zip(e.parents.tolist(), child_ids, local,
                                 np.exp(e.log_weights).tolist()))
    root = (view.root, 0)
    reachable = nx.descendants(G, root) | {root}
    if len(reachable) != G.number_of_nodes():
        G = G.subgraph(reachable).copy()
    return G
