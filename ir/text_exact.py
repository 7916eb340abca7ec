"""The exact text form of a Model: every field, every value, and a parser
(ir/text_parse.py) that reads it back.

`dump_text` (ir/text.py) is a lossy summary for people; this form is what a
golden test, a bug report or `PCC_DUMP` needs: a text you can read, diff and
edit, that turns back into the same Model (like MLIR's generic form or
ONNX's textual syntax). One statement per line, in this order:

    model "dense" ir_version=1 producer="pccompiler" producer_version="0.1.0"
    metadata "source" = "hclt"
    v0 = categorical "x0" cats=3
    g0 = input "in0" n=4 scope=[0] var=0 dist=categorical params="g0.params"
    g4 = product n=4 scope=[0,1] children=[g0,g1] index="g4.index"
    g6 = sum n=4 scope=[0,1] children=[g4] pattern=sparse edges="g6.edges" weights="g6.weights"
    nodes n=522 kind="nodes.kind" child_offsets="..." ... roots=[521]   (node form only)
    roots = [g9]
    tie g7 -> g6
    tensor "g0.params" float32 [4,3] = [
      0.2, 0.3, 0.5,
      ...
    ]

Strings are JSON strings; enums print as lower-case words (an unknown value
as its integer); a group's name follows its kind when it has one; `block=`
and `edges=` appear only when set. Tensors come last, in Model order, with
their values: integers in decimal, floats as the shortest decimal that reads
back to the same float of the tensor's dtype (`str(np.float32(x))`), NaNs
other than the canonical one as `nan:0x<bits>`, bfloat16 through float32.
A tensor whose bytes do not match its dims, or that is stored externally,
prints its bytes as `raw="<hex>"` and its reference as `location= offset=
length= sha256=` instead of values, so even a broken Model prints exactly.

Exactness: `parse_text(dump_exact(m)) == m` (protobuf equality) for every
Model whose groups each carry the sub-message of their kind and no other
(what `ir.make_*`, lowering and every pass produce). For another Model the
parsed one equals it after that normalisation: sub-messages not matching
the group's kind are dropped, which `ir.check` cannot see because it reads
only the sub-message of a group's kind. Unknown protobuf fields are dropped.
"""

from __future__ import annotations

import json

import numpy as np

from pccompiler.ir import pcir_pb2 as pcir
from pccompiler.ir.tensors import to_numpy
from pccompiler.ir.text import DIST, KIND, PATTERN

# Enum words (those of the summary dump, and two more), shared with the
# parser. Unknown values print as integers.
GROUP_KIND, DIST, PATTERN = KIND, DIST, PATTERN
VAR_KIND = {pcir.CATEGORICAL: "categorical", pcir.BINARY: "binary", pcir.REAL: "real"}
DTYPE = {v: pcir.DataType.Name(v).lower() for v in pcir.DataType.values() if v}

# Float dtypes printed as values, with the numpy type whose str() is the
# shortest round-tripping decimal, and the unsigned view used for NaN bits.
FLOAT_VIEW = {pcir.FLOAT64: (np.float64, "<u8"), pcir.FLOAT32: (np.float32, "<u4"),
              pcir.FLOAT16: (np.float16, "<u2"), pcir.BFLOAT16: (np.float32, "<u4")}
PER_LINE = 16     # integers per data line (floats: half as many)


def quote(text: str) -> str:
    """A JSON string literal (escapes quotes, backslashes, control chars)."""
    return json.dumps(text, ensure_ascii=False)


def enum_word(table: dict[int, str], value: int) -> str:
    return table.get(value, str(int(value)))


def ref_list(ids) -> str:
    return "[" + ",".join(f"g{int(i)}" for i in ids) + "]"


def int_list(values) -> str:
    return "[" + ",".join(str(int(v)) for v in values) + "]"


def bfloat16_to_float32(raw: bytes) -> np.ndarray:
    """bfloat16 bytes as the float32 values they denote (exact: a bfloat16
    is the top half of a float32)."""
    bits = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
    return bits.view(np.float32)


def _float_words(values: np.ndarray, dtype: int) -> list[str]:
    np_type, bits_view = FLOAT_VIEW[dtype]
    flat = np.ascontiguousarray(values, dtype=np_type).ravel()
    words = [str(v) for v in flat]
    nan = np.flatnonzero(np.isnan(flat))
    if len(nan):
        canonical = np.array([np.nan], dtype=np_type).view(bits_view)[0]
        bits = flat.view(bits_view.replace("<", "="))
        width = flat.dtype.itemsize * 2
        for i in nan[bits[nan] != canonical]:
            words[i] = f"nan:0x{int(bits[i]):0{width}x}"
    return words


