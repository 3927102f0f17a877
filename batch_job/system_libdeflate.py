"""The system's libdeflate (the one Debian's bgzip links), through ctypes, when it is installed.

libdeflate's output differs between versions on tiny inputs, so the `deflate` wheel (which bundles
its own libdeflate) and Debian's bgzip disagree on inputs or last blocks below about 600 bytes.
Compressing with the very library bgzip links makes every block identical, whatever its size.
ctypes releases the GIL during each call, so blocks still compress in parallel threads.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading

_SONAMES = ("libdeflate.so.0", "libdeflate.so")


def _load() -> ctypes.CDLL | None:
    for name in (*_SONAMES, ctypes.util.find_library("deflate")):
        if not name:
            continue
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            continue
        lib.libdeflate_alloc_compressor.restype = ctypes.c_void_p
        lib.libdeflate_alloc_compressor.argtypes = [ctypes.c_int]
        lib.libdeflate_deflate_compress.restype = ctypes.c_size_t
        lib.libdeflate_deflate_compress.argtypes = [
            ctypes.c_void_p,
            ctypes.c_char_p,
            ctypes.c_size_t,
            ctypes.c_void_p,
            ctypes.c_size_t,
        ]
        lib.libdeflate_deflate_compress_bound.restype = ctypes.c_size_t
        lib.libdeflate_deflate_compress_bound.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
        lib.libdeflate_crc32.restype = ctypes.c_uint32
        lib.libdeflate_crc32.argtypes = [ctypes.c_uint32, ctypes.c_char_p, ctypes.c_size_t]
        return lib
    return None


LIB = _load()
_local = threading.local()


def available() -> bool:
    return LIB is not None


def _compressor(level: int) -> tuple[int, ctypes.Array]:
    """One compressor and output buffer per thread and level: libdeflate's compressors are not
    thread-safe, and reusing the buffer saves allocating one per block."""
    compressors = _local.__dict__.setdefault("compressors", {})
    if level not in compressors:
        handle = LIB.libdeflate_alloc_compressor(level)
        if not handle:
            raise ValueError(f"libdeflate refuses compression level {level}")
        compressors[level] = (handle, ctypes.create_string_buffer(0))
    return compressors[level]


def deflate_compress(data: bytes, level: int) -> bytes:
    compressor, out = _compressor(level)
    bound = LIB.libdeflate_deflate_compress_bound(compressor, len(data))
    if len(out) < bound:
        out = ctypes.create_string_buffer(bound)
        _local.compressors[level] = (compressor, out)
    size = LIB.libdeflate_deflate_compress(compressor, data, len(data), out, bound)
    if size == 0:
        raise ValueError("libdeflate could not compress a block within its own bound")
    return ctypes.string_at(out, size)


def crc32(data: bytes) -> int:
    return LIB.libdeflate_crc32(0, data, len(data))
