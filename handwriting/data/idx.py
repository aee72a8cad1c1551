"""Read and write IDX files, the binary format MNIST and EMNIST ship in.

Layout: two zero bytes, a type code, the number of dimensions, one big-endian
uint32 per dimension, then the values in C order. Files may be gzip-compressed
(``.gz``). Errors name the file and what is wrong, because a half-finished
download is the usual cause and the fix is to delete and re-fetch it.
(torchvision reads the same format, but is not a dependency: see download.py.)
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

# IDX type code -> numpy dtype (multi-byte types are big-endian in the file).
_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODES = {dtype.newbyteorder(">"): code for code, dtype in _DTYPES.items()}


class IDXFormatError(ValueError):
    """The file is not a complete, well-formed IDX file."""


def _read_bytes(path: Path) -> bytes:
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as handle:
                return handle.read()
        return path.read_bytes()
    except FileNotFoundError:
        raise
    except (EOFError, gzip.BadGzipFile, zlib.error) as error:
        raise IDXFormatError(
            f"{path}: damaged or truncated gzip data ({error}); "
            "delete the file and download it again"
        ) from error


def read_idx(path: str | Path) -> np.ndarray:
    """Read a (possibly gzipped) IDX file into a numpy array in native byte order."""
    path = Path(path)
    data = _read_bytes(path)
    if len(data) < 4:
        raise IDXFormatError(f"{path}: only {len(data)} bytes, too short for an IDX header")
    zero, code, ndim = int.from_bytes(data[:2], "big"), data[2], data[3]
    if zero != 0 or code not in _DTYPES:
        raise IDXFormatError(
            f"{path}: not an IDX file (magic number {data[:4].hex()}; expected 0000 followed "
            f"by a type code in {sorted(hex(c) for c in _DTYPES)})"
        )
    header_size = 4 + 4 * ndim
    if len(data) < header_size:
        raise IDXFormatError(f"{path}: truncated header (needs {header_size} bytes)")
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = _DTYPES[code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    actual = len(data) - header_size
    if actual != expected:
        problem = "truncated" if actual < expected else "has trailing bytes"
        raise IDXFormatError(
            f"{path}: {problem}: header says shape {shape} ({expected} data bytes) but the "
            f"file holds {actual}; delete the file and download it again"
        )
    array = np.frombuffer(data, dtype=dtype, offset=header_size).reshape(shape)
    return array.astype(dtype.newbyteorder("="), copy=True)


def write_idx(path: str | Path, array: np.ndarray) -> None:
    """Write ``array`` as IDX (gzipped when the name ends in ``.gz``); used by tests
    to fabricate MNIST/EMNIST-format files."""
    path = Path(path)
    array = np.asarray(array)
    big_endian = array.dtype.newbyteorder(">")
    if big_endian not in _CODES:
        raise ValueError(f"IDX cannot store dtype {array.dtype}")
    header = bytes([0, 0, _CODES[big_endian], array.ndim])
    header += b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    payload = header + np.ascontiguousarray(array, dtype=big_endian).tobytes()
    if path.suffix == ".gz":
        with gzip.open(path, "wb") as handle:
            handle.write(payload)
    else:
        path.write_bytes(payload)
