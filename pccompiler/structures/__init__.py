"""The standard circuit structures, built as builder groups.

    import pccompiler as pc
    root = pc.hclt(data, num_latents=32)            # Chow-Liu tree learned from data
    root = pc.hclt(data, 12, num_trees=4, num_tree_candidates=20)   # mixture of 4 HCLTs
    root = pc.pd((28, 28), num_latents=32, split_intervals=7)
    root = pc.rat_spn(784, num_latents=64, depth=6, num_repetitions=8)
    root = pc.hmm(seq_length=32, num_latents=256, num_emits=4096)
    model = pc.lower(root)

Each returns the root group; `pc.lower(root)` makes the Model. Shapes,
pairings and edge counts follow PyJuice 2.6.3 (docs/notes/pyjuice-study.md),
so benchmarks against PyJuice compare the same circuits.
"""

from pccompiler.structures.chow_liu import (chow_liu_tree, max_spanning_tree, mutual_information,
                                            soft_binned_mutual_information, top_k_spanning_trees)
from pccompiler.structures.common import edge_counts
from pccompiler.structures.hclt import hclt, hclt_num_edges, hidden_tree
from pccompiler.structures.hmm import hmm, hmm_num_edges
from pccompiler.structures.pd import pd, pd_num_edges
from pccompiler.structures.rat_spn import rat_spn, rat_spn_num_edges

__all__ = [
    "chow_liu_tree", "max_spanning_tree", "mutual_information", "soft_binned_mutual_information",
    "top_k_spanning_trees",
    "edge_counts",
    "hclt", "hclt_num_edges", "hidden_tree", "hmm", "hmm_num_edges", "pd", "pd_num_edges",
    "rat_spn", "rat_spn_num_edges",
]
