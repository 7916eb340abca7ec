"""`parse_text`: read the exact text form (ir/text_exact.py) back into a Model.

The grammar is the printer's, one statement per line (tensor values may
span lines up to the closing `]`); `#` starts a comment outside strings and
blank lines are ignored, so a hand-edited fixture may carry notes. Any text
that does not fit raises `LoadError` naming the line number and what was
expected there, so a broken golden fixture points at its own mistake.
Values are not checked against the IR's invariants here: that is
`ir.check`'s job (a parsed Model may be deliberately broken, for tests).
"""

from __future__ import annotations

import json
import math
import re

import numpy as np

from pccompiler.errors import LoadError
from pccompiler.ir import pcir_pb2 as pcir
from pccompiler.ir.text_exact import (DIST, DTYPE, FLOAT_VIEW, GROUP_KIND, NODE_FIELDS, PATTERN,
                                      VAR_KIND)

_TOKEN = re.compile(r'\s*(?:(?P<str>"(?:[^"\\]|\\.)*")|(?P<punct>->|[\[\],=])'
                    r'|(?P<word>[A-Za-z0-9_.+\-:]+)|(?P<comment>#.*)|(?P<bad>\S))')
# A line that starts a statement (not a line of values: nan, inf, numbers).
_STATEMENT = re.compile(r"\s*(?!nan\b|nan:|inf\b)[A-Za-z_]")
_INT_DTYPES = {pcir.INT32: "<i4", pcir.INT64: "<i8", pcir.UINT8: "u1"}

# Keys of each group kind: (required, optional).
_GROUP_KEYS = {
    pcir.INPUT: ({"n", "scope", "var", "dist", "params"}, set()),
    pcir.PRODUCT: ({"n", "scope", "children", "index"}, set()),
    pcir.SUM: ({"n", "scope", "children", "pattern", "weights"}, {"block", "edges"}),
}


class _Tokens:
    """The tokens of one statement, with the line number for errors."""

    def __init__(self, line: str, lineno: int):
        self.lineno = lineno
        self.items: list[tuple[str, str, int]] = []     # (kind, text, end offset)
        for m in _TOKEN.finditer(line):
            kind = m.lastgroup
            if kind is None or kind == "comment":
                continue
            if kind == "bad":
                raise self.error(f"unexpected character {m.group(kind)!r}")
            self.items.append((kind, m.group(kind), m.end()))
        self.pos = 0

    def error(self, message: str) -> LoadError:
        return LoadError(f"line {self.lineno}: {message}")

    def at_end(self) -> bool:
        return self.pos >= len(self.items)

    def peek(self) -> str | None:
        return None if self.at_end() else self.items[self.pos][1]

    def take(self, what: str, kind: str | None = None, text: str | None = None) -> str:
        """The next token, which must be of `kind` (and read `text`)."""
        if self.at_end():
            raise self.error(f"expected {what}, found the end of the line")
        k, t, _ = self.items[self.pos]
        if (kind and k != kind) or (text is not None and t != text):
            raise self.error(f"expected {what}, found {t!r}")
        self.pos += 1
        return t

    def string(self, what: str) -> str:
        raw = self.take(what, "str")
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise self.error(f"bad string {raw}: {exc}") from None

    def end_offset(self) -> int:
        """Character offset just after the last token taken."""
        return self.items[self.pos - 1][2]

    def word_list(self, what: str) -> list[str]:
        self.take(f"'[' starting {what}", "punct", "[")
        out: list[str] = []
        while self.peek() != "]":
            if out:
                self.take(f"',' or ']' in {what}", "punct", ",")
            out.append(self.take(f"an item of {what}", "word"))
        self.pos += 1
        return out

    def attrs(self, what: str) -> dict[str, tuple[str, object]]:
        """`key=value ...` up to the end, as key -> (kind, value): kind "str"
        (a decoded string), "word" or "list" (of words)."""
        out: dict[str, tuple[str, object]] = {}
        while not self.at_end():
            key = self.take(f"a key=value of {what}", "word")
            if key in out:
                raise self.error(f"{what}: key {key!r} given twice")
            self.take(f"'=' after {key!r}", "punct", "=")
            nxt = self.items[self.pos][0] if not self.at_end() else None
            if nxt == "str":
                out[key] = ("str", self.string(f"{key} value"))
            elif self.peek() == "[":
                out[key] = ("list", self.word_list(key))
            else:
                out[key] = ("word", self.take(f"a value for {key!r}", "word"))
        return out


def _int(tok: _Tokens, text: object, what: str) -> int:
    try:
        return int(str(text))
    except ValueError:
        raise tok.error(f"expected an integer for {what}, found {text!r}") from None


