"""Parameter tensors that live outside the protobuf Model, handed by reference.

A protobuf Model can only hold a tensor's bytes as `raw_data`, and upb
hands them out only by copying (~1 GB per read for a 146M-edge HCLT). Two
places have the bytes elsewhere already:

* a .pcc file (ir/artifact.py): the parameter tensors sit page-aligned in
  the `params` section, which the reader memory-maps; the Model section
  refers to them by `ExternalData(location="params", offset, length)`;
* a Model lowered in this process (`pccompiler.compile(group)`): the
  frontend's own numpy arrays.

`ExternalArrays` maps tensor names to those numpy arrays (views, no copy) and
travels *beside* the Model (`Backend.compile(model, layout, options,
arrays=...)`), because upb messages take no extra attributes. Packing
(backends/common/packing_upload.py) reads an array from it in place of the
tensor's `raw_data`.

Hashing off the critical path: the bytes of a file are only trusted once
their sha256 matches the manifest. Hashing 1 GB costs about as long as
packing it, so `ExternalArrays` takes a `pending` check: a thread that hashes
the section (hashlib releases the GIL) while the backend packs/uploads. The
loader calls `verify()` after the backend is built and before the circuit
is returned; on a mismatch it raises LoadError and the built engine (and its
upload) is dropped. Until `verify()` has returned nothing built from the
arrays may leave the loader.
"""

from __future__ import annotations

import hashlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterator, Mapping

import numpy as np

from pccompiler.errors import LoadError
from pccompiler.ir import pcir_pb2 as pcir
from pccompiler.ir.tensors import from_numpy

# Bytes hashed per update: big enough that the GIL is released for most of
# the time, small enough to stay in cache next to a concurrent copy.
HASH_CHUNK = 8 << 20
# Threads hashing the chunks of one section (hashlib releases the GIL).
HASH_THREADS = min(8, os.cpu_count() or 1)


class ExternalArrays(Mapping[str, np.ndarray]):
    """Tensor name -> numpy array (read-only view) of tensors held outside
    the Model; `verify()` raises the pending checksum failure, if any."""

    def __init__(self, arrays: Mapping[str, np.ndarray],
                 pending: "SectionHash | None" = None):
        self._arrays = dict(arrays)
        self._pending = pending
        # run once, after the bytes are known good (ir/artifact.py's memo
        # of checked content)
        self.on_verified: list[Callable[[], None]] = []

    def __getitem__(self, name: str) -> np.ndarray:
        return self._arrays[name]

    def __contains__(self, name: object) -> bool:
        # Mapping's default goes through __getitem__ and an exception
        return name in self._arrays

    def __iter__(self) -> Iterator[str]:
        return iter(self._arrays)

    def __len__(self) -> int:
        return len(self._arrays)

    def verify(self) -> None:
        """Wait for the pending checksum (if any); LoadError on a mismatch."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()
        callbacks, self.on_verified = self.on_verified, []
        for callback in callbacks:
            callback()


class SectionHash:
    """sha256 of a buffer computed on a thread, compared on `result()`.
    With `chunks` = (chunk_bytes, [sha256 per chunk]) the chunks are hashed
    on up to HASH_THREADS threads at once and compared instead (each byte is
    still covered by a sha256; a 1 GB section takes a fraction of the time
    one sha256 stream needs on a many-core host)."""

    def __init__(self, data: memoryview, expected: str, what: str, background: bool = True,
                 chunks: tuple[int, list[str]] | None = None):
        self._data, self._expected, self._what = data, expected, what
        if chunks is not None:
            self._expected = chunks[1]
        self._chunk = chunks[0] if chunks is not None else 0
        self._digest: str | list[str] | None = None
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        if background:
            self._thread = threading.Thread(target=self._run, name="pcc-sha256", daemon=True)
            self._thread.start()
        else:
            self._run()

    def _run(self) -> None:
        try:
            if self._chunk:
                view, size = memoryview(self._data).cast("B"), self._chunk
                pieces = [view[p:p + size] for p in range(0, len(view), size)]
                workers = max(1, min(len(pieces), HASH_THREADS))
                with ThreadPoolExecutor(workers, thread_name_prefix="pcc-sha256") as pool:
                    self._digest = list(pool.map(sha256_of, pieces))
            else:
                self._digest = sha256_of(self._data)
        except BaseException as exc:     # re-raised by result()
            self._error = exc
        finally:
            self._data = None

    def result(self) -> None:
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._error is not None:
            raise self._error
        if self._digest != self._expected:
            raise LoadError(f"{self._what} does not match its sha256 (corrupt file); "
                            f"nothing from it was used")


def sha256_of(data: bytes | memoryview) -> str:
    """Hex sha256 of `data`, hashed in HASH_CHUNK pieces (no copy)."""
    view = memoryview(data).cast("B")
    h = hashlib.sha256()
    for pos in range(0, len(view), HASH_CHUNK):
        h.update(view[pos:pos + HASH_CHUNK])
    return h.hexdigest()


def param_tensor_names(model: pcir.Model) -> set[str]:
    """Names of the tensors that hold parameters (input params, sum weights)."""
    names = set()
    for g in model.groups:
        if g.kind == pcir.INPUT and g.input.params:
            names.add(g.input.params)
        elif g.kind == pcir.SUM and g.sum.weights:
            names.add(g.sum.weights)
    return names


def inline_arrays(model: pcir.Model, arrays: Mapping[str, np.ndarray] | None,
                  verify: Callable[[], None] | None = None) -> pcir.Model:
    """A copy of `model` whose external tensors found in `arrays` hold their
    bytes inline again (a self-contained Model, e.g. for `ir.save`, the
    reference backend or `to_model`); `model` itself if nothing is external."""
    if not any(t.HasField("external") for t in model.tensors):
        return model
    if verify is not None:
        verify()
    out = pcir.Model()
    out.CopyFrom(model)
    for t in out.tensors:
        if t.HasField("external"):
            if arrays is None or t.name not in arrays:
                raise LoadError(f"tensor {t.name!r} refers to external data "
                                f"{t.external.location!r} that was not supplied")
            t.CopyFrom(from_numpy(np.asarray(arrays[t.name]).reshape(tuple(t.dims)), t.name))
    return out
