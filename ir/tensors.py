"""The one place that converts tensors between numpy and the IR.

Like ONNX's numpy_helper: `from_numpy` makes a `pcir.Tensor` with inline
little-endian bytes; `to_numpy` reads one back, checking that the byte count
matches dims and dtype *before* allocating anything, so a hostile header that
claims 10^12 elements costs nothing. External tensors are resolved by the file
layer (ir/fileio.py), which passes their bytes in `external_bytes`.
"""

from __future__ import annotations

import math

import numpy as np

from pccompiler.errors import LoadError
from pccompiler.ir import pcir_pb2 as pcir

_NUMPY_OF = {
    pcir.FLOAT32: np.dtype("<f4"),
    pcir.FLOAT64: np.dtype("<f8"),
    pcir.INT32: np.dtype("<i4"),
    pcir.INT64: np.dtype("<i8"),
    pcir.UINT8: np.dtype("u1"),
    pcir.FLOAT16: np.dtype("<f2"),
}
# numpy dtype code without byte order ("f4", "i8", "u1", ...) -> IR dtype
_DTYPE_OF_CODE = {v.str[1:]: k for k, v in _NUMPY_OF.items()}

FLOAT_DTYPES = frozenset({pcir.FLOAT32, pcir.FLOAT64, pcir.FLOAT16, pcir.BFLOAT16})
INT_DTYPES = frozenset({pcir.INT32, pcir.INT64, pcir.UINT8})


def itemsize(dtype: int) -> int:
    """Bytes per element of an IR dtype."""
    if dtype == pcir.BFLOAT16:
        return 2
    if dtype not in _NUMPY_OF:
        raise LoadError(f"tensor has unknown dtype {dtype}")
    return _NUMPY_OF[dtype].itemsize


def dtype_name(dtype: int) -> str:
    return pcir.DataType.Name(dtype) if dtype in pcir.DataType.values() else f"dtype{dtype}"


def num_elements(tensor: pcir.Tensor) -> int:
    """Element count from dims, refusing negative dims."""
    for d in tensor.dims:
        if d < 0:
            raise LoadError(f"tensor {tensor.name!r} has a negative dimension {list(tensor.dims)}")
    return math.prod(tensor.dims)


def nbytes(tensor: pcir.Tensor) -> int:
    """Bytes the tensor's data must have, from its dims and dtype."""
    return num_elements(tensor) * itemsize(tensor.dtype)


def from_numpy(array: np.ndarray, name: str) -> pcir.Tensor:
    """A Tensor named `name` holding a copy of `array` inline (little-endian).

    Booleans are stored as UINT8 and other integer types as INT64.
    """
    return pcir.Tensor(**_tensor_fields(array, name))


def add_tensor(tensors, array: np.ndarray, name: str) -> pcir.Tensor:
    """from_numpy(array, name) made in place as the last entry of the
    repeated field `tensors` (Model.tensors, Layout.tensors): appending a
    made Tensor copies its bytes once more (tens of ms for the arrays of a
    large node circuit)."""
    return tensors.add(**_tensor_fields(array, name))


#: ExternalData.location of a tensor whose bytes are a numpy array of this
#: process (`add_external_tensor`), handed beside the Model.
IN_MEMORY = "memory"


def add_external_tensor(tensors, array: np.ndarray, name: str) -> pcir.Tensor | None:
    """A Tensor named `name` for `array` as the last entry of `tensors`,
    holding no bytes: `external {location: "memory"}` refers to `array`,
    which the caller hands beside the Model (ir/external_arrays.py). None,
    and nothing added, when the array is not stored as it is (its dtype
    needs a conversion, or it is not contiguous and little-endian, the
    byte order of the IR): the caller stores a copy with `add_tensor`."""
    array = np.asarray(array)
    dtype = _DTYPE_OF_CODE.get(array.dtype.str[1:])
    if dtype is None or array.dtype.str[0] not in "<|" or not array.flags.c_contiguous:
        return None
    return tensors.add(name=name, dtype=dtype, dims=list(array.shape),
                       external=pcir.ExternalData(location=IN_MEMORY, length=array.nbytes))


def _tensor_fields(array: np.ndarray, name: str) -> dict:
    array = np.asarray(array)
    dtype = _DTYPE_OF_CODE.get(array.dtype.str[1:])
    if dtype is None:                       # not stored as it is: bool -> UINT8, ints -> INT64
        if array.dtype == np.bool_:
            array = array.astype(np.uint8)
        elif np.issubdtype(array.dtype, np.integer) and array.dtype.itemsize > 1:
            array = array.astype(np.int64)
        dtype = _DTYPE_OF_CODE.get(array.dtype.str[1:])
        if dtype is None:
            raise TypeError(f"tensor {name!r}: unsupported numpy dtype {array.dtype}")
    little = np.ascontiguousarray(array, dtype=_NUMPY_OF[dtype])
    return dict(name=name, dtype=dtype, dims=list(array.shape), raw_data=little.tobytes())


def from_checked_bytes(dtype: int, dims: tuple, data: bytes) -> np.ndarray:
    """A read-only array over `data`, which the caller has already checked
    holds exactly dims x itemsize bytes of a numpy dtype (the checker's
    tensor-bytes rule): to_numpy without its checks, for hot loops."""
    np_dtype = _NUMPY_OF[dtype]
    array = np.frombuffer(data, dtype=np_dtype).reshape(dims)
    return array if np_dtype.isnative else array.astype(np_dtype.newbyteorder("="))


def to_numpy(tensor: pcir.Tensor, external_bytes: bytes | memoryview | None = None,
             copy: bool = False) -> np.ndarray:
    """The tensor's data as a numpy array (read-only view unless `copy`).

    Raises LoadError when the byte count disagrees with dims and dtype, or
    when the data is external and `external_bytes` was not supplied.
    """
    dtype = tensor.dtype
    np_dtype = _NUMPY_OF.get(dtype)
    if np_dtype is None:
        if dtype == pcir.BFLOAT16:
            raise LoadError(f"tensor {tensor.name!r}: bfloat16 tensors are not supported by numpy")
        raise LoadError(f"tensor {tensor.name!r} has unknown dtype {dtype}")
    dims = tuple(tensor.dims)
    expected = nbytes(tensor) if min(dims, default=0) < 0 else math.prod(dims) * np_dtype.itemsize
    if tensor.HasField("external"):
        if external_bytes is None:
            raise LoadError(f"tensor {tensor.name!r} is stored externally in "
                            f"{tensor.external.location!r}; load the model with ir.load()")
        data = external_bytes
    else:
        data = tensor.raw_data
    if len(data) != expected:
        raise LoadError(f"tensor {tensor.name!r}: dims {list(dims)} of "
                        f"{dtype_name(dtype)} need {expected} bytes, found {len(data)}")
    array = from_checked_bytes(dtype, dims, data)
    return array.copy() if copy and np_dtype.isnative else array