def _ref(tok: _Tokens, text: str, what: str) -> int:
    if not text.startswith("g"):
        raise tok.error(f"expected a group reference g<id> for {what}, found {text!r}")
    return _int(tok, text[1:], what)


def _enum(tok: _Tokens, table: dict[int, str], text: object, what: str) -> int:
    for value, word in table.items():
        if word == text:
            return value
    try:
        return int(str(text))
    except ValueError:
        raise tok.error(f"expected {what} ({' | '.join(table.values())}), "
                        f"found {text!r}") from None


def _checked_keys(tok: _Tokens, attrs: dict, required: set, optional: set, what: str) -> None:
    missing = sorted(required - set(attrs))
    unknown = sorted(set(attrs) - required - optional)
    if missing:
        raise tok.error(f"{what}: missing {', '.join(missing)}")
    if unknown:
        raise tok.error(f"{what}: unknown key {unknown[0]!r}; expected "
                        f"{', '.join(sorted(required | optional))}")


_KIND_TEXT = {"str": "a \"string\"", "word": "a word or number", "list": "a [list]"}


class _Attrs:
    """Typed access to the key=value pairs of one statement."""

    def __init__(self, tok: _Tokens, what: str, required: set, optional: set = frozenset()):
        self.tok, self.what = tok, what
        self.items = tok.attrs(what)
        _checked_keys(tok, self.items, required, optional, what)

    def __contains__(self, key: str) -> bool:
        return key in self.items

    def get(self, key: str, kind: str):
        found, value = self.items[key]
        if found != kind:
            shown = value if found != "list" else "[...]"
            raise self.tok.error(f"{self.what}: expected {_KIND_TEXT[kind]} for {key}, "
                                 f"found {shown!r}")
        return value

    def string(self, key: str, default: str | None = None) -> str:
        return default if default is not None and key not in self else self.get(key, "str")

    def int(self, key: str, default: int | None = None) -> int:
        if default is not None and key not in self:
            return default
        return _int(self.tok, self.get(key, "word"), f"{self.what}: {key}")

    def enum(self, key: str, table: dict[int, str], what: str) -> int:
        return _enum(self.tok, table, self.get(key, "word"), what)

    def ints(self, key: str, refs: bool = False) -> list[int]:
        convert = _ref if refs else _int
        return [convert(self.tok, w, f"{self.what}: {key}") for w in self.get(key, "list")]


