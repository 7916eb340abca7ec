"""Mutation fuzzer for .pcir / layout / .pcc files, run as a subprocess.

    python -m tests.robustness.fuzz_worker SEEDS_DIR COUNT SEED MEM_MB OUT.json

SEEDS_DIR holds valid files written by the parent test: `model.pcir`
(block-sparse), `sparse.pcir`, `layout.pcly`, `ext.pcir` (+ `ext.pcir.data`:
a tied model with its tensors stored externally) and `circuit.pcc`; .pcc
mutants are also "resealed" (checksums recomputed, as a forger would). The worker caps its own address space (RLIMIT_AS = what the
imports use + MEM_MB), then mutates the seeds COUNT times: flipped bytes,
truncation, inserted bytes, duplicated protobuf fields, huge varints, and
structured edits (dims of 10^12, num_nodes of 10^12, unknown dtypes,
external locations with `..`, absolute paths or folders, external lengths
and offsets past the file). Each mutant is loaded the way the project loads
files (`ir.load(path, check=True)` and `artifact.decode`), timed, and
classified. The JSON summary lists the counts per outcome and every case
that ended in anything other than success or a LoadError (with traceback).

It imports only the IR and the .pcc reader (no torch), so the memory bound
is tight.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import sys
import time
import traceback

import numpy as np

from pccompiler import ir
from pccompiler.errors import LoadError
from pccompiler.ir import pcir

HUGE = [10 ** 12, 2 ** 40, 2 ** 62, 2 ** 63 - 1, -1, -(2 ** 63)]
BAD_LOCATIONS = ["../x.data", "/etc/passwd", "sub/ext.pcir.data", "..", ".", "", "a\\b",
                 "..\\..\\x", "/dev/zero", "ext.pcir.data\0x", "missing.data"]


# ---------------------------------------------------------------- wire format
def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise ValueError("bad varint")
        b = data[pos]
        value |= (b & 0x7F) << shift
        pos += 1
        shift += 7
        if not b & 0x80:
            return value, pos


def _encode_varint(value: int) -> bytes:
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = value & 0x7F
        value >>= 7
        out.append(b | (0x80 if value else 0))
        if not value:
            return bytes(out)


def top_fields(data: bytes) -> list[tuple[int, int, int, int]]:
    """(start, end, field number, wire type) of each top-level field."""
    fields, pos = [], 0
    while pos < len(data):
        start = pos
        tag, pos = _varint(data, pos)
        wire = tag & 7
        if wire == 0:
            _, pos = _varint(data, pos)
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        elif wire == 2:
            n, pos = _varint(data, pos)
            pos += n
        else:
            raise ValueError("bad wire type")
        fields.append((start, pos, tag >> 3, wire))
    return fields


# ---------------------------------------------------------------- mutations
def flip(rng, payload: bytes) -> bytes:
    b = bytearray(payload)
    for _ in range(int(rng.integers(1, 9))):
        i = int(rng.integers(0, len(b)))
        b[i] ^= int(rng.integers(1, 256))
    return bytes(b)


def truncate(rng, payload: bytes) -> bytes:
    return payload[:int(rng.integers(0, len(payload)))]


def insert(rng, payload: bytes) -> bytes:
    i = int(rng.integers(0, len(payload) + 1))
    junk = rng.integers(0, 256, int(rng.integers(1, 16)), dtype=np.uint8).tobytes()
    return payload[:i] + junk + payload[i:]


def duplicate_field(rng, payload: bytes) -> bytes:
    fields = top_fields(payload)
    s, e, _, _ = fields[int(rng.integers(0, len(fields)))]
    at = fields[int(rng.integers(0, len(fields)))][0] if rng.random() < 0.5 else len(payload)
    return payload[:at] + payload[s:e] + payload[at:]


def huge_varint(rng, payload: bytes) -> bytes:
    """Replace the length (or value) of a top-level field with a huge varint,
    or append a varint field claiming 2^63."""
    fields = top_fields(payload)
    s, e, num, wire = fields[int(rng.integers(0, len(fields)))]
    value = HUGE[int(rng.integers(0, len(HUGE)))]
    if wire == 2 and rng.random() < 0.7:
        _, after_tag = _varint(payload, s)
        _, after_len = _varint(payload, after_tag)
        return payload[:after_tag] + _encode_varint(value) + payload[after_len:]
    tag = _encode_varint((int(rng.integers(1, 20)) << 3) | 0)
    return payload + tag + _encode_varint(value)


def structured(rng, msg, kind: str) -> bytes:
    """A semantic edit of a parsed message: huge dims / num_nodes, unknown
    dtypes, hostile external data, duplicate tensor names."""
    m = type(msg)()
    m.CopyFrom(msg)
    choice = int(rng.integers(0, 8))
    tensors = m.tensors
    t = tensors[int(rng.integers(0, len(tensors)))] if len(tensors) else None
    if choice == 0 and t is not None:
        t.dims[:] = [HUGE[int(rng.integers(0, 4))]] + list(t.dims[1:])
    elif choice == 1 and t is not None:
        t.dims.append(int(rng.integers(2, 5)))                  # bytes no longer match
    elif choice == 2 and t is not None:
        t.dtype = int(rng.choice([0, 7, 8, 99, 2 ** 31 - 1]))
    elif choice == 3 and t is not None:
        t.ClearField("raw_data")
        t.external.location = BAD_LOCATIONS[int(rng.integers(0, len(BAD_LOCATIONS)))]
        t.external.length = int(rng.choice([0, 8, 2 ** 40]))
        t.external.offset = int(rng.choice([0, -8, 2 ** 40]))
    elif choice == 4 and t is not None:
        dup = tensors.add()
        dup.CopyFrom(t)
    elif choice == 5 and kind == "model" and len(m.groups):
        g = m.groups[int(rng.integers(0, len(m.groups)))]
        g.num_nodes = HUGE[int(rng.integers(0, 4))] % (2 ** 63)
    elif choice == 6 and kind == "layout":
        m.num_slots = HUGE[int(rng.integers(0, 4))] % (2 ** 63)
    elif choice == 6 and kind == "model" and len(m.groups):
        g = m.groups[int(rng.integers(0, len(m.groups)))]
        g.scope.append(int(rng.choice([-1, 10 ** 9])))
    else:
        m.ir_version = int(rng.choice([0, 2, 2 ** 62]))
    return m.SerializeToString()


def external_mutation(rng, msg: pcir.Model, data: bytes) -> tuple[bytes, bytes]:
    """Mutate the external references or the data file of an external model."""
    m = pcir.Model()
    m.CopyFrom(msg)
    ext = [t for t in m.tensors if t.HasField("external")]
    t = ext[int(rng.integers(0, len(ext)))]
    choice = int(rng.integers(0, 6))
    if choice == 0:
        t.external.location = BAD_LOCATIONS[int(rng.integers(0, len(BAD_LOCATIONS)))]
    elif choice == 1:
        t.external.offset = HUGE[int(rng.integers(0, len(HUGE)))]
    elif choice == 2:
        t.external.length = HUGE[int(rng.integers(0, len(HUGE)))]
    elif choice == 3:
        t.external.sha256 = "0" * 64
    elif choice == 4:
        return m.SerializeToString(), flip(rng, data) if data else data
    else:
        return m.SerializeToString(), truncate(rng, data) if data else data
    return m.SerializeToString(), data


# ---------------------------------------------------------------- driver
class AcceptedInvalid(Exception):
    """The reader returned content that the checker refuses."""


def _load_file(path: str, kind: str) -> None:
    if kind == "pcc":
        from pccompiler.ir.artifact import read_pcc
        art = read_pcc(path)
        try:                                   # what the reader accepts must be valid
            ir.check(art.model)
            ir.check_layout(art.layout, art.model)
        except Exception as exc:  # noqa: BLE001
            raise AcceptedInvalid(f"read_pcc accepted an invalid file: {exc}") from exc
    else:
        ir.load(path, check=True)


def _pcc_sections(data: bytes) -> tuple[dict, dict[str, bytes]]:
    """(manifest without its table, {name: section bytes}) of a v2 .pcc."""
    n = int.from_bytes(data[8:16], "little")
    manifest = json.loads(data[16:16 + n])
    table = manifest.pop("sections")
    return manifest, {e["name"]: data[e["offset"]:e["offset"] + e["length"]] for e in table}


def reseal(rng, data: bytes, mutate) -> bytes:
    """Mutate the Model or Layout section of .pcc bytes and recompute the
    manifest's checksums (a forged file: only the content checks can catch it)."""
    import hashlib
    from pccompiler.ir.artifact import assemble
    manifest, sections = _pcc_sections(data)
    which = ("model", "layout")[int(rng.integers(0, 2))]
    sections[which] = mutate(rng, sections[which])
    blobs = [(name, len(b), hashlib.sha256(b).hexdigest(), [(0, b)])
             for name, b in sections.items()]
    return b"".join(bytes(p) for p in assemble(manifest, blobs))


