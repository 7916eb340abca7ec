"""The .pcc file: one compiled circuit, runnable without re-running passes.

Container version 2 (all integers little-endian unless said otherwise):

    0     8 bytes  magic b"PCCA\\0" + 3-byte big-endian container version
    8     8 bytes  manifest length M
    16    M bytes  manifest, UTF-8 JSON
          zero padding to the next multiple of 4096
          named sections, each starting at a multiple of 4096 (zero padding
          between them); the file ends where the last section ends

The manifest holds format, compiler_version, ir_version, backend,
target {device, dtype}, pipeline, model_structure_hash, num_vars, any
`extra` keys, and `sections`: a list of {name, offset, length, sha256};
the params entry also has `chunk_bytes` and `chunk_sha256` (the sha256 of
each 32 MB piece), which the reader verifies on several threads at once.
Sections written by the compiler:

    model    Model protobuf; its parameter tensors (input params, sum
             weights) carry no bytes but `external {location: "params",
             offset, length}`, offsets relative to the params section
    layout   Layout protobuf
    params   the parameter tensors' raw little-endian bytes, each at a
             64-byte aligned offset (`TENSOR_ALIGN`)
    ...      any other name: opaque bytes from `encode(sections=...)`,
             read back through `Artifact.sections`; e.g. the ahead-of-time
             Triton kernels "kernels/<hash>/<file>" (issue #16 A), which
             the manifest's "kernels" entry also lists with each file's
             sha256 (backends/triton/aot/store.py)

Reading (`read_pcc`) memory-maps the file: parameter arrays are numpy
views of the mapping (no copy; on CUDA the backend stages them through
pinned chunks and uploads those, backends/common/packing_upload.py). Every
offset and length is checked against the file size, sections may not
overlap or be misaligned, and a tensor's range must lie inside its section
and match its dims and dtype, all before anything is allocated or parsed.
Every section's sha256 is verified before its content is used; the params
section (most of the file) can instead be hashed on threads while the
backend packs it (`read_pcc(defer_hash=True)`, used by `pccompiler.load`):
`Artifact.arrays.verify()` then raises the mismatch, and the loader drops
the engine it built, so a tampered file returns nothing
(ir/external_arrays.py). A process runs the IR checkers once per content:
loading a file whose section hashes it has checked before (and verified
again on this load) skips them (`_CHECKED`).

Version 1 files (manifest, Model and Layout as three length-prefixed
blocks, tensors inline) still read; writers produce version 2. Writes are
atomic and streamed (`ir.fileio.atomic_write_parts`: the sections are
written one after the other into a temp file, fsync, rename). A reader
refuses a wrong magic, an unknown version, a truncated file, a bad
checksum, overlapping or out-of-bounds sections, a file from another
compiler version, a malformed manifest, or a Model / Layout that breaks an
IR invariant (the checkers run on both; a Layout made for another Model
fails "model-hash"), each with a LoadError naming the file and the reason.
The mapping stays valid while the file is replaced by another atomic
write (a rename leaves the old inode mapped); truncating the file in
place under a running reader is not supported.
"""

from __future__ import annotations

import hashlib
import json
import mmap
import os
import re
import struct
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np
from google.protobuf.message import DecodeError

from pccompiler import ir
from pccompiler.errors import LoadError
from pccompiler.ir import pcir
from pccompiler.ir.external_arrays import (
    ExternalArrays, SectionHash, inline_arrays, param_tensor_names, sha256_of,
)
from pccompiler.ir.fileio import atomic_write_parts, check_message, skeleton
from pccompiler.ir.tensors import _NUMPY_OF, nbytes
from pccompiler.version import __version__

MAGIC = b"PCCA\x00"
CONTAINER_VERSION = 2
READABLE_VERSIONS = (1, 2)
HEADER = MAGIC + CONTAINER_VERSION.to_bytes(3, "big")
SECTION_ALIGN = 4096
TENSOR_ALIGN = 64
PARAMS = "params"
# The params section is also hashed in pieces of this many bytes (manifest
# `chunk_sha256`), so a reader can verify it on several cores at once.
CHUNK_BYTES = 32 << 20
_RESERVED = ("model", "layout", PARAMS)
# Section names: plain keys (never file paths), e.g. "kernels/<sha>".
_NAME = re.compile(r"[A-Za-z0-9_./:\-]{1,200}")
_SHA = re.compile(r"[0-9a-f]{64}")


