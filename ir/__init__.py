"""pccompiler.ir: the protobuf IR (ir/pcir.proto), its helpers, checker,
file format and text dump.

    from pccompiler import ir
    model = ir.make_model(...)      # helpers.py
    ir.check(model)                 # checker.py
    ir.save(model, "m.pcir"); ir.load("m.pcir")   # fileio.py
    ir.parse_text(ir.dump_exact(model)) == model  # text_exact.py, text_parse.py
"""

from pccompiler.ir import pcir_pb2 as pcir
from pccompiler.ir.version import IR_VERSION, MIN_SUPPORTED_IR_VERSION
from pccompiler.ir.tensors import from_numpy, to_numpy
from pccompiler.ir.helpers import (
    TensorTable, child_sizes, edge_counts, group_edge_count, make_input_group, make_model, make_product_group,
    make_sum_group, make_tensor, make_variable, param_tensor_name, params_per_node,
    structure_hash, tensor_table, tie_targets,
)

from pccompiler.errors import CheckError, LoadError
from pccompiler.ir.checker import check
from pccompiler.ir.layout_checker import check_layout
from pccompiler.ir.fileio import load, save
from pccompiler.ir.text import dump_json, dump_layout_text, dump_text
from pccompiler.ir.text_exact import dump_exact
from pccompiler.ir.text_parse import parse_text

__all__ = [
    "pcir", "IR_VERSION", "MIN_SUPPORTED_IR_VERSION", "from_numpy", "to_numpy",
    "TensorTable", "child_sizes", "edge_counts", "group_edge_count", "make_input_group", "make_model", "make_product_group",
    "make_sum_group", "make_tensor", "make_variable", "param_tensor_name", "params_per_node",
    "structure_hash", "tensor_table", "tie_targets",
    "CheckError", "LoadError", "check", "check_layout", "load", "save",
    "dump_text", "dump_json", "dump_layout_text", "dump_exact", "parse_text",
]