def damage_table(rng, data: bytes) -> bytes:
    """A huge manifest length, or a huge offset / length in the section table."""
    blob = bytearray(data)
    huge = HUGE[int(rng.integers(0, len(HUGE)))] % 2 ** 64
    n = int.from_bytes(data[8:16], "little")
    if rng.random() < 0.3:
        blob[8:16] = huge.to_bytes(8, "little")
        return bytes(blob)
    manifest = json.loads(data[16:16 + n])
    entry = manifest["sections"][int(rng.integers(0, len(manifest["sections"])))]
    entry[("offset", "length")[int(rng.integers(0, 2))]] = huge
    text = json.dumps(manifest).encode()
    first = min(e["offset"] for e in json.loads(data[16:16 + n])["sections"])
    if 16 + len(text) > first:
        return bytes(blob[:16 + n // 2])
    blob[8:16] = len(text).to_bytes(8, "little")
    blob[16:16 + len(text)] = text
    blob[16 + len(text):first] = bytes(first - 16 - len(text))
    return bytes(blob)


def run(seeds: str, count: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    work = os.path.join(seeds, "work")
    os.makedirs(work, exist_ok=True)
    originals = {}
    for name, kind in (("model.pcir", "model"), ("layout.pcly", "layout"),
                       ("ext.pcir", "ext"), ("circuit.pcc", "pcc"), ("sparse.pcir", "sparse")):
        with open(os.path.join(seeds, name), "rb") as f:
            originals[kind] = f.read()
    with open(os.path.join(seeds, "ext.pcir.data"), "rb") as f:
        ext_data = f.read()
    parsed = {"model": pcir.Model.FromString(originals["model"][8:]),
              "layout": pcir.Layout.FromString(originals["layout"][8:]),
              "ext": pcir.Model.FromString(originals["ext"][8:]),
              "sparse": pcir.Model.FromString(originals["sparse"][8:])}
    bytewise = [flip, truncate, insert, duplicate_field, huge_varint]
    outcomes: dict[str, int] = {}
    failures: list[dict] = []
    slowest = 0.0
    kinds = ["model", "layout", "ext", "pcc", "pccseal", "sparse"]
    for case in range(count):
        kind = kinds[case % len(kinds)]
        file_kind = {"pcc": "pcc", "pccseal": "pcc", "layout": "layout"}.get(kind, "model")
        source = "pcc" if kind == "pccseal" else kind
        head, payload = originals[source][:8], originals[source][8:]
        data_bytes = ext_data if kind == "ext" else None
        r = rng.random()
        if kind == "pccseal":
            fn = bytewise[int(rng.integers(0, len(bytewise)))]
            op, blob = fn.__name__, reseal(rng, originals["pcc"], fn)
        elif kind == "pcc":
            op = "flip-header" if r < 0.05 else bytewise[int(rng.integers(0, len(bytewise)))].__name__
            if op == "flip-header":
                blob = flip(rng, originals[kind][:8]) + payload
            elif op in ("duplicate_field", "huge_varint"):
                # the .pcc has no protobuf at its top: damage the section table
                blob = damage_table(rng, originals[kind])
            else:
                blob = head + globals()[op](rng, payload)
        elif r < 0.05:
            op, blob = "flip-header", flip(rng, head) + payload
        elif kind == "ext" and r < 0.45:
            op = "external"
            payload, data_bytes = external_mutation(rng, parsed["ext"], ext_data)
            blob = head + payload
        elif r < 0.7:
            fn = bytewise[int(rng.integers(0, len(bytewise)))]
            op, blob = fn.__name__, head + fn(rng, payload)
        else:
            op, blob = "structured", head + structured(rng, parsed[kind], file_kind)
        name = "ext.pcir" if kind == "ext" else f"mutant.{kind}"
        path = os.path.join(work, name)
        with open(path, "wb") as f:
            f.write(blob)
        if kind == "ext":
            with open(path + ".data", "wb") as f:
                f.write(data_bytes)
        start = time.perf_counter()
        try:
            _load_file(path, file_kind)
            result = "ok"
        except LoadError:
            result = "LoadError"
        except BaseException as exc:  # noqa: BLE001 - every other ending is the bug we hunt
            result = type(exc).__name__
            if len(failures) < 20:
                keep = os.path.join(seeds, f"failure-{case}-{name}")
                shutil.copy(path, keep)
                failures.append({"case": case, "kind": kind, "op": op, "error": repr(exc)[:300],
                                 "file": keep, "traceback": traceback.format_exc()[-2000:]})
        elapsed = time.perf_counter() - start
        slowest = max(slowest, elapsed)
        key = f"{kind}:{op}:{result}"
        outcomes[key] = outcomes.get(key, 0) + 1
    return {"count": count, "outcomes": outcomes, "failures": failures, "slowest_s": slowest}


def _status_bytes(field: str) -> int:
    """A memory figure of /proc/self/status (VmSize, VmHWM, ...) in bytes."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0


def main(argv: list[str]) -> int:
    seeds, count, seed, mem_mb, out = argv[0], int(argv[1]), int(argv[2]), int(argv[3]), argv[4]
    import pccompiler.ir.artifact  # noqa: F401  (imported before the cap is set)
    limit = _status_bytes("VmSize") + mem_mb * 2 ** 20
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    start = time.perf_counter()
    summary = run(seeds, count, seed)
    summary["seconds"] = time.perf_counter() - start
    summary["rlimit_as_bytes"] = limit
    summary["peak_rss_kb"] = _status_bytes("VmHWM") // 1024
    with open(out, "w") as f:
        json.dump(summary, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