@dataclass
class Artifact:
    """The decoded content of a .pcc file. `mapped_model`: the Model
    section as stored (parameter tensors external); `arrays`: their bytes,
    numpy views of the mapped file (empty for version 1 files); `sections`:
    every section's bytes by name (memoryviews of the mapping). `model` is
    the self-contained Model (parameters copied inline on first use, after
    the params checksum is verified) for code that wants a plain Model;
    `pccompiler.load` hands `mapped_model` and `arrays` to the backend."""
    manifest: dict[str, Any]
    mapped_model: pcir.Model
    layout: pcir.Layout
    sections: dict[str, memoryview] = field(default_factory=dict)
    arrays: ExternalArrays = field(default_factory=lambda: ExternalArrays({}))
    _inlined: pcir.Model | None = field(default=None, repr=False)

    @property
    def model(self) -> pcir.Model:
        if self._inlined is None:
            self._inlined = inline_arrays(self.mapped_model, self.arrays, self.arrays.verify)
        return self._inlined


def _align(n: int, a: int) -> int:
    return -(-n // a) * a


# ---------------------------------------------------------------- writing

def _split_params(model: pcir.Model, arrays: Mapping[str, np.ndarray] | None
                  ) -> tuple[pcir.Model, list[tuple[int, memoryview]], int]:
    """(Model whose parameter tensors point into the params section,
    [(offset, bytes)] of that section, its length). Parameter bytes come
    from `arrays` when it has the tensor (a mapped .pcc, an engine's current
    parameters), else from raw_data; no other tensor may be external."""
    names = param_tensor_names(model)
    out = skeleton(model)
    pieces: list[tuple[int, memoryview]] = []
    pos = 0
    for t in model.tensors:
        if t.name not in names:
            if t.HasField("external"):
                raise LoadError(f"tensor {t.name!r} refers to external data; "
                                f"only parameter tensors may")
            out.tensors.append(t)
            continue
        if arrays is not None and t.name in arrays:
            array = np.asarray(arrays[t.name])
            if array.dtype != _NUMPY_OF.get(t.dtype):
                raise LoadError(f"tensor {t.name!r}: array of {array.dtype} for a "
                                f"{t.dtype} tensor")
            data = memoryview(np.ascontiguousarray(array)).cast("B")
        elif t.HasField("external"):
            raise LoadError(f"parameter tensor {t.name!r} is external but its array "
                            f"was not supplied")
        else:
            data = memoryview(t.raw_data)
        if len(data) != nbytes(t):
            raise LoadError(f"tensor {t.name!r}: {len(data)} bytes for dims {list(t.dims)}")
        pos = _align(pos, TENSOR_ALIGN)
        pieces.append((pos, data))
        out.tensors.append(pcir.Tensor(name=t.name, dtype=t.dtype, dims=t.dims, external=(
            pcir.ExternalData(location=PARAMS, offset=pos, length=len(data)))))
        pos += len(data)
    return out, pieces, pos


def _params_hash(pieces: list[tuple[int, memoryview]], length: int) -> dict[str, Any]:
    """{"sha256": of the whole params section, "chunk_bytes": CHUNK_BYTES,
    "chunk_sha256": [sha256 of each CHUNK_BYTES piece]}: the reader checks
    the chunks, on several threads at once."""
    whole, chunks = hashlib.sha256(), []
    current, filled = hashlib.sha256(), 0

    def feed(data: memoryview) -> None:
        nonlocal current, filled
        whole.update(data)
        while len(data):
            take = min(len(data), CHUNK_BYTES - filled)
            current.update(data[:take])
            data, filled = data[take:], filled + take
            if filled == CHUNK_BYTES:
                chunks.append(current.hexdigest())
                current, filled = hashlib.sha256(), 0
    pos = 0
    for off, data in pieces:
        feed(memoryview(bytes(off - pos)))
        feed(memoryview(data).cast("B"))
        pos = off + len(data)
    feed(memoryview(bytes(length - pos)))
    if filled:
        chunks.append(current.hexdigest())
    return {"sha256": whole.hexdigest(), "chunk_bytes": CHUNK_BYTES, "chunk_sha256": chunks}


def encode_parts(model: pcir.Model, layout: pcir.Layout, backend: str, device: str,
                 dtype: str, extra: dict[str, Any] | None = None,
                 sections: Mapping[str, bytes] | None = None,
                 arrays: Mapping[str, np.ndarray] | None = None) -> list[bytes | memoryview]:
    """The .pcc file as a list of buffers to write one after the other (no
    buffer holds the whole file). `sections`: extra named sections (names of
    letters, digits and "_./:-", at most 200; not model / layout / params).
    `arrays`: parameter tensors' bytes by name, used in place of raw_data
    (a loaded .pcc's mapping, an engine's current parameters)."""
    for name in sections or {}:
        if not _NAME.fullmatch(name) or name in _RESERVED:
            raise ValueError(f".pcc section name {name!r} is reserved or not a plain name")
    stripped, pieces, params_len = _split_params(model, arrays)
    model_bytes = stripped.SerializeToString(deterministic=True)
    layout_bytes = layout.SerializeToString(deterministic=True)
    blobs: list[tuple[str, int, str, list]] = [
        ("model", len(model_bytes), sha256_of(model_bytes), [(0, model_bytes)]),
        ("layout", len(layout_bytes), sha256_of(layout_bytes), [(0, layout_bytes)]),
        (PARAMS, params_len, _params_hash(pieces, params_len), pieces),
    ]
    for name, blob in (sections or {}).items():
        blobs.append((name, len(blob), sha256_of(blob), [(0, memoryview(blob).cast("B"))]))
    base = {
        "format": "pccompiler-pcc", "container_version": CONTAINER_VERSION,
        "compiler_version": __version__, "ir_version": int(ir.IR_VERSION),
        "backend": backend, "target": {"device": device, "dtype": dtype},
        "pipeline": layout.pipeline, "model_structure_hash": layout.model_hash,
        "num_vars": len(model.variables), **(extra or {}),
    }
    return assemble(base, blobs)


def assemble(base: dict[str, Any], blobs: list[tuple[str, int, str, list]]
             ) -> list[bytes | memoryview]:
    """The container around named sections: `base` (the manifest without
    its section table) and [(name, length, sha256, [(offset in section,
    bytes)])], as buffers to write in order (gaps are zero padding)."""
    reserve = SECTION_ALIGN
    while True:     # the manifest lists offsets that depend on its own length
        table, pos = [], reserve
        for name, length, sha, _ in blobs:
            hashes = sha if isinstance(sha, dict) else {"sha256": sha}
            table.append({"name": name, "offset": pos, "length": length, **hashes})
            pos = _align(pos + length, SECTION_ALIGN)
        manifest = json.dumps({**base, "sections": table}, sort_keys=True).encode()
        if 16 + len(manifest) <= reserve:
            break
        reserve = _align(16 + len(manifest), SECTION_ALIGN)
    parts: list[bytes | memoryview] = [HEADER, struct.pack("<Q", len(manifest)), manifest]
    pos = 16 + len(manifest)
    for entry, (_, length, _, chunks) in zip(table, blobs):
        for off, data in chunks:
            parts.append(bytes(entry["offset"] + off - pos))   # alignment padding
            parts.append(data)
            pos = entry["offset"] + off + len(data)
        parts.append(bytes(entry["offset"] + length - pos))
        pos = entry["offset"] + length
    return [p for p in parts if len(p)]


def encode(model: pcir.Model, layout: pcir.Layout, backend: str, device: str,
           dtype: str, extra: dict[str, Any] | None = None,
           sections: Mapping[str, bytes] | None = None,
           arrays: Mapping[str, np.ndarray] | None = None) -> bytes:
    """The bytes of a .pcc file for (model, layout) (see `encode_parts`)."""
    return b"".join(encode_parts(model, layout, backend, device, dtype, extra, sections, arrays))


def write_pcc(path: str, circuit: Any, extra: dict[str, Any] | None = None,
              sections: Mapping[str, bytes] | None = None) -> None:
    """Save a CompiledCircuit (its current parameters) as one .pcc file,
    streamed section by section into a temp file, then renamed. A circuit
    carrying ahead-of-time kernels (`aot_kernels`, set by
    `pccompiler.compile(..., target=...)` or kept by `pccompiler.load`)
    stores them as sections `kernels/<hash>/<file>` with their manifest
    entry under "kernels", and is recorded for the triton backend on CUDA
    (the circuit itself may be a CPU stand-in)."""
    opts = circuit.options
    backend, device = circuit.backend_name, str(opts.device)
    aot = getattr(circuit, "aot_kernels", None)
    if aot is not None:
        backend, device = "triton", "cuda"
        extra = {**(extra or {}), "kernels": aot[0]}
        sections = {**(sections or {}), **aot[1]}
    if hasattr(circuit, "parameter_arrays"):    # no Model copy: the engine's arrays
        engine = circuit.engine
        arrays = {**(engine.arrays or {}), **circuit.parameter_arrays()}
        model = engine.model
    else:
        model, arrays = circuit.to_model(), None
    parts = encode_parts(model, circuit.layout, backend, device, opts.dtype,
                         extra, sections, arrays)
    atomic_write_parts(path, parts)


# ---------------------------------------------------------------- reading

def decode(data: bytes | memoryview | mmap.mmap, path: str = "<bytes>", check: bool = True,
           defer_hash: bool = False) -> Artifact:
    """Parse and verify .pcc bytes (LoadError on any inconsistency).
    check=False leaves the IR checkers out (the container, manifest and
    checksums are still verified): for `pcc verify`, which lists every
    violation itself. defer_hash: the params section's sha256 is computed
    on a thread; the caller must call `Artifact.arrays.verify()` before
    anything built from the arrays is used or returned."""
    view = memoryview(data).cast("B")
    if len(view) < len(HEADER) or bytes(view[:5]) != MAGIC:
        raise LoadError(f"{path}: not a .pcc file (bad magic {bytes(view[:5])!r})")
    version = int.from_bytes(view[5:8], "big")
    if version not in READABLE_VERSIONS:
        raise LoadError(f"{path}: .pcc container version {version}; this compiler reads "
                        f"versions {', '.join(map(str, READABLE_VERSIONS))}; recompile it "
                        f"with this compiler's `pcc compile`")
    if version == 1:
        manifest, sections = _sections_v1(view, path)
    else:
        manifest, sections = _sections_v2(view, path)
    _check_manifest(manifest, path)
    if manifest.get("compiler_version") != __version__:
        raise LoadError(f"{path}: compiled by pccompiler {manifest.get('compiler_version')!r}, "
                        f"this is {__version__}; recompile it with `pcc compile`")
    pending = None
    for name, (blob, sha, chunks) in sections.items():
        if name == PARAMS:
            pending = SectionHash(blob, sha, f"{path}: the {name} section",
                                  background=defer_hash, chunks=chunks)
        elif sha256_of(blob) != sha:
            raise LoadError(f"{path}: the {name} section does not match its sha256 "
                            f"(corrupt file)")
    if not defer_hash and pending is not None:
        pending.result()
        pending = None
    model, layout = pcir.Model(), pcir.Layout()
    try:
        model.ParseFromString(sections["model"][0])
        layout.ParseFromString(sections["layout"][0])
    except DecodeError as exc:
        raise LoadError(f"{path}: corrupt protobuf: {exc}") from exc
    arrays = ExternalArrays(_param_arrays(model, sections.get(PARAMS, (b"", ""))[0], path),
                            pending)
    art = Artifact(manifest, model, layout, {n: v[0] for n, v in sections.items()}, arrays)
    # The checksums only prove the sections are the ones the writer meant;
    # a forged or buggy file must still not reach a backend unchecked (it
    # would allocate from claimed sizes or index out of range): run the
    # checkers, which raise InvalidFileError (a LoadError with the rule).
    key = _content_key(sections)
    if check and key not in _CHECKED:
        try:
            _check_ir(model, layout, arrays, path)
        except LoadError:
            arrays.verify()     # corrupt bytes are the first thing to report
            raise
        arrays.on_verified.append(lambda: _remember(key))
    if not defer_hash:
        arrays.verify()         # nothing pending: runs the callbacks
    return art


# Content this process has already run the IR checkers on, by the hashes of
# its sections (which every load verifies against the bytes before it
# returns): loading the same file again skips the checkers, not the hashes.
_CHECKED: dict[str, None] = {}
_CHECKED_MAX = 64


def _content_key(sections: dict[str, tuple]) -> str:
    listing = sorted((name, sha, chunks) for name, (_, sha, chunks) in sections.items())
    return sha256_of(json.dumps(listing).encode())


def _remember(key: str) -> None:
    _CHECKED[key] = None
    while len(_CHECKED) > _CHECKED_MAX:
        del _CHECKED[next(iter(_CHECKED))]


def _check_ir(model: pcir.Model, layout: pcir.Layout, arrays: ExternalArrays, path: str) -> None:
    check_message(model, f"{path} (model section)", arrays=arrays)
    model_hash = ir.structure_hash(model)
    if layout.model_hash != model_hash:
        raise LoadError(f"{path}: the layout's model hash {layout.model_hash[:12]} does not "
                        f"match the model ({model_hash[:12]}): it was made for "
                        f"another structure or by a compiler that hashes structures "
                        f"differently; recompile it with `pcc compile`")
    check_message(layout, f"{path} (layout section)", model, model_hash=model_hash)


def _sections_v1(view: memoryview, path: str) -> tuple[Any, dict[str, tuple[memoryview, str]]]:
    """Version 1: manifest, Model, Layout as three u64-length-prefixed blocks."""
    parts, pos = [], len(HEADER)
    for name in ("manifest", "model", "layout"):
        if pos + 8 > len(view):
            raise LoadError(f"{path}: truncated before the {name} section")
        (n,) = struct.unpack_from("<Q", view, pos)
        pos += 8
        if pos + n > len(view):
            raise LoadError(f"{path}: truncated {name} section ({len(view) - pos} of {n} bytes)")
        parts.append(view[pos: pos + n])
        pos += n
    if pos != len(view):
        raise LoadError(f"{path}: {len(view) - pos} unexpected trailing bytes")
    manifest = _parse_manifest(parts[0], path)
    if not isinstance(manifest, dict):
        raise LoadError(f"{path}: the manifest is not a JSON object")
    return manifest, {"model": (parts[1], manifest.get("model_sha256"), None),
                      "layout": (parts[2], manifest.get("layout_sha256"), None)}


def _parse_manifest(blob: memoryview, path: str) -> Any:
    try:
        return json.loads(bytes(blob).decode())
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise LoadError(f"{path}: unreadable manifest: {exc}") from exc


def _sections_v2(view: memoryview, path: str) -> tuple[Any, dict[str, tuple[memoryview, str]]]:
    """Version 2: the manifest's section table, every entry checked against
    the file size, alignment and the other entries before any is sliced."""
    size = len(view)
    if size < 16:
        raise LoadError(f"{path}: truncated before the manifest length")
    (n,) = struct.unpack_from("<Q", view, 8)
    if 16 + n > size:
        raise LoadError(f"{path}: truncated manifest ({size - 16} of {n} bytes)")
    manifest = _parse_manifest(view[16:16 + n], path)
    table = manifest.get("sections") if isinstance(manifest, dict) else None
    if not isinstance(table, list):
        raise LoadError(f"{path}: malformed manifest: no section table")
    entries = []
    for e in table:
        ok = isinstance(e, dict) and isinstance(e.get("name"), str) \
            and _NAME.fullmatch(e["name"]) and isinstance(e.get("sha256"), str) \
            and _SHA.fullmatch(e["sha256"]) and all(
                type(e.get(k)) is int and e[k] >= 0 for k in ("offset", "length"))
        if not ok:
            raise LoadError(f"{path}: malformed section entry {e!r}")
        if e["offset"] % SECTION_ALIGN:
            raise LoadError(f"{path}: section {e['name']!r} at offset {e['offset']} is not "
                            f"{SECTION_ALIGN}-byte aligned")
        if e["offset"] + e["length"] > size:
            raise LoadError(f"{path}: truncated file: section {e['name']!r} needs bytes "
                            f"{e['offset']}..{e['offset'] + e['length']}, the file has {size}")
        entries.append(e)
    names = [e["name"] for e in entries]
    if len(set(names)) != len(names):
        raise LoadError(f"{path}: a section name appears twice in {names}")
    for need in ("model", "layout"):
        if need not in names:
            raise LoadError(f"{path}: no {need} section")
    end = 16 + n
    for e in sorted(entries, key=lambda e: (e["offset"], e["length"])):
        if e["offset"] < end:
            raise LoadError(f"{path}: section {e['name']!r} at {e['offset']} overlaps the "
                            f"manifest or the previous section (which ends at {end})")
        end = e["offset"] + e["length"]
    if end != size:
        raise LoadError(f"{path}: {size - end} unexpected trailing bytes")
    return manifest, {e["name"]: (view[e["offset"]:e["offset"] + e["length"]], e["sha256"],
                                  _chunk_hashes(e, path)) for e in entries}


def _chunk_hashes(e: dict, path: str) -> tuple[int, list[str]] | None:
    """(chunk_bytes, [sha256 per chunk]) of a section entry that has them."""
    if "chunk_sha256" not in e and "chunk_bytes" not in e:
        return None
    size, shas = e.get("chunk_bytes"), e.get("chunk_sha256")
    if type(size) is not int or not 4096 <= size <= 1 << 40 or not isinstance(shas, list) \
            or len(shas) != -(-e["length"] // size) \
            or not all(isinstance(s, str) and _SHA.fullmatch(s) for s in shas):
        raise LoadError(f"{path}: malformed chunk hashes in section entry {e['name']!r}")
    return size, shas


def _param_arrays(model: pcir.Model, params: memoryview, path: str) -> dict[str, np.ndarray]:
    """Read-only numpy views into the params section for every external
    tensor, each range checked against the section and the tensor's size.
    Every view is a slice of one uint8 array over the section (one buffer
    export, not one per tensor)."""
    out: dict[str, np.ndarray] = {}
    names = None
    section = np.frombuffer(params, dtype=np.uint8)
    size = len(section)
    for t in model.tensors:
        if not t.HasField("external"):
            continue
        ext, name = t.external, t.name
        names = param_tensor_names(model) if names is None else names
        if name not in names:
            raise LoadError(f"{path}: tensor {name!r} is external but holds no parameters "
                            f"(only input params and sum weights may live in the params "
                            f"section)")
        if ext.location != PARAMS:
            raise LoadError(f"{path}: tensor {name!r} refers to section {ext.location!r}; a "
                            f".pcc keeps external tensors in {PARAMS!r}")
        np_dtype = _NUMPY_OF.get(t.dtype)
        try:
            need = nbytes(t)
        except LoadError as exc:
            raise LoadError(f"{path}: {exc}") from None
        if np_dtype is None or not np_dtype.isnative:
            raise LoadError(f"{path}: tensor {name!r} has a dtype numpy cannot map "
                            f"({t.dtype})")
        offset, length = ext.offset, ext.length
        if length != need or offset < 0 or offset + length > size \
                or offset % np_dtype.itemsize:
            raise LoadError(f"{path}: tensor {name!r}: bytes {offset}..{offset + length} of "
                            f"the {size}-byte params section, dims {list(t.dims)} need "
                            f"{need} aligned bytes inside it")
        if t.raw_data:
            raise LoadError(f"{path}: tensor {name!r} has both inline and external bytes")
        out[name] = section[offset:offset + length].view(np_dtype).reshape(tuple(t.dims))
    return out


def _check_manifest(manifest: Any, path: str) -> None:
    """The manifest has no checksum: check the type of every field the
    loader reads (backend, target device and dtype) before it is used."""
    if not isinstance(manifest, dict):
        raise LoadError(f"{path}: the manifest is not a JSON object")
    target = manifest.get("target", {})
    device = target.get("device", "cpu") if isinstance(target, dict) else None
    dtype = target.get("dtype", "float32") if isinstance(target, dict) else None
    if not isinstance(manifest.get("backend", ""), str) or not isinstance(device, str) \
            or not re.fullmatch(r"(cpu|cuda|mps|xpu)(:[0-9]{1,4})?", device) \
            or dtype not in ("float32", "float64"):
        raise LoadError(f"{path}: malformed manifest: backend {manifest.get('backend')!r}, "
                        f"target {target!r}")


def read_pcc(path: str, check: bool = True, defer_hash: bool = False) -> Artifact:
    """Memory-map and decode a .pcc file (see `decode`). The mapping lives
    as long as any array or section view of the Artifact does."""
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size == 0:
                raise LoadError(f"{path}: not a .pcc file (empty)")
            flags = mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0)
            data = mmap.mmap(fh.fileno(), size, flags=flags, prot=mmap.PROT_READ)
    except OSError as exc:
        raise LoadError(f"{path}: cannot read: {exc.strerror}") from exc
    return decode(data, path, check, defer_hash)


def is_pcc(path: str) -> bool:
    """True if the file starts with the .pcc magic."""
    try:
        with open(path, "rb") as fh:
            return fh.read(5) == MAGIC
    except OSError:
        return False
