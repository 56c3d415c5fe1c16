# cython: language_level=3, freethreading_compatible=True
"""Incremental UTF-8 validation (RFC 6455 §8.1), compiled twin of :mod:`wsfast._utf8_py`."""

from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from libc.stdint cimport uint8_t

from ._kernels cimport Utf8State, utf8_reset, utf8_scan

from .exceptions import InvalidUTF8Error


def validate_utf8(data) -> bool:
    """Whether *data* (any bytes-like object) is well-formed UTF-8 as a whole."""
    cdef Py_buffer view
    cdef Utf8State state
    cdef Py_ssize_t bad
    PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
    try:
        utf8_reset(&state)
        with nogil:
            bad = utf8_scan(&state, <const uint8_t*>view.buf, view.len)
        return bad < 0 and state.need == 0
    finally:
        PyBuffer_Release(&view)


cdef class Utf8Validator:
    """Validates a UTF-8 stream that arrives in pieces, failing at the earliest provably invalid byte.

    Contract shared with the pure twin: :meth:`feed` raises as soon as the bytes fed so far are not a
    prefix of any well-formed UTF-8 string (Unicode Table 3-7), e.g. on the ``A0`` of ``ED A0`` (a
    surrogate); :meth:`end` raises if the stream stops inside a sequence.

    A validator keeps the state of one stream: an instance must not be used from two threads at once
    without a lock.
    """

    cdef Utf8State _state
    cdef Py_ssize_t _offset

    def __cinit__(self):
        utf8_reset(&self._state)
        self._offset = 0

    def feed(self, data) -> None:
        """Validate the next bytes of the stream.

        Raises:
            InvalidUTF8Error: the stream can no longer be valid UTF-8.
        """
        cdef Py_buffer view
        cdef Py_ssize_t bad
        PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
        try:
            bad = utf8_scan(&self._state, <const uint8_t*>view.buf, view.len)
            if bad >= 0:
                raise InvalidUTF8Error(f"invalid UTF-8 at byte {self._offset + bad}")
            self._offset += view.len
        finally:
            PyBuffer_Release(&view)

    def end(self) -> None:
        """Declare the end of the stream.

        Raises:
            InvalidUTF8Error: the stream stops inside a multi-byte sequence.
        """
        if self._state.need:
            raise InvalidUTF8Error(f"truncated UTF-8 sequence at byte {self._offset}")

    def reset(self) -> None:
        """Start a new stream."""
        utf8_reset(&self._state)
        self._offset = 0
