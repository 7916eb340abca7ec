"""The layout cache: compiled Layouts on disk, keyed by what changes them.

Key: sha256 of named ingredients (`cache_ingredients`: structure hash of the
input Model, pipeline with options, compiler and IR version, backend name
and block limit, plus a parameter hash when a pass in the pipeline depends
on parameter values). Value: the Layout, model''s structure (the Model
without parameter tensors) and the parameter gathers (passes/helpers/rewrites.py),
so a hit rebuilds model' from the caller's model with its *current*
parameters and runs no pass. When no pass replaced the input Model (the
usual case: the passes only annotate it and build the Layout), the entry
says so and a hit returns the caller's Model itself as model': nothing is
copied, and the backend reads the parameters straight from it, once.

File format (one file per key, `<key>.pclc`):
    b"PCLC\\0\\0\\0\\1" | sha256 of the rest (32 bytes) | u64 header length |
    header JSON | sections (Layout bytes; then, only when a pass replaced
    the input Model, the Model skeleton bytes and the gathers)
Writes go through `ir.fileio.atomic_write` (temp file, fsync, rename), so
readers see the old entry or the new one, never half of one; two processes
compiling one circuit both succeed and leave one valid entry. A corrupt
entry (bad checksum, truncated) is reported once and rebuilt; a folder that
cannot be written gives one warning and compiling goes on without it.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import warnings
from pathlib import Path
from typing import Callable

import numpy as np

from pccompiler import ir
from pccompiler.errors import LoadError
from pccompiler.ir import pcir
from pccompiler.ir.fileio import atomic_write
from pccompiler.passes.helpers.edit import copy_without_tensors
from pccompiler.passes.pipeline import format_pipeline
from pccompiler.passes.registry import get_pass
from pccompiler.passes.helpers.rewrites import ParamRewrites, apply_gather
from pccompiler.version import __version__

MAGIC = b"PCLC\x00\x00\x00\x01"
_warned: set[str] = set()


def default_cache_dir() -> Path:
    env = os.environ.get("PCC_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "pccompiler" / "layouts"


def _param_hash(model: pcir.Model) -> str:
    h = hashlib.sha256()
    table = ir.tensor_table(model)
    for g in model.groups:
        name = g.input.params if g.kind == pcir.INPUT else g.sum.weights if \
            g.kind == pcir.SUM else ""
        if name:
            h.update(name.encode())
            h.update(np.ascontiguousarray(table[name]).tobytes())
    return h.hexdigest()


def cache_ingredients(model: pcir.Model, items: list[tuple[str, dict]], backend: str = "",
                      block_limit: int = 32) -> dict[str, str]:
    """Everything that changes the compiled output, by name (the one place)."""
    ingredients = {
        "model_structure": ir.structure_hash(model),
        "pipeline": format_pipeline(items),
        "compiler_version": __version__,
        "ir_version": str(ir.IR_VERSION),
        "backend": backend,
        "block_limit": str(int(block_limit)),
    }
    if any(get_pass(name).param_dependent(opts) for name, opts in items):
        ingredients["parameters"] = _param_hash(model)
    return ingredients


def cache_key(ingredients: dict[str, str]) -> str:
    blob = json.dumps(ingredients, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()


def _warn_once(tag: str, message: str) -> None:
    if tag not in _warned:
        _warned.add(tag)
        warnings.warn(message, RuntimeWarning, stacklevel=3)


def encode_entry(ingredients: dict, model2: pcir.Model, layout: pcir.Layout,
                 rewrites: ParamRewrites, source: pcir.Model | None = None) -> bytes:
    """The bytes of one cache entry (see the module docstring). `source`:
    the input Model; when no pass replaced it (`model2 is source`, the usual
    case) the header says so, the entry holds the Layout alone (no skeleton,
    no gathers: a hit hands the caller's Model to the backend as model',
    copying no parameter), and reading it checks and parses only that."""
    sections: list[bytes] = [layout.SerializeToString()]
    if source is not None and model2 is source:
        header = json.dumps({"ingredients": ingredients, "params": [], "order": [],
                             "sections": [len(sections[0])], "model_is_input": True}).encode()
        body = struct.pack("<Q", len(header)) + header + sections[0]
        return MAGIC + hashlib.sha256(body).digest() + body
    skeleton = copy_without_tensors(model2)
    params: list[dict] = []
    param_names = {g.input.params if g.kind == pcir.INPUT else g.sum.weights
                   for g in model2.groups if g.kind != pcir.PRODUCT} - {""}
    for t in model2.tensors:
        if t.name not in param_names:
            skeleton.tensors.append(t)
            continue
        gather = rewrites.gathers.get(t.name)
        entry = {"name": t.name, "dims": [int(d) for d in t.dims], "dtype": int(t.dtype),
                 "source": gather.source if gather else t.name, "index": None}
        if gather is not None and gather.index is not None:
            entry["index"] = {"section": len(sections) + 1, "dtype": gather.index.dtype.str}
            sections.append(np.ascontiguousarray(gather.index).tobytes())
        params.append(entry)
    sections.insert(1, skeleton.SerializeToString())
    sizes = [len(s) for s in sections]
    header = json.dumps({"ingredients": ingredients, "params": params, "sections": sizes,
                         "order": [t.name for t in model2.tensors],
                         "model_is_input": False}).encode()
    body = struct.pack("<Q", len(header)) + header + b"".join(sections)
    return MAGIC + hashlib.sha256(body).digest() + body


def decode_entry(data: bytes, model: pcir.Model,
                 resolve: Callable[[], pcir.Model] | None = None
                 ) -> tuple[pcir.Model, pcir.Layout]:
    """(model', layout) from entry bytes and the caller's model; LoadError if corrupt.

    When the entry says no pass replaced the input Model, model' is the
    caller's `model` itself (its current parameters, nothing copied): the
    key matched its structure, so the passes would leave it unchanged too.
    Otherwise model' is built from the parameter values of `resolve()` (the
    caller's model with every byte inline; default: `model`)."""
    if len(data) < 48 or data[:8] != MAGIC:
        raise LoadError("not a layout cache entry (bad magic)")
    body = memoryview(data)[40:]
    if hashlib.sha256(body).digest() != data[8:40]:
        raise LoadError("layout cache entry checksum mismatch")
    (hlen,) = struct.unpack("<Q", body[:8])
    header = json.loads(bytes(body[8:8 + hlen]))
    offsets = np.concatenate([[8 + hlen], 8 + hlen + np.cumsum(header["sections"])])
    section = [body[offsets[i]:offsets[i + 1]] for i in range(len(header["sections"]))]
    layout = pcir.Layout()
    layout.ParseFromString(section[0])          # a view: no copy of the 28 MB of hclt512's
    if header.get("model_is_input") is True:
        return model, layout
    if resolve is not None:
        model = resolve()
    skeleton = pcir.Model()
    skeleton.ParseFromString(section[1])
    table = ir.tensor_table(model)
    sources = {t.name: t for t in skeleton.tensors}      # structural tensors
    renamed: dict[str, str] = {}
    for p in header["params"]:
        shape = tuple(p["dims"])
        proto = table.proto(p["source"])
        if p["index"] is None and tuple(proto.dims) == shape:
            sources[p["name"]] = proto                   # copied once, below
            if p["source"] != p["name"]:
                renamed[p["name"]] = p["name"]
            continue
        source = table[p["source"]]
        if p["index"] is None:
            array = np.asarray(source).reshape(shape)
        else:
            index = np.frombuffer(section[p["index"]["section"]], dtype=p["index"]["dtype"])
            array = apply_gather(source, index, shape)
        sources[p["name"]] = ir.from_numpy(array, p["name"])
    model2 = copy_without_tensors(skeleton)
    for name in header["order"]:
        tensor = model2.tensors.add()
        tensor.CopyFrom(sources[name])
        if name in renamed:
            tensor.name = name
    return model2, layout


class LayoutCache:
    """A folder of cache entries; `notes` collects what happened (for reports)."""

    def __init__(self, directory: str | os.PathLike | None = None):
        self.directory = Path(directory) if directory else default_cache_dir()
        self.notes: list[str] = []
        self._ingredients: dict[str, dict] = {}

    def take_notes(self) -> list[str]:
        notes, self.notes = self.notes, []
        return notes

    def key(self, model, items, backend: str = "", block_limit: int = 32) -> str:
        ingredients = cache_ingredients(model, items, backend, block_limit)
        key = cache_key(ingredients)
        self._ingredients[key] = ingredients
        return key

    def path(self, key: str) -> Path:
        return self.directory / f"{key}.pclc"

    def load(self, key: str, model: pcir.Model,
             resolve: Callable[[], pcir.Model] | None = None):
        """(model', layout) on a hit, None on a miss (noting why);
        `resolve`: see decode_entry."""
        path = self.path(key)
        try:
            data = path.read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            self.notes.append(f"miss {key[:12]}: {self.explain_miss(key)}")
            return None
        except OSError as exc:
            _warn_once(f"read:{self.directory}", f"layout cache {self.directory} unreadable "
                       f"({exc}); compiling without it")
            return None
        try:
            result = decode_entry(data, model, resolve)
        except (LoadError, ValueError, KeyError, IndexError, TypeError) as exc:
            _warn_once(f"corrupt:{path}", f"layout cache entry {path} is corrupt ({exc}); "
                       "rebuilding it")
            self.notes.append(f"corrupt entry {key[:12]} rebuilt")
            return None
        except Exception as exc:        # protobuf DecodeError and friends
            _warn_once(f"corrupt:{path}", f"layout cache entry {path} is corrupt ({exc}); "
                       "rebuilding it")
            self.notes.append(f"corrupt entry {key[:12]} rebuilt")
            return None
        self.notes.append(f"hit {key[:12]}")
        return result

    def store(self, key: str, model2: pcir.Model, layout: pcir.Layout,
              rewrites: ParamRewrites, source: pcir.Model | None = None) -> bool:
        """Write the entry atomically; False (one warning) if the folder refuses.
        `source`: the input Model (see encode_entry)."""
        data = encode_entry(self._ingredients.get(key, {}), model2, layout, rewrites, source)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            atomic_write(self.path(key), data)
        except OSError as exc:
            _warn_once(f"write:{self.directory}", f"layout cache {self.directory} is not "
                       f"writable ({exc}); compiling without the cache")
            self.notes.append("cache not writable")
            return False
        self.notes.append(f"stored {key[:12]} ({len(data) / 1e6:.1f} MB)")
        return True

    def explain_miss(self, key: str) -> str:
        """Which ingredients differ from the closest entry in the folder."""
        mine = self._ingredients.get(key)
        if mine is None:
            return "no entry"
        best: tuple[int, list[str]] | None = None
        try:
            paths = list(self.directory.glob("*.pclc"))
        except OSError:
            return "no entry"
        for path in paths[:200]:
            try:
                with open(path, "rb") as f:
                    head = f.read(48)
                    (hlen,) = struct.unpack("<Q", head[40:48])
                    if hlen > 1 << 20:
                        continue
                    theirs = json.loads(f.read(hlen))["ingredients"]
            except (OSError, ValueError, KeyError, struct.error):
                continue
            differ = sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))
            if best is None or len(differ) < best[0]:
                best = (len(differ), differ)
        if best is None:
            return "no entry"
        return "closest entry differs in " + ", ".join(best[1])


def as_cache(cache) -> LayoutCache | None:
    """None/False -> no cache; True -> default folder; a path or LayoutCache."""
    if cache is None or cache is False:
        return None
    if isinstance(cache, LayoutCache):
        return cache
    if cache is True:
        return LayoutCache()
    return LayoutCache(cache)