class _Parser:
    def __init__(self, text: str):
        self.lines = text.split("\n")
        self.i = 0
        self.model = pcir.Model()
        self.seen_model = False

    def run(self) -> pcir.Model:
        while self.i < len(self.lines):
            lineno, line = self.i + 1, self.lines[self.i]
            self.i += 1
            tok = _Tokens(line, lineno)
            if tok.at_end():
                continue
            head = tok.peek()
            if not self.seen_model and head != "model":
                raise tok.error(f"expected 'model \"name\" ir_version=...' first, found {head!r}")
            if head == "model":
                self._model(tok)
            elif head == "metadata":
                self._metadata(tok)
            elif head == "roots":
                tok.pos += 1
                tok.take("'=' after roots", "punct", "=")
                self.model.roots.extend(_ref(tok, w, "roots") for w in tok.word_list("roots"))
            elif head == "tie":
                self._tie(tok)
            elif head == "nodes":
                self._nodes(tok)
            elif head == "tensor":
                self._tensor(tok, line)
            elif re.fullmatch(r"v-?\d+", head or ""):
                self._variable(tok)
            elif re.fullmatch(r"g-?\d+", head or ""):
                self._group(tok)
            else:
                raise tok.error(f"expected a statement (model, metadata, v<i> =, g<i> =, nodes, "
                                f"roots, tie, tensor), found {head!r}")
            if not tok.at_end():
                raise tok.error(f"unexpected {tok.peek()!r} after the statement")
        if not self.seen_model:
            raise LoadError(f"line {len(self.lines)}: expected 'model ...', found no statement")
        return self.model

    def _model(self, tok: _Tokens) -> None:
        if self.seen_model:
            raise tok.error("a second 'model' statement (one model per text)")
        self.seen_model = True
        tok.pos += 1
        m = self.model
        m.name = tok.string("the model name")
        attrs = _Attrs(tok, "model", {"ir_version", "producer", "producer_version"})
        m.ir_version = attrs.int("ir_version")
        m.producer_name = attrs.string("producer")
        m.producer_version = attrs.string("producer_version")

    def _metadata(self, tok: _Tokens) -> None:
        tok.pos += 1
        key = tok.string("a metadata key")
        tok.take("'=' after the metadata key", "punct", "=")
        if key in self.model.metadata:
            raise tok.error(f"metadata key {key!r} given twice")
        self.model.metadata[key] = tok.string("a metadata value")

    def _variable(self, tok: _Tokens) -> None:
        label = tok.take("v<i>", "word")
        index = len(self.model.variables)
        if label != f"v{index}":
            raise tok.error(f"expected v{index} (variables are numbered in order), found {label}")
        tok.take("'=' after the variable label", "punct", "=")
        kind = _enum(tok, VAR_KIND, tok.take("a variable kind", "word"), "a variable kind")
        name = tok.string("the variable name")
        attrs = _Attrs(tok, label, {"cats"})
        self.model.variables.add(name=name, kind=kind, num_cats=attrs.int("cats"))

    def _group(self, tok: _Tokens) -> None:
        label = tok.take("g<id>", "word")
        tok.take("'=' after the group label", "punct", "=")
        kind = _enum(tok, GROUP_KIND, tok.take("a group kind", "word"), "a group kind")
        g = self.model.groups.add(id=_int(tok, label[1:], "the group id"), kind=kind)
        if not tok.at_end() and tok.items[tok.pos][0] == "str":
            g.name = tok.string("the group name")
        required, optional = _GROUP_KEYS.get(kind, ({"n", "scope"}, set()))
        attrs = _Attrs(tok, f"group {label}", required, optional)
        g.num_nodes = attrs.int("n")
        g.scope.extend(attrs.ints("scope"))
        if kind == pcir.INPUT:
            g.input.variable = attrs.int("var")
            g.input.dist = attrs.enum("dist", DIST, "a distribution")
            g.input.params = attrs.string("params")
        elif kind == pcir.PRODUCT:
            g.product.children.extend(attrs.ints("children", refs=True))
            g.product.child_index = attrs.string("index")
        elif kind == pcir.SUM:
            g.sum.children.extend(attrs.ints("children", refs=True))
            g.sum.pattern = attrs.enum("pattern", PATTERN, "an edge pattern")
            g.sum.block_size = attrs.int("block", 0)
            g.sum.edges = attrs.string("edges", "")
            g.sum.weights = attrs.string("weights")

    def _nodes(self, tok: _Tokens) -> None:
        tok.pos += 1
        attrs = _Attrs(tok, "nodes", {"n", "roots", *NODE_FIELDS})
        nc = self.model.nodes
        nc.num_nodes = attrs.int("n")
        for name in NODE_FIELDS:
            setattr(nc, name, attrs.string(name))
        nc.roots.extend(attrs.ints("roots"))

    def _tie(self, tok: _Tokens) -> None:
        tok.pos += 1
        group = _ref(tok, tok.take("the tied group g<id>", "word"), "tie")
        tok.take("'->' in tie", "punct", "->")
        target = _ref(tok, tok.take("the tie target g<id>", "word"), "tie")
        self.model.ties.add(group=group, target=target)

    def _tensor(self, tok: _Tokens, line: str) -> None:
        tok.pos += 1
        t = self.model.tensors.add(name=tok.string("the tensor name"))
        t.dtype = _enum(tok, DTYPE, tok.take("a dtype", "word"), "a dtype")
        t.dims.extend(_int(tok, w, "dims") for w in tok.word_list("dims"))
        if tok.peek() == "=":
            tok.pos += 1
            self._values(t, tok, line[tok.end_offset():])
            tok.pos = len(tok.items)
            return
        what = f"tensor {t.name!r}"
        ext = {"location", "offset", "length", "sha256"}
        if tok.peek() not in {"raw"} | ext:
            found = "the end of the line" if tok.at_end() else repr(tok.peek())
            raise tok.error(f"{what}: expected '= [values]', raw= or location=, found {found}")
        attrs = _Attrs(tok, what, set(), {"raw"} | ext)
        given = set(attrs.items)
        if ext & given:
            _checked_keys(tok, attrs.items, ext, {"raw"}, what)
        if "raw" in attrs:
            try:
                t.raw_data = bytes.fromhex(attrs.string("raw"))
            except ValueError:
                raise tok.error(f"{what}: raw= must be hex digits") from None
        if "location" in attrs:
            e = t.external
            e.SetInParent()
            e.location, e.sha256 = attrs.string("location"), attrs.string("sha256")
            e.offset, e.length = attrs.int("offset"), attrs.int("length")

    def _values(self, t: pcir.Tensor, tok: _Tokens, rest: str) -> None:
        """Read `[v, v, ...]` from `rest` and the following lines."""
        start = tok.lineno
        body = rest.strip()
        if not body.startswith("["):
            raise tok.error(f"tensor {t.name!r}: expected '[' after '='")
        chunks = [(start, body[1:])]
        while "]" not in chunks[-1][1]:
            if self.i >= len(self.lines):
                raise LoadError(f"line {start}: tensor {t.name!r}: no closing ']' before the "
                                f"end of the text")
            if _STATEMENT.match(self.lines[self.i]):
                raise LoadError(f"line {start}: tensor {t.name!r}: no closing ']' before the "
                                f"statement at line {self.i + 1}")
            chunks.append((self.i + 1, self.lines[self.i]))
            self.i += 1
        last_no, last = chunks[-1]
        inside, _, after = last.partition("]")
        if after.strip() and not after.strip().startswith("#"):
            raise LoadError(f"line {last_no}: unexpected {after.strip()!r} after ']'")
        chunks[-1] = (last_no, inside)
        words, where = [], []
        pending, pending_no = "", start       # a value may not span lines, a comma may
        for no, chunk in chunks:
            pieces = chunk.split(",")
            for k, piece in enumerate(pieces):
                if k:
                    words.append(pending.strip())
                    where.append(pending_no)
                    pending, pending_no = "", no
                if piece.strip():
                    pending_no = no
                pending += piece
        words.append(pending.strip())
        where.append(pending_no)
        if words == [""]:
            words, where = [], []
        t.raw_data = _encode(t, words, where, start)


