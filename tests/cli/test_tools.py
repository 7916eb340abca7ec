"""The tools behind `pcc stat | dot | dump` (tools/), checked against
numbers computed directly from the factory models."""

from __future__ import annotations

import numpy as np
import pytest

from pccompiler import ir
from pccompiler.errors import CheckError, LoadError
from pccompiler.ir import pcir
from pccompiler.tools.dot import to_dot
from pccompiler.tools.dump import dump_file
from pccompiler.tools.stat import group_depths, layout_stats, model_stats, size_histogram
from tests import factories as F


def test_size_histogram_buckets():
    sizes = np.array([1, 2, 3, 4, 7, 8, 1000, 1024])
    assert size_histogram(sizes) == {"1": 1, "2-3": 2, "4-7": 2, "8-15": 1, "512-1023": 1,
                                     "1024-2047": 1}
    assert size_histogram(np.zeros(0, np.int64)) == {}


def test_depths_follow_the_longest_child_chain():
    model = F.small_dense_model()
    assert group_depths(model).tolist() == [0, 0, 0, 0, 1, 1, 2, 2, 3, 4]
    stats = model_stats(model)
    assert stats["depth"] == 4 and stats["sum_patterns"] == {"dense": 3}
    assert stats["group_sizes"] == {"1": 1, "4-7": 9}


def test_layout_padding_matches_the_fan_in_arrays():
    model = F.small_sparse_model(seed=3)
    layout = F.naive_layout(model)
    table = ir.tensor_table(layout)
    entries = sum(int(table[p.block_num_children].sum()) for l in layout.layers
                  for p in l.sum_partitions)
    padded = sum(p.num_blocks * p.max_children for l in layout.layers for p in l.sum_partitions)
    row = layout_stats(layout)["sum_blocks_by_block_size"]["1"]
    assert row["child_entries"] == entries and row["padded_entries"] == padded
    assert row["padding"] == pytest.approx(1 - entries / padded)


def test_dot_has_one_box_per_group_and_one_arrow_per_link():
    model = F.tied_model()
    text = to_dot(model)
    links = sum(len(g.sum.children) + len(g.product.children) for g in model.groups)
    assert sum(line.strip().startswith(f"g{g.id} [shape") for g in model.groups
               for line in text.splitlines()) == len(model.groups)
    assert text.count(" -> ") == links + len(model.ties)
    model.groups[0].name = 'say "hi"\\'
    assert 'say \\"hi\\"\\\\' in to_dot(model)


def test_dot_of_a_node_form_circuit_draws_its_nodes_or_their_levels():
    """A node-form logic circuit has no groups: the graph is its nodes (it
    was an empty digraph), or one box per (level, kind) past the limit."""
    import pccompiler as pc
    from pccompiler.ir.nodes import node_arrays
    from tests.logic.circuits import shared_sdd
    model = pc.from_sdd(shared_sdd("road_r"), form="nodes")
    a = node_arrays(model)
    text = to_dot(model, max_groups=a.num_nodes)
    assert sum(line.startswith("  n") and "[shape=" in line
               for line in text.splitlines()) == a.num_nodes
    assert text.count(" -> ") == len(a.child_ids)
    assert f"n{int(a.roots[0])} [penwidth=2]" in text
    literal = next(line for line in text.splitlines() if line.startswith("  n0 "))
    assert "ellipse" in literal and "=" in literal.split("label=")[1]   # name=value
    summary = to_dot(model, max_groups=10)
    boxes = [line for line in summary.splitlines() if "[shape=" in line]
    assert boxes and all("nodes" in line for line in boxes)
    counts = [int(line.split("\\n")[1].split()[0]) for line in boxes]
    assert sum(counts) == a.num_nodes
    edge_counts = [int(line.split('label="')[1].split('"')[0])
                   for line in summary.splitlines() if " -> " in line]
    assert sum(edge_counts) == len(a.child_ids)


def test_dump_file_modes(tmp_path):
    model = F.small_dense_model()
    ir.save(model, tmp_path / "m.pcir")
    ir.save(F.naive_layout(model), tmp_path / "p.pcly")
    assert dump_file(tmp_path / "p.pcly").startswith("layout ir_version 1")
    with pytest.raises(LoadError, match="--layout needs a layout file"):
        dump_file(tmp_path / "m.pcir", layout=True)
    model.groups[6].sum.pattern = pcir.EDGE_PATTERN_UNSPECIFIED
    ir.save(model, tmp_path / "broken.pcir")
    with pytest.raises(CheckError, match=r"broken.pcir: \[edge-pattern\] group 6"):
        dump_file(tmp_path / "broken.pcir")
    text = dump_file(tmp_path / "broken.pcir", verify=False)     # --no-check still dumps
    assert len(text.splitlines()) == 3 + len(model.groups)