def tensor_words(t: pcir.Tensor) -> list[str] | None:
    """The tensor's values as text, or None when they cannot be decoded from
    inline bytes (external data, a byte count that contradicts dims, an
    unknown dtype): the printer then shows the raw bytes."""
    if t.HasField("external"):
        return None
    if t.dtype == pcir.BFLOAT16:
        if len(t.raw_data) != 2 * int(np.prod(t.dims, dtype=np.int64)) or min(t.dims, default=0) < 0:
            return None
        return _float_words(bfloat16_to_float32(t.raw_data), pcir.BFLOAT16)
    try:
        values = to_numpy(t)
    except Exception:  # noqa: BLE001 - any undecodable tensor prints as bytes
        return None
    if t.dtype in FLOAT_VIEW:
        return _float_words(values, t.dtype)
    return [str(v) for v in values.ravel().tolist()]


def _tensor_lines(t: pcir.Tensor) -> list[str]:
    head = f"tensor {quote(t.name)} {enum_word(DTYPE, t.dtype)} {int_list(t.dims)}"
    words = tensor_words(t)
    if words is None:
        parts = [head]
        if t.raw_data or not t.HasField("external"):
            parts.append(f"raw={quote(t.raw_data.hex())}")
        if t.HasField("external"):
            e = t.external
            parts.append(f"location={quote(e.location)} offset={e.offset} length={e.length} "
                         f"sha256={quote(e.sha256)}")
        return [" ".join(parts)]
    budget = PER_LINE // 2 if t.dtype in FLOAT_VIEW else PER_LINE
    last = int(t.dims[-1]) if len(t.dims) else 1
    # Whole rows of the last dim per line (two spaces between rows), or
    # `budget` values per line when a row is longer than that.
    row = last if 0 < last <= budget else budget
    rows = [", ".join(words[i:i + row]) for i in range(0, len(words), row)]
    step = max(1, budget // row)
    lines = [",  ".join(rows[i:i + step]) for i in range(0, len(rows), step)]
    if len(lines) <= 1:
        return [f"{head} = [" + "".join(lines) + "]"]
    return [f"{head} = ["] + [f"  {r}," for r in lines[:-1]] + [f"  {lines[-1]}", "]"]


def _group_line(g: pcir.Group) -> str:
    parts = [f"g{g.id} = {enum_word(GROUP_KIND, g.kind)}"]
    if g.name:
        parts.append(quote(g.name))
    parts.append(f"n={g.num_nodes} scope={int_list(g.scope)}")
    if g.kind == pcir.INPUT:
        parts.append(f"var={g.input.variable} dist={enum_word(DIST, g.input.dist)} "
                     f"params={quote(g.input.params)}")
    elif g.kind == pcir.PRODUCT:
        parts.append(f"children={ref_list(g.product.children)} "
                     f"index={quote(g.product.child_index)}")
    elif g.kind == pcir.SUM:
        s = g.sum
        parts.append(f"children={ref_list(s.children)} pattern={enum_word(PATTERN, s.pattern)}")
        if s.block_size:
            parts.append(f"block={s.block_size}")
        if s.edges:
            parts.append(f"edges={quote(s.edges)}")
        parts.append(f"weights={quote(s.weights)}")
    return " ".join(parts)


# NodeCircuit tensor fields in the order `nodes` prints them.
NODE_FIELDS = ("kind", "child_offsets", "child_ids", "sum_weights", "input_vars",
               "input_params", "variable_order", "scope_lo", "scope_hi")


def _nodes_line(nc: pcir.NodeCircuit) -> str:
    """The node form: `nodes n=N kind="..." ... roots=[r]` (node roots are
    plain ids, not group references)."""
    parts = [f"nodes n={nc.num_nodes}"]
    parts += [f"{name}={quote(getattr(nc, name))}" for name in NODE_FIELDS]
    parts.append(f"roots={int_list(nc.roots)}")
    return " ".join(parts)


def dump_exact(model: pcir.Model) -> str:
    """The exact, parseable text of a Model (see the module docstring);
    `ir.parse_text` reads it back."""
    lines = [f"model {quote(model.name)} ir_version={model.ir_version} "
             f"producer={quote(model.producer_name)} "
             f"producer_version={quote(model.producer_version)}"]
    lines += [f"metadata {quote(k)} = {quote(v)}" for k, v in sorted(model.metadata.items())]
    lines += [f"v{i} = {enum_word(VAR_KIND, v.kind)} {quote(v.name)} cats={v.num_cats}"
              for i, v in enumerate(model.variables)]
    lines += [_group_line(g) for g in model.groups]
    if model.HasField("nodes"):
        lines.append(_nodes_line(model.nodes))
    lines.append(f"roots = {ref_list(model.roots)}")
    lines += [f"tie g{t.group} -> g{t.target}" for t in model.ties]
    for t in model.tensors:
        lines += _tensor_lines(t)
    return "\n".join(lines) + "\n"


__all__ = ["dump_exact", "tensor_words", "GROUP_KIND", "DIST", "PATTERN", "VAR_KIND", "DTYPE",
           "NODE_FIELDS"]
