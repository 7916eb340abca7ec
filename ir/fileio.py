"""Reading and writing .pcir (Model) and Layout files.

A file is an 8-byte prefix (MODEL_MAGIC or LAYOUT_MAGIC, then the 3-byte
big-endian FILE_FORMAT_VERSION) followed by the protobuf bytes.

Big tensors live in one external data file beside the model file, named
`<file name>.data` (e.g. `m.pcir.data`), each with offset, length and sha256
in its `ExternalData`. Tensors of more than `external_threshold` bytes go
there, and, when the inline message would still pass the 2 GB protobuf limit,
the largest remaining ones too.

In memory a loaded message is always *self-contained*: `load()` reads every
external tensor, verifies its length and checksum, and stores the bytes in
`raw_data` (clearing `external`). So `ir.tensor_table(msg)`, the checker and
`save()` never need to know where the bytes came from, and no state hangs off
the protobuf message (upb messages accept no extra attributes). The cost is
one read of the data file at load time, which any use of the model pays
anyway.

Safety: loading never executes code, and never allocates more than the file
holds: every tensor's claimed size is compared with the bytes present (or the
data file's size) before anything is read. External locations must be bare
file names and are read only from the model file's directory. Writes are
atomic: temp files in the target directory, fsync, then `os.replace` (data
file first, then the model file) and an fsync of the folder; on failure the
temp files are removed and the old files stay as they were. `atomic_write`
is the same for one file of bytes, and the one atomic writer of pccompiler
(.pcc files, checkpoints, layout cache entries, sample output).

Crash safety between the two renames: the old model file refers to the old
data file by checksum, so before the new data file replaces it, the old one
is kept (hard link, else copy) as `<data name>~`, and removed once the new
model file is in place. A reader whose checksum does not match the data file
tries that backup (same folder, same byte range, same checksum), so a
process killed between the renames leaves the old model loadable.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from typing import BinaryIO, Union

from google.protobuf.message import DecodeError

from pccompiler.errors import CheckError, InvalidFileError, LoadError, PCError
from pccompiler.ir import pcir_pb2 as pcir
from pccompiler.ir import upgrade as _upgrade
from pccompiler.ir import version as _version
from pccompiler.ir.helpers import is_repeated_field
from pccompiler.ir.tensors import dtype_name, nbytes

Message = Union[pcir.Model, pcir.Layout]

# Protobuf refuses messages of 2 GiB; stay clear of it.
MAX_INLINE_BYTES = 1_900_000_000
# Alignment of tensors in the external data file (lets readers mmap them).
ALIGN = 64
_KINDS = {"model": (pcir.Model, _version.MODEL_MAGIC),
          "layout": (pcir.Layout, _version.LAYOUT_MAGIC)}


def kind_of(msg: Message) -> str:
    """"model" or "layout"."""
    if isinstance(msg, pcir.Model):
        return "model"
    if isinstance(msg, pcir.Layout):
        return "layout"
    raise TypeError(f"ir.save needs a pcir.Model or pcir.Layout, not {type(msg).__name__}")


def header(kind: str) -> bytes:
    """The 8-byte prefix of a file of this kind."""
    return _KINDS[kind][1] + _version.FILE_FORMAT_VERSION.to_bytes(3, "big")


def data_file_name(path: str | os.PathLike) -> str:
    """Bare name of the external data file of `path`."""
    return os.path.basename(os.fspath(path)) + ".data"


# ---------------------------------------------------------------- writing

def skeleton(msg: Message) -> Message:
    """A copy of `msg` without its tensors (no tensor bytes are copied)."""
    out = type(msg)()
    for field, value in msg.ListFields():
        if field.name == "tensors":
            continue
        target = getattr(out, field.name)
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            target.update(value)
        elif is_repeated_field(field):
            target.extend(value)
        elif field.message_type is not None:
            target.CopyFrom(value)
        else:
            setattr(out, field.name, value)
    return out


def _pick_external(msg: Message, threshold: int, external: bool | None,
                   skeleton_bytes: int) -> set[str]:
    sizes = {}
    for t in msg.tensors:
        if t.HasField("external"):
            raise LoadError(f"tensor {t.name!r} still refers to external data "
                            f"{t.external.location!r}; load the file with ir.load() first")
        sizes[t.name] = len(t.raw_data)
    if external is True:
        return {name for name, size in sizes.items() if size > 0}
    chosen = set() if external is False else {n for n, s in sizes.items() if s > threshold}
    inline = skeleton_bytes + sum(s + 64 for n, s in sizes.items() if n not in chosen)
    if external is not False:
        for name in sorted(sizes, key=sizes.get, reverse=True):
            if inline <= MAX_INLINE_BYTES:
                break
            if name not in chosen and sizes[name] > 0:
                chosen.add(name)
                inline -= sizes[name]
    if inline > MAX_INLINE_BYTES:
        raise LoadError(f"the message needs {inline} inline bytes, over the protobuf limit; "
                        "save it with external data")
    return chosen


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# Read once, at import (os.umask can only be read by setting it, which is
# unsafe while other threads create files); `_file_mode` prefers the live
# value Linux shows in /proc/self/status, so a umask set later counts too.
_IMPORT_UMASK = _umask()
_FILE_MODE = 0o666 & ~_IMPORT_UMASK


def _file_mode() -> int:
    """0o666 less the process's current umask: the mode `open()` would give
    a new file (mkstemp's temp files are 0600 whatever the umask)."""
    mask = _IMPORT_UMASK
    try:
        with open("/proc/self/status", "rb") as f:
            for line in f:
                if line.startswith(b"Umask:"):
                    mask = int(line.split()[1], 8)
                    break
    except (OSError, ValueError, IndexError):
        pass
    return 0o666 & ~mask


def check_writable(path: str | os.PathLike, what: str = "") -> str:
    """Refuse, before any work, an output path that no write could succeed
    on: an empty path, an existing directory, a folder that does not exist
    (or is not a folder), or one this process cannot create files in.
    Raises PCError naming the path (after `what`, e.g. "-o"); returns it
    as a str. Writes create a temp file beside the target and rename it, so
    what matters is the folder, not the old file's permissions."""
    path = os.fspath(path)
    if not path:
        raise PCError(f"{what or 'output'}: the path is empty")
    where = f"{what} {path}" if what else path
    if os.path.isdir(path):
        raise PCError(f"{where}: cannot write: it is a directory (give a file name)")
    if path.endswith(("/", os.sep)):
        raise PCError(f"{where}: cannot write: the path names a folder (give a file name)")
    folder = os.path.dirname(path) or "."
    if not os.path.exists(folder):
        raise PCError(f"{where}: cannot write: folder {folder} does not exist (create it first)")
    if not os.path.isdir(folder):
        raise PCError(f"{where}: cannot write: {folder} is not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise PCError(f"{where}: cannot write: permission denied in folder {folder}")
    return path


def _atomic_writer(path: str):
    """(file object, temp path) of a hidden temp file in `path`'s directory,
    with the mode `path` has (else the umask's default, not mkstemp's 0600)."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp",
                               dir=directory)
    try:
        try:
            mode = os.stat(path).st_mode & 0o7777
        except OSError:
            mode = _file_mode()
        os.fchmod(fd, mode)
        return os.fdopen(fd, "wb"), tmp
    except BaseException:
        os.close(fd)
        os.unlink(tmp)
        raise


def _finish(handle: BinaryIO) -> None:
    handle.flush()
    os.fsync(handle.fileno())
    handle.close()


def _sync_folder(path: str) -> None:
    """fsync the folder of `path`, so a rename into it survives a power loss
    (best effort: some file systems refuse to fsync a folder)."""
    try:
        fd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def atomic_write(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to `path` so that readers (and a crash at any point) see
    the old file or the new one, never part of one.

    A hidden temp file in the same folder (`.<name>.XXXX.tmp`, the target's
    mode), written, fsynced, renamed onto `path`, then the folder fsynced.
    On any failure (also KeyboardInterrupt) the temp file is removed and the
    old file is untouched; the OSError propagates (callers decide whether it
    is fatal: the layout cache only warns).
    """
    atomic_write_parts(path, [data])


def atomic_write_parts(path: str | os.PathLike, parts) -> None:
    """`atomic_write` of the concatenation of `parts` (bytes-like objects),
    written one after the other: no buffer of the whole file is built."""
    path = os.fspath(path)
    handle, tmp = _atomic_writer(path)
    try:
        with handle:
            for part in parts:
                handle.write(part)
            _finish(handle)
        os.replace(tmp, path)
        tmp = None
    finally:
        if tmp is not None:
            _unlink_quietly(tmp)
    _sync_folder(path)


def save(msg: Message, path: str | os.PathLike, external_threshold: int = 1 << 20,
         external: bool | None = None) -> None:
    """Write a Model or Layout to `path` atomically.

    `external=None`: tensors over `external_threshold` bytes (and more if the
    message would pass 2 GB) go to `<name>.data` beside the file;
    `external=True`: every non-empty tensor does; `external=False`: none.
    A stale data file of an earlier save is removed when none is needed.
    Raises PCError (naming the file) when the file cannot be written.
    """
    kind = kind_of(msg)
    path = check_writable(path)
    out = skeleton(msg)
    chosen = _pick_external(msg, external_threshold, external, out.ByteSize())
    data_name = data_file_name(path)
    data_path = os.path.join(os.path.dirname(os.path.abspath(path)), data_name)
    temps: list[str] = []
    backup, replaced = None, False
    try:
        data_tmp = None
        if chosen:
            handle, data_tmp = _atomic_writer(data_path)
            temps.append(data_tmp)
            with handle:
                offset = 0
                for t in msg.tensors:
                    copy = out.tensors.add(name=t.name, dtype=t.dtype, dims=t.dims)
                    if t.name not in chosen:
                        copy.raw_data = t.raw_data
                        continue
                    data = t.raw_data
                    pad = -offset % ALIGN
                    handle.write(b"\0" * pad)
                    offset += pad
                    handle.write(data)
                    copy.external.location = data_name
                    copy.external.offset = offset
                    copy.external.length = len(data)
                    copy.external.sha256 = hashlib.sha256(data).hexdigest()
                    offset += len(data)
                _finish(handle)
        else:
            out.tensors.extend(msg.tensors)
        handle, model_tmp = _atomic_writer(path)
        temps.append(model_tmp)
        with handle:
            handle.write(header(kind))
            handle.write(out.SerializeToString())
            _finish(handle)
        if data_tmp is not None:
            backup = _keep_old_data(path, data_path)
            os.replace(data_tmp, data_path)
            replaced = True
        os.replace(model_tmp, path)
        temps.clear()
        replaced = False                          # committed: nothing to roll back
        _sync_folder(path)
        if backup is not None:
            os.unlink(backup)
    except OSError as exc:
        if replaced and backup is not None:       # the model rename failed: roll back
            os.replace(backup, data_path)
        raise PCError(f"{path}: cannot write: {exc.strerror or exc}") from exc
    finally:
        for tmp in temps:
            _unlink_quietly(tmp)
    if not chosen:
        for stale in (data_path, data_path + "~"):
            if os.path.exists(stale):
                os.unlink(stale)


def _keep_old_data(path: str, data_path: str) -> str | None:
    """Keep the data the current model file at `path` refers to as
    `<data_path>~` (atomically) until the new model file is in place;
    returns the backup path. A backup left by a killed save is kept when the
    current model needs it (its data file was already replaced)."""
    if not os.path.exists(data_path):
        return None
    backup = data_path + "~"
    if os.path.exists(backup) and (os.path.samefile(backup, data_path)
                                   or _model_needs_backup(path, data_path)):
        return backup           # (a rename onto the same inode would do nothing)
    folder, name = os.path.split(backup)
    tmp = os.path.join(folder, f".{name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    try:
        os.link(data_path, tmp)
    except OSError:
        shutil.copyfile(data_path, tmp)
    os.replace(tmp, backup)
    return backup


# ---------------------------------------------------------------- reading

def _parse_header(path: str, head: bytes) -> str:
    for kind, (_, magic) in _KINDS.items():
        if head[:5] == magic:
            break
    else:
        raise LoadError(f"{path}: not a pccompiler file (no PCIR/PCLY magic at the start)")
    if len(head) < 8:
        raise LoadError(f"{path}: truncated header")
    version = int.from_bytes(head[5:8], "big")
    if not 1 <= version <= _version.FILE_FORMAT_VERSION:
        raise LoadError(f"{path}: file format version {version} is not supported "
                        f"(this pccompiler reads 1..{_version.FILE_FORMAT_VERSION})")
    return kind


def _resolve_external(path: str, msg: Message) -> None:
    """Read, check and inline every external tensor of `msg`."""
    directory = os.path.dirname(os.path.abspath(path))
    handles: dict[str, tuple[BinaryIO, int]] = {}
    try:
        for t in msg.tensors:
            try:
                expected = nbytes(t)
            except LoadError as exc:
                raise LoadError(f"{path}: {exc}") from None
            if not t.HasField("external"):
                if len(t.raw_data) != expected:
                    raise LoadError(f"{path}: tensor {t.name!r}: dims {list(t.dims)} of "
                                    f"{dtype_name(t.dtype)} need {expected} bytes, "
                                    f"found {len(t.raw_data)}")
                continue
            ext = t.external
            loc = ext.location
            if t.raw_data:
                raise LoadError(f"{path}: tensor {t.name!r} has both inline and external data")
            if (not loc or "/" in loc or "\\" in loc or loc in (".", "..")
                    or os.path.isabs(loc) or "\0" in loc):
                raise LoadError(f"{path}: tensor {t.name!r}: external location {loc!r} must "
                                "be a bare file name beside the model file")
            if ext.length != expected or ext.offset < 0:
                raise LoadError(f"{path}: tensor {t.name!r}: external length {ext.length} "
                                f"(offset {ext.offset}) but dims {list(t.dims)} of "
                                f"{dtype_name(t.dtype)} need {expected} bytes")
            if loc not in handles:
                full = os.path.join(directory, loc)
                try:
                    f = open(full, "rb")
                except OSError as exc:
                    raise LoadError(f"{path}: tensor {t.name!r}: cannot open external data "
                                    f"file {loc!r}: {exc.strerror or exc}") from None
                handles[loc] = (f, os.fstat(f.fileno()).st_size)
            f, size = handles[loc]
            data = None
            if ext.offset + ext.length <= size:
                f.seek(ext.offset)
                data = f.read(ext.length)
                if len(data) != ext.length or hashlib.sha256(data).hexdigest() != ext.sha256:
                    data = None
            if data is None:      # a save killed between its renames left the old bytes
                data = _read_backup(os.path.join(directory, loc), ext)
            if data is None and ext.offset + ext.length > size:
                raise LoadError(f"{path}: tensor {t.name!r}: bytes {ext.offset}.."
                                f"{ext.offset + ext.length} lie beyond the end of {loc!r} "
                                f"({size} bytes)")
            if data is None:
                raise LoadError(f"{path}: tensor {t.name!r}: checksum mismatch in external "
                                f"data file {loc!r} (the file is corrupt or was changed)")
            t.ClearField("external")
            t.raw_data = data
            del data
    finally:
        for f, _ in handles.values():
            f.close()


def _model_needs_backup(path: str, data_path: str) -> bool:
    """True if the model file at `path` does not match `data_path` but its
    backup: checked on its smallest external tensor (one short read)."""
    try:
        with open(path, "rb") as f:
            msg = _KINDS[_parse_header(path, f.read(8))][0]()
            msg.ParseFromString(f.read())
    except (OSError, LoadError, DecodeError, RuntimeError, ValueError):
        return False
    ext = [t.external for t in msg.tensors if t.HasField("external")]
    if not ext:
        return False
    probe = min(ext, key=lambda e: e.length)
    try:
        with open(data_path, "rb") as f:
            f.seek(max(0, probe.offset))
            if hashlib.sha256(f.read(probe.length)).hexdigest() == probe.sha256:
                return False
    except OSError:
        pass
    return _read_backup(data_path, probe) is not None


def _read_backup(full: str, ext: pcir.ExternalData) -> bytes | None:
    """The tensor's bytes from the data file's backup `<full>~` (left by a
    save interrupted between its two renames), or None if they do not match."""
    try:
        with open(full + "~", "rb") as f:
            if ext.offset + ext.length > os.fstat(f.fileno()).st_size:
                return None
            f.seek(ext.offset)
            data = f.read(ext.length)
    except OSError:
        return None
    ok = len(data) == ext.length and hashlib.sha256(data).hexdigest() == ext.sha256
    return data if ok else None


def load(path: str | os.PathLike, kind: str | None = None, check: bool = False) -> Message:
    """Read a Model or Layout file written by `save()`.

    `kind` ("model" or "layout") insists on one; None accepts either.
    Older supported ir_versions are upgraded; every problem is a LoadError
    that names the file (and the tensor, for tensor problems).

    `check=True` also runs the checker (`ir.check` on a Model, the
    self-checks of `ir.check_layout` on a Layout); a broken invariant raises
    `InvalidFileError`, which is a LoadError *and* a CheckError (rule,
    group). So with `check=True` a bad file of any kind ends in LoadError,
    the one class callers catch; `check=False` (the default) leaves the
    checking to the caller (`pcc verify` lists every violation).
    """
    path = os.fspath(path)
    if kind is not None and kind not in _KINDS:
        raise ValueError(f"kind must be 'model', 'layout' or None, not {kind!r}")
    try:
        with open(path, "rb") as f:
            content = f.read()
    except OSError as exc:
        raise LoadError(f"{path}: cannot read: {exc.strerror or exc}") from None
    found = _parse_header(path, content[:8])
    if kind is not None and found != kind:
        raise LoadError(f"{path}: is a {found} file, expected a {kind} file")
    msg = _KINDS[found][0]()
    try:
        msg.ParseFromString(memoryview(content)[8:])
    except (DecodeError, RuntimeError, ValueError) as exc:
        raise LoadError(f"{path}: corrupt or truncated {found} file ({exc})") from None
    del content
    try:
        _upgrade.upgrade(msg, found)
    except LoadError as exc:
        raise LoadError(f"{path}: {exc}") from None
    _resolve_external(path, msg)
    if check:
        check_message(msg, path)
    return msg


def check_message(msg: Message, path: str = "<message>",
                  model: pcir.Model | None = None, arrays=None,
                  model_hash: str | None = None) -> None:
    """Run the checker on a loaded message, raising InvalidFileError naming
    `path`, the rule and the group (a Layout is checked against `model` when
    given, else self-checked). `arrays`: the bytes of a Model's external
    tensors (ir/external_arrays.py), read in place of raw_data.
    `model_hash`: the model's structure_hash when the caller has it."""
    from pccompiler.ir.checker import check as check_model
    from pccompiler.ir.layout_checker import check_layout
    try:
        if isinstance(msg, pcir.Layout):
            check_layout(msg, model, model_hash=model_hash)
        else:
            check_model(msg, arrays=arrays)
    except CheckError as exc:
        err = InvalidFileError(exc.rule, str(exc), exc.group, exc.group_name, exc.values)
        err.args = (f"{path}: {exc}",)
        raise err from None
