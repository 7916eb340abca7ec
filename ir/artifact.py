"""The .pcc file: one compiled circuit, runnable without re-running passes.

Format (all integers little-endian):

    8 bytes   magic b"PCCA\\0" + 3-byte big-endian container version
    then three sections, each an 8-byte length followed by that many bytes:
      1. manifest  UTF-8 JSON: format, compiler_version, ir_version, backend,
                   target {device, dtype}, pipeline, model_structure_hash,
                   and the sha256 of sections 2 and 3
      2. Model     protobuf bytes (current parameters)
      3. Layout    protobuf bytes
    then (optional, issue #16 A) the named sections the manifest lists under
    "sections" as [name, length] pairs, each an 8-byte length + its bytes,
    in that order (GPU kernels: their checksums live in the manifest entry
    of whoever reads them, e.g. backends/triton/aot/store.py)

Writes are atomic (`ir.fileio.atomic_write`). A reader refuses
a wrong magic, a truncated file, a bad checksum, a file from another
compiler version, a malformed manifest, or a Model / Layout that breaks an
IR invariant (the checkers run on both; a Layout made for another Model
fails "model-hash"), each with a LoadError naming the file and the reason.
"""

from __future__ import annotations

import hashlib
import json
import re
import struct
from dataclasses import dataclass, field
from typing import Any, Mapping

from google.protobuf.message import DecodeError

from pccompiler import ir
from pccompiler.errors import LoadError
from pccompiler.ir import pcir
from pccompiler.ir.fileio import atomic_write, check_message
from pccompiler.version import __version__

MAGIC = b"PCCA\x00"
CONTAINER_VERSION = 1
HEADER = MAGIC + CONTAINER_VERSION.to_bytes(3, "big")


@dataclass
class Artifact:
    """The decoded content of a .pcc file."""
    manifest: dict[str, Any]
    model: pcir.Model
    layout: pcir.Layout
    sections: dict[str, bytes] = field(default_factory=dict)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def encode(model: pcir.Model, layout: pcir.Layout, backend: str, device: str,
           dtype: str, extra: dict[str, Any] | None = None,
           sections: Mapping[str, bytes] | None = None) -> bytes:
    """The bytes of a .pcc file for (model, layout), plus named `sections`."""
    model_bytes = model.SerializeToString(deterministic=True)
    layout_bytes = layout.SerializeToString(deterministic=True)
    manifest = {
        "format": "pccompiler-pcc", "container_version": CONTAINER_VERSION,
        "compiler_version": __version__, "ir_version": int(ir.IR_VERSION),
        "backend": backend, "target": {"device": device, "dtype": dtype},
        "pipeline": layout.pipeline, "model_structure_hash": layout.model_hash,
        "model_sha256": _sha(model_bytes), "layout_sha256": _sha(layout_bytes),
        "num_vars": len(model.variables), **(extra or {}),
    }
    # ---- named sections (issue #16 A; container v2 will replace this) ----
    named = [(str(k), bytes(v)) for k, v in sorted((sections or {}).items())]
    if named:
        manifest["sections"] = [[k, len(v)] for k, v in named]
    parts = [json.dumps(manifest, sort_keys=True).encode(), model_bytes, layout_bytes]
    parts += [v for _, v in named]
    return HEADER + b"".join(struct.pack("<Q", len(p)) + p for p in parts)


def write_pcc(path: str, circuit: Any) -> None:
    """Save a CompiledCircuit (its current parameters) as one .pcc file; a
    circuit carrying ahead-of-time kernels (`aot_kernels`, set by
    `pccompiler.compile(..., target=...)`) stores them as sections and is
    recorded for the triton backend on CUDA."""
    opts = circuit.options
    aot = getattr(circuit, "aot_kernels", None)
    backend, device, extra, sections = circuit.backend_name, str(opts.device), None, None
    if aot is not None:
        backend, device, extra, sections = "triton", "cuda", {"kernels": aot[0]}, aot[1]
    data = encode(circuit.to_model(), circuit.layout, backend, device, opts.dtype,
                  extra=extra, sections=sections)
    atomic_write(path, data)


