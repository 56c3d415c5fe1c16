# cython: language_level=3, freethreading_compatible=True
"""XOR masking (RFC 6455 §5.3), compiled twin of :mod:`wsfast._mask_py`."""

from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from libc.stdint cimport uint8_t

from ._kernels cimport mask_copy


def apply_mask(data, mask) -> bytes:
    """Return *data* XOR-ed with the 4-byte *mask* repeated (RFC 6455 §5.3).

    Masking is its own inverse: ``apply_mask(apply_mask(d, m), m) == d``.

    Raises:
        ValueError: *mask* is not 4 bytes long.
    """
    cdef Py_buffer src
    cdef Py_buffer key
    cdef bytes out
    cdef uint8_t* dst
    PyObject_GetBuffer(data, &src, PyBUF_SIMPLE)
    try:
        PyObject_GetBuffer(mask, &key, PyBUF_SIMPLE)
        try:
            if key.len != 4:
                raise ValueError(f"mask must be 4 bytes long, not {key.len}")
            out = PyBytes_FromStringAndSize(NULL, src.len)
            dst = <uint8_t*>PyBytes_AS_STRING(out)
            with nogil:
                mask_copy(dst, <const uint8_t*>src.buf, src.len, <const uint8_t*>key.buf)
            return out
        finally:
            PyBuffer_Release(&key)
    finally:
        PyBuffer_Release(&src)