def _bad_word(t: pcir.Tensor, words: list[str], where: list[int], ok, what: str) -> LoadError:
    for w, no in zip(words, where):
        if not ok(w):
            return LoadError(f"line {no}: tensor {t.name!r}: expected {what}, found {w!r}")
    return LoadError(f"line {where[0]}: tensor {t.name!r}: bad values")


def _is_int(w: str) -> bool:
    try:
        int(w)
        return True
    except ValueError:
        return False


def _float_word(w: str) -> bool:
    try:
        if w.startswith("nan:"):
            return w[4:].startswith("0x") and int(w[4:], 16) >= 0
        float(w)
        return True
    except ValueError:
        return False


def _encode(t: pcir.Tensor, words: list[str], where: list[int], start: int) -> bytes:
    """The little-endian bytes of `words` (values read from lines `where`
    of the tensor statement at line `start`) as the tensor's dtype."""
    count = math.prod(t.dims)
    if min(t.dims, default=0) < 0 or len(words) != count:
        raise LoadError(f"line {start}: tensor {t.name!r}: dims {list(t.dims)} need {count} "
                        f"values, found {len(words)}")
    if t.dtype in _INT_DTYPES:
        try:
            values = np.array([int(w) for w in words], dtype=object)
        except ValueError:
            raise _bad_word(t, words, where, _is_int, "an integer") from None
        info = np.iinfo(np.dtype(_INT_DTYPES[t.dtype]))
        if count and (values.min() < info.min or values.max() > info.max):
            raise _bad_word(t, words, where, lambda w: info.min <= int(w) <= info.max,
                            f"an integer in [{info.min}, {info.max}]")
        return np.array(values.tolist(), dtype=_INT_DTYPES[t.dtype]).tobytes()
    if t.dtype not in FLOAT_VIEW:
        raise LoadError(f"line {start}: tensor {t.name!r}: dtype "
                        f"{t.dtype} has no value form; write raw=\"<hex>\"")
    np_type, bits_view = FLOAT_VIEW[t.dtype]
    payload = [i for i, w in enumerate(words) if w.startswith("nan:")]
    plain = list(words)
    for i in payload:
        plain[i] = "nan"
    try:
        values = np.array([float(w) for w in plain], dtype=np.float64).astype(np_type)
    except ValueError:
        raise _bad_word(t, words, where, _float_word, "a number") from None
    if payload:
        bits = values.view(bits_view)
        for i in payload:
            try:
                bits[i] = int(words[i][4:], 16)
            except (ValueError, OverflowError):
                raise LoadError(f"line {where[i]}: tensor {t.name!r}: expected nan:0x<hex bits>, "
                                f"found {words[i]!r}") from None
    if t.dtype == pcir.BFLOAT16:
        return (values.view("<u4") >> 16).astype("<u2").tobytes()
    return values.astype(np.dtype(np_type).newbyteorder("<")).tobytes()


def parse_text(text: str) -> pcir.Model:
    """The Model written by `ir.dump_exact` (see ir/text_exact.py for the
    form and what "exact" means). Raises LoadError naming the line and what
    was expected there."""
    return _Parser(text).run()


__all__ = ["parse_text"]