def decode(data: bytes, path: str = "<bytes>", check: bool = True) -> Artifact:
    """Parse and verify .pcc bytes (LoadError on any inconsistency).
    check=False leaves the IR checkers out (the container, manifest and
    checksums are still verified): for `pcc verify`, which lists every
    violation itself."""
    if len(data) < len(HEADER) or data[:5] != MAGIC:
        raise LoadError(f"{path}: not a .pcc file (bad magic {data[:5]!r})")
    version = int.from_bytes(data[5:8], "big")
    if version != CONTAINER_VERSION:
        raise LoadError(f"{path}: .pcc container version {version}; this compiler reads "
                        f"version {CONTAINER_VERSION}")
    parts, pos = [], len(HEADER)
    for name in ("manifest", "model", "layout"):
        if pos + 8 > len(data):
            raise LoadError(f"{path}: truncated before the {name} section")
        (n,) = struct.unpack_from("<Q", data, pos)
        pos += 8
        if pos + n > len(data):
            raise LoadError(f"{path}: truncated {name} section ({len(data) - pos} of {n} bytes)")
        parts.append(bytes(data[pos: pos + n]))
        pos += n
    try:
        manifest = json.loads(parts[0].decode())
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise LoadError(f"{path}: unreadable manifest: {exc}") from exc
    _check_manifest(manifest, path)
    sections, pos = _read_sections(data, pos, manifest, path)
    if pos != len(data):
        raise LoadError(f"{path}: {len(data) - pos} unexpected trailing bytes")
    if manifest.get("compiler_version") != __version__:
        raise LoadError(f"{path}: compiled by pccompiler {manifest.get('compiler_version')!r}, "
                        f"this is {__version__}; recompile it with `pcc compile`")
    for name, blob in (("model", parts[1]), ("layout", parts[2])):
        if manifest.get(f"{name}_sha256") != _sha(blob):
            raise LoadError(f"{path}: the {name} section does not match its sha256 "
                            f"(corrupt file)")
    model, layout = pcir.Model(), pcir.Layout()
    try:
        model.ParseFromString(parts[1])
        layout.ParseFromString(parts[2])
    except DecodeError as exc:
        raise LoadError(f"{path}: corrupt protobuf: {exc}") from exc
    # The checksums only prove the sections are the ones the writer meant;
    # a forged or buggy file must still not reach a backend unchecked (it
    # would allocate from claimed sizes or index out of range): run the
    # checkers, which raise InvalidFileError (a LoadError with the rule).
    if not check:
        return Artifact(manifest, model, layout, sections)
    check_message(model, f"{path} (model section)")
    if layout.model_hash != ir.structure_hash(model):
        raise LoadError(f"{path}: the layout's model hash {layout.model_hash[:12]} does not match "
                        f"the model ({ir.structure_hash(model)[:12]}): it was made for another "
                        f"structure or by a compiler that hashes structures differently; "
                        f"recompile it with `pcc compile`")
    check_message(layout, f"{path} (layout section)", model)
    return Artifact(manifest, model, layout, sections)


def _read_sections(data: bytes, pos: int, manifest: dict, path: str
                   ) -> tuple[dict[str, memoryview], int]:
    """The named sections the manifest lists (issue #16 A), as views."""
    listed = manifest.get("sections", [])
    if not isinstance(listed, list) or not all(
            isinstance(e, list) and len(e) == 2 and isinstance(e[0], str)
            and isinstance(e[1], int) for e in listed):
        raise LoadError(f"{path}: malformed manifest: sections {str(listed)[:80]!r}")
    view, out = memoryview(data), {}
    for name, length in listed:
        if pos + 8 > len(data):
            raise LoadError(f"{path}: truncated before section {name}")
        (n,) = struct.unpack_from("<Q", data, pos)
        pos += 8
        if n != length or pos + n > len(data):
            raise LoadError(f"{path}: truncated or mislabelled section {name} "
                            f"({min(n, len(data) - pos)} of {length} bytes)")
        out[name] = view[pos: pos + n]
        pos += n
    return out, pos


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


def read_pcc(path: str, check: bool = True) -> Artifact:
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise LoadError(f"{path}: cannot read: {exc.strerror}") from exc
    return decode(data, path, check)


def is_pcc(path: str) -> bool:
    """True if the file starts with the .pcc magic."""
    try:
        with open(path, "rb") as fh:
            return fh.read(5) == MAGIC
    except OSError:
        return False
