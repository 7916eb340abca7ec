"""Kernels in the .pcc: manifest entry + sections out, verify + restore in.

The manifest's "kernels" entry records the target, the Triton version, the
batch sizes and data dtypes they cover, and per kernel its name, Triton
cache hash, serialized specialization and each file's sha256; the bytes
live in sections named "kernels/<hash>/<file>". Nothing in them is host
code: Triton's metadata JSON, cubin and ptx only.

At load the sections are checked against their sha256 before anything is
used (a tampered byte is one LoadError). On a matching machine (same
target, same Triton) the files go into Triton's own kernel cache through
its cache manager (temp file + rename, the key Triton computed when it
built them), so the JIT's first launch of each specialization is a cache
hit. Triton's cache is content-addressed by that key, so this neither
collides with nor overwrites anything else, and the host-side launchers
Triton builds per machine stay shared between artifacts. Elsewhere the
kernels are skipped with one warning line naming what differs; the JIT
then compiles on first use as without an artifact.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from typing import Any, Mapping

from pccompiler.backends.triton.aot.build import BuiltKernels
from pccompiler.errors import LoadError

SECTION_PREFIX = "kernels/"


class KernelMismatchWarning(UserWarning):
    """Stored kernels were built for another GPU or Triton version."""


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def kernel_manifest(built: BuiltKernels) -> tuple[dict[str, Any], dict[str, bytes]]:
    """(the manifest's "kernels" entry, the sections holding the files)."""
    sections: dict[str, bytes] = {}
    entries = []
    for k in built.kernels:
        files = {}
        for fname, data in k.files.items():
            sections[f"{SECTION_PREFIX}{k.hash}/{fname}"] = data
            files[fname] = _sha(data)
        entries.append({"name": k.name, "hash": k.hash, "files": files, "spec": k.spec})
    entry = {"target": built.target, "triton_version": built.triton_version,
             "batch_sizes": built.batch_sizes, "data_dtypes": built.data_dtypes,
             "precision": built.precision, "kernels": entries}
    return entry, sections


def verify_kernels(entry: Mapping[str, Any], sections: Mapping[str, Any],
                   path: str) -> list[tuple[str, str, dict[str, bytes]]]:
    """Every stored kernel as (name, hash, {file: bytes}), after checking each
    file against the manifest's sha256 (LoadError naming the first bad one)."""
    if not isinstance(entry, dict) or not isinstance(entry.get("kernels"), list):
        raise LoadError(f"{path}: malformed kernels entry in the manifest")
    out = []
    for k in entry["kernels"]:
        if not (isinstance(k, dict) and isinstance(k.get("hash"), str)
                and isinstance(k.get("files"), dict)
                and all(c in "0123456789abcdef" for c in k["hash"])):
            raise LoadError(f"{path}: malformed kernel record {str(k)[:80]!r} in the manifest")
        files = {}
        for fname, digest in k["files"].items():
            if "/" in fname or fname.startswith(".") or fname.startswith("__grp__"):
                raise LoadError(f"{path}: kernel {k.get('name')} has a bad file name {fname!r}")
            section = f"{SECTION_PREFIX}{k['hash']}/{fname}"
            if section not in sections:
                raise LoadError(f"{path}: kernel section {section} is missing")
            data = bytes(sections[section])
            if _sha(data) != digest:
                raise LoadError(f"{path}: kernel section {section} does not match its sha256 "
                                f"(corrupt or tampered file); load it with kernels=False to "
                                f"ignore the stored kernels")
            files[fname] = data
        out.append((str(k.get("name", "?")), k["hash"], files))
    return out


def mismatch(entry: Mapping[str, Any]) -> str | None:
    """What differs between the kernels' build and this machine, or None."""
    import triton
    from pccompiler.backends.triton.aot.target import current_target, target_name
    here = current_target()
    diffs = []
    if here is None:
        diffs.append(f"target {entry.get('target')} vs no CUDA GPU here")
    elif target_name(here) != entry.get("target"):
        diffs.append(f"target {entry.get('target')} vs {target_name(here)} here")
    if entry.get("triton_version") != triton.__version__:
        diffs.append(f"triton {entry.get('triton_version')} vs {triton.__version__} here")
    return "; ".join(diffs) or None


def restore_kernels(entry: Mapping[str, Any], sections: Mapping[str, Any], path: str) -> int:
    """Verify the stored kernels, then put them in Triton's cache when they
    fit this machine (returns how many groups were written; 0 and one
    KernelMismatchWarning when they do not fit)."""
    kernels = verify_kernels(entry, sections, path)
    why = mismatch(entry)
    if why is not None:
        warn_mismatch(path, why)
        return 0
    return write_to_cache(kernels, path)


def warn_mismatch(path: str, why: str) -> None:
    """The one warning of kernels built for another GPU or Triton."""
    warnings.warn(f"{path}: stored Triton kernels not used ({why}); compiling them once "
                  f"on first use", KernelMismatchWarning, stacklevel=4)


def write_to_cache(kernels: list[tuple[str, str, dict[str, bytes]]], path: str) -> int:
    """Put verified kernels (`verify_kernels`' list) into Triton's cache;
    returns how many groups were written (those already there are kept)."""
    from triton.runtime.cache import get_cache_manager
    written = 0
    try:
        for name, khash, files in kernels:
            manager = get_cache_manager(khash)
            meta = next(f for f in files if f.endswith(".json"))
            if manager.get_group(meta) is not None:
                continue
            group = {fname: manager.put(data, fname, binary=True) for fname, data in files.items()}
            manager.put_group(meta, group)
            written += 1
    except (OSError, RuntimeError) as exc:   # an unwritable cache costs compiles, not the load
        warnings.warn(f"{path}: stored Triton kernels not restored (cannot write Triton's cache: "
                      f"{exc}); compiling them once on first use", KernelMismatchWarning,
                      stacklevel=4)
    return written


def describe(entry: Mapping[str, Any]) -> str:
    """Text for `pcc dump --kernels`: a header and one line per kernel."""
    lines = [f"kernels: {len(entry.get('kernels', []))} for {entry.get('target')} "
             f"(triton {entry.get('triton_version')}, batch sizes {entry.get('batch_sizes')}, "
             f"data {entry.get('data_dtypes')}, precision {entry.get('precision')})"]
    for k in entry.get("kernels", []):
        spec = json.loads(k.get("spec", "{}") or "{}")
        opts = spec.get("options", {})
        size = sum(1 for _ in k.get("files", {}))
        lines.append(f"  {k.get('name', '?'):<24} {k.get('hash', '?')[:16]}  "
                     f"warps={opts.get('num_warps', '?')} stages={opts.get('num_stages', '?')}  "
                     + "  ".join(f"{f} sha256={d[:12]}" for f, d in sorted(k['files'].items()))
                     if size else f"  {k.get('name', '?')} (no files)")
    return "\n".join(lines) + "\n"
