# cython: language_level=3, freethreading_compatible=True
"""Frame decoding and encoding (RFC 6455 §5), compiled twin of :mod:`wsfast._codec_py`.

Read :mod:`wsfast._codec_py` for the contract both twins keep; the comments here explain what is done for
speed. The decoder parses as many frames per :meth:`Decoder.feed` call as the data holds, straight from the
caller's buffer; it copies only what it must keep across calls (a partial header, the payload of an
unfinished message, a control payload) and builds each message object with a single call.
"""

cimport cython
from cpython.buffer cimport PyBUF_READ, PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from cpython.memoryview cimport PyMemoryView_FromMemory
from cpython.pyport cimport PY_SSIZE_T_MAX
from cpython.unicode cimport PyUnicode_AsUTF8String, PyUnicode_DecodeUTF8
from libc.stdint cimport int64_t, uint8_t, uint64_t
from libc.stdlib cimport free, realloc
from libc.string cimport memcpy, memset

from ._kernels cimport Utf8State, mask_copy, utf8_reset, utf8_scan


cdef extern from "Python.h":
    object PyUnicode_New(Py_ssize_t size, Py_UCS4 maxchar)
    void* PyUnicode_DATA(object unicode)


# zlib's C API, when the build found zlib (setup.py defines WSFAST_HAVE_ZLIB); otherwise stand-ins that are
# never called, and the codec inflates through the zlib module (or any backend module) instead.
cdef extern from *:
    """
    #ifdef WSFAST_HAVE_ZLIB
    #include <zlib.h>
    #define WSFAST_ZLIB 1
    #else
    #define WSFAST_ZLIB 0
    typedef struct {
        const unsigned char *next_in; unsigned int avail_in; unsigned long total_in;
        unsigned char *next_out; unsigned int avail_out; unsigned long total_out;
        const char *msg; void *state; void *zalloc; void *zfree; void *opaque;
        int data_type; unsigned long adler; unsigned long reserved;
    } z_stream;
    #define Z_OK 0
    #define Z_STREAM_END 1
    #define Z_BUF_ERROR (-5)
    #define Z_SYNC_FLUSH 2
    static int inflateInit2(z_stream *s, int w) { (void)s; (void)w; return -6; }
    static int inflate(z_stream *s, int f) { (void)s; (void)f; return -2; }
    static int inflateReset(z_stream *s) { (void)s; return -2; }
    static int inflateEnd(z_stream *s) { (void)s; return 0; }
    #endif
    """
    int WSFAST_ZLIB
    ctypedef struct z_stream:
        const unsigned char* next_in
        unsigned int avail_in
        unsigned char* next_out
        unsigned int avail_out
        const char* msg
    int Z_OK
    int Z_STREAM_END
    int Z_BUF_ERROR
    int Z_SYNC_FLUSH
    int inflateInit2(z_stream* strm, int window_bits) nogil
    int inflate(z_stream* strm, int flush) nogil
    int inflateReset(z_stream* strm) nogil
    int inflateEnd(z_stream* strm) nogil

import os
import zlib
from operator import index

from .exceptions import (
    InvalidCompressedDataError,
    InvalidUTF8Error,
    MessageDecodeError,
    MessageTooBigError,
    ProtocolError,
)
from .frames import Close, Ping, Pong

__all__ = ["DEFAULT_MAX_MESSAGE_SIZE", "Decoder", "Encoder", "close_payload"]

DEFAULT_MAX_MESSAGE_SIZE = 64 * 2**20

cdef enum:
    OP_CONT = 0
    OP_TEXT = 1
    OP_BINARY = 2
    OP_CLOSE = 8
    OP_PING = 9
    OP_PONG = 10

cdef enum:
    READ_HEADER = 0
    READ_PAYLOAD = 1

cdef enum:
    MAX_HEADER = 14                # 2 + 8 (64-bit length) + 4 (masking key)
    MAX_CONTROL_PAYLOAD = 125
    KEY_POOL_SIZE = 1024           # masking keys are drawn from os.urandom() 256 at a time
    KEEP_BUFFER_LIMIT = 8 << 20    # a reassembly buffer larger than this is freed after its message

cdef uint64_t DIRECT_ALLOCATION_LIMIT = 64 << 20  # the largest message allocated before it arrives


cdef inline bint is_valid_close_code(unsigned int code) noexcept:
    # RFC 6455 §7.4.1-7.4.2: 1004 is reserved; 1005, 1006 and 1015 never go on the wire.
    return (1000 <= code <= 1003) or (1007 <= code <= 1014) or (3000 <= code <= 4999)


cdef inline Py_ssize_t header_size(uint8_t second_byte) noexcept:
    cdef uint8_t length7 = second_byte & 0x7F
    if length7 < 126:
        return 2
    return 4 if length7 == 126 else 10


@cython.final
cdef class Decoder:
    """Turns the bytes a server sends into messages (RFC 6455 §5, server-to-client direction).

    ``feed(data)`` returns a list of what became complete, in wire order: ``str`` for a text message,
    ``bytes`` for a binary one, and :class:`~wsfast.Ping`, :class:`~wsfast.Pong`, :class:`~wsfast.Close`
    for control frames.

    One decoder belongs to one connection: it keeps the partial frame and message between calls, so an
    instance must not be used from two threads at once without a lock (the free-threaded build has no
    GIL to serialize the calls). Separate instances are independent and can run in parallel.
    """

    cdef readonly Py_ssize_t control_count
    """How many entries of the last :meth:`feed` result are not data messages (control frames and
    :class:`~wsfast.MessageDecodeError` items): 0 lets a caller skip looking at each entry's type."""
    cdef readonly unsigned long long frames_received
    """How many frame headers this decoder has read, over its whole life (a statistic)."""
    cdef bint _text_as_bytes
    cdef object _loads
    # permessage-deflate (RFC 7692): the negotiated parameters, the inflater, and whether the message in
    # progress is compressed (RSV1 on its first frame); its compressed size so far.
    cdef object _deflate
    cdef object _inflater
    cdef object _decompressobj
    cdef int _inflate_wbits
    # With the standard zlib backend and a build that found zlib, inflate straight into the reassembly
    # buffer through zlib's C API: no Python call and no intermediate bytes per piece.
    cdef bint _c_zlib
    cdef bint _zstream_ready
    cdef z_stream _zstream
    cdef bint _compressed
    cdef uint64_t _wire_len
    cdef int64_t _max_size             # -1: unlimited
    cdef int _state
    cdef uint8_t _header[MAX_HEADER]
    cdef Py_ssize_t _header_len
    # The frame being read.
    cdef bint _fin
    cdef int _opcode
    cdef uint64_t _remaining
    # The data message being reassembled; _message_opcode is 0 when none is in progress.
    cdef int _message_opcode
    # An unfragmented message that arrives in pieces is copied straight into its final bytes object.
    cdef bytes _direct
    cdef Py_ssize_t _direct_len
    # A fragmented message is reassembled here.
    cdef uint8_t* _buffer
    cdef Py_ssize_t _buffer_len
    cdef Py_ssize_t _buffer_cap
    cdef Utf8State _utf8
    # The payload of the control frame being read.
    cdef uint8_t _control[MAX_CONTROL_PAYLOAD]
    cdef Py_ssize_t _control_len
    cdef object _error

    def __cinit__(self):
        self._buffer = NULL
        self._buffer_len = 0
        self._buffer_cap = 0
        self._state = READ_HEADER
        self._header_len = 0
        self._message_opcode = 0
        self._error = None
        self.control_count = 0
        self.frames_received = 0
        utf8_reset(&self._utf8)

    def __init__(
        self, max_message_size=DEFAULT_MAX_MESSAGE_SIZE, *, text_as_bytes=False, loads=None, compression=None
    ):
        self._deflate = compression
        self._inflater = None
        self._compressed = False
        self._wire_len = 0
        if compression is not None:
            self._decompressobj = compression.zlib_backend.decompressobj
            self._inflate_wbits = compression.inflate_wbits
            self._c_zlib = WSFAST_ZLIB and compression.zlib_backend is zlib
        if loads is not None and not callable(loads):
            raise TypeError(f"loads must be callable, not {type(loads).__name__}")
        self._text_as_bytes = bool(text_as_bytes) or loads is not None
        self._loads = loads
        if max_message_size is None:
            self._max_size = -1
        else:
            max_message_size = index(max_message_size)
            if max_message_size < 0:
                raise ValueError(f"max_message_size must be >= 0 or None, not {max_message_size!r}")
            # No frame can declare more than 2**63 - 1 bytes (RFC 6455 §5.2), so larger limits clamp.
            self._max_size = min(max_message_size, 0x7FFFFFFFFFFFFFFF)

    def __dealloc__(self):
        free(self._buffer)
        if self._zstream_ready:
            inflateEnd(&self._zstream)

    @property
    def max_message_size(self):
        """The largest message accepted, in bytes, or ``None`` for no limit."""
        return None if self._max_size < 0 else self._max_size

    def feed(self, data) -> list:
        """Parse *data*, the next bytes from the server, and return the messages it completes.

        Raises:
            ProtocolError: the server broke RFC 6455; ``.close_code`` says how to fail the connection and
                ``.messages`` holds what this call decoded before the offending frame.
        """
        cdef Py_buffer view
        cdef list out
        self.control_count = 0
        if self._error is not None:
            raise type(self._error)(*self._error.args)
        try:
            PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
        except BufferError:
            # A non-contiguous view (e.g. memoryview(data)[::2]) is decoded from a contiguous copy.
            data = memoryview(data).tobytes()
            PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
        out = []
        try:
            self._parse(<const uint8_t*>view.buf, view.len, out)
        except ProtocolError as exc:
            exc.messages = out
            self._error = exc
            self._free_buffer()
            raise
        finally:
            PyBuffer_Release(&view)
        return out

    cdef int _parse(self, const uint8_t* data, Py_ssize_t size, list out) except -1:
        cdef Py_ssize_t pos = 0
        cdef Py_ssize_t take
        cdef Py_ssize_t needed
        cdef Py_ssize_t available
        while True:
            if self._state == READ_HEADER:
                if self._header_len == 0 and size - pos >= 2:
                    # Fast path: the header is read in place.
                    needed = self._check_header_start(data[pos], data[pos + 1])
                    if size - pos >= needed:
                        self._start_frame(data + pos)
                        pos += needed
                    else:
                        memcpy(self._header, data + pos, size - pos)
                        self._header_len = size - pos
                        return 0
                else:
                    if pos >= size:
                        return 0
                    if self._header_len < 2:
                        take = min(2 - self._header_len, size - pos)
                        memcpy(self._header + self._header_len, data + pos, take)
                        self._header_len += take
                        pos += take
                        if self._header_len < 2:
                            return 0
                        self._check_header_start(self._header[0], self._header[1])
                    needed = header_size(self._header[1])
                    take = min(needed - self._header_len, size - pos)
                    memcpy(self._header + self._header_len, data + pos, take)
                    self._header_len += take
                    pos += take
                    if self._header_len < needed:
                        return 0
                    self._header_len = 0
                    self._start_frame(self._header)

            # READ_PAYLOAD; runs even with no data left, so that an empty frame completes at once.
            available = size - pos
            if self._opcode >= OP_CLOSE:
                take = <Py_ssize_t>min(self._remaining, <uint64_t>available)
                memcpy(self._control + self._control_len, data + pos, take)
                self._control_len += take
                self._remaining -= take
                pos += take
                if self._remaining:
                    return 0
                out.append(self._control_frame())
                self.control_count += 1
            elif self._compressed and self._c_zlib:
                take = <Py_ssize_t>min(self._remaining, <uint64_t>available)
                self._inflate_c(data + pos, take)
                self._remaining -= take
                pos += take
                if self._remaining:
                    return 0
                if self._fin:
                    # RFC 7692 §7.2.2: append 00 00 ff ff to the message's payload, then inflate it.
                    self._inflate_c(<const uint8_t*>b"\x00\x00\xff\xff", 4)
                    self._compressed = False
                    self._finish_buffered(out)
            elif self._compressed:
                take = <Py_ssize_t>min(self._remaining, <uint64_t>available)
                if self._fin and self._buffer_len == 0 and <uint64_t>take == self._remaining:
                    # Fast path: the rest of a compressed message is here and nothing was inflated yet:
                    # one inflate call with the tail appended, and its output is the message itself.
                    pos += take
                    self._remaining = 0
                    self._compressed = False
                    self._emit(out, self._inflate_whole(data + pos - take, take))
                    self._message_opcode = 0
                    self._state = READ_HEADER
                    continue
                output = self._inflate(data + pos, take, False)
                self._append(<const uint8_t*>PyBytes_AS_STRING(output), len(output))
                self._remaining -= take
                pos += take
                if self._remaining:
                    return 0
                if self._fin:
                    # RFC 7692 §7.2.2: append 00 00 ff ff to the message's payload, then inflate it.
                    output = self._inflate(<const uint8_t*>b"\x00\x00\xff\xff", 4, False)
                    self._append(<const uint8_t*>PyBytes_AS_STRING(output), len(output))
                    self._compressed = False
                    self._finish_buffered(out)
            elif (self._buffer_len == 0 and self._fin and self._direct is None
                    and self._remaining <= DIRECT_ALLOCATION_LIMIT):
                if self._remaining <= <uint64_t>available:
                    # Fast path: the whole message is in *data*; build it straight from there.
                    take = <Py_ssize_t>self._remaining
                    self._emit(out, self._message(data + pos, take))
                    pos += take
                    self._message_opcode = 0
                else:
                    # An unfragmented message larger than what has arrived: allocate its bytes object
                    # now and copy each piece into place: one copy in all, no reallocation. The length
                    # was checked against max_message_size and DIRECT_ALLOCATION_LIMIT, and pages that
                    # no data reached cost no memory. Larger claims (max_message_size=None) grow the
                    # reassembly buffer as data arrives instead.
                    self._direct = PyBytes_FromStringAndSize(NULL, <Py_ssize_t>self._remaining)
                    self._direct_len = 0
                    pos += self._fill_direct(data + pos, available)
                    return 0
            elif self._direct is not None:
                take = self._fill_direct(data + pos, available)
                pos += take
                if self._remaining:
                    return 0
                self._emit(out, self._finish_direct())
            else:
                take = <Py_ssize_t>min(self._remaining, <uint64_t>available)
                self._append(data + pos, take)
                self._remaining -= take
                pos += take
                if self._remaining:
                    return 0
                if self._fin:
                    self._finish_buffered(out)
            self._state = READ_HEADER

    cdef int _finish_buffered(self, list out) except -1:
        """Emit the message reassembled in the buffer and make the buffer ready for the next one."""
        if self._message_opcode == OP_TEXT:
            self._emit(out, self._validated_text(self._buffer, self._buffer_len, None))
        else:
            out.append(PyBytes_FromStringAndSize(<const char*>self._buffer, self._buffer_len))
        self._message_opcode = 0
        self._buffer_len = 0
        if self._buffer_cap > KEEP_BUFFER_LIMIT:
            self._free_buffer()
        return 0

    cdef bytes _inflate(self, const uint8_t* data, Py_ssize_t size, bint with_tail):
        """Inflate a piece of a compressed message (plus the tail), never past max_message_size.

        The inflater is kept from message to message even with server_no_context_takeover: a server
        that resets its compressor never refers back to earlier messages, so the window the inflater
        keeps is never used, and it saves making an inflater per message.
        """
        cdef Py_ssize_t limit = -1
        cdef bytes output
        cdef bytes piece
        cdef Py_ssize_t bad
        if self._inflater is None:
            self._inflater = self._decompressobj(self._inflate_wbits)
        if self._max_size >= 0:
            limit = <Py_ssize_t>min(<int64_t>self._max_size - self._buffer_len, <int64_t>PY_SSIZE_T_MAX - 1)
        if with_tail:
            piece = PyBytes_FromStringAndSize(NULL, size + 4)
            memcpy(PyBytes_AS_STRING(piece), data, size)
            memcpy(PyBytes_AS_STRING(piece) + size, b"\x00\x00\xff\xff", 4)
            source = piece
        else:
            source = PyMemoryView_FromMemory(<char*>data, size, PyBUF_READ)
        try:
            # Asking for one byte more than the limit allows tells "exactly at the limit" from "over".
            output = self._inflater.decompress(source, 0 if limit < 0 else limit + 1)
            while self._inflater.eof and (limit < 0 or len(output) <= limit):
                # A final DEFLATE block (BFINAL) ended the stream. RFC 7692 §7.2.3.3: what follows starts
                # a new stream, as in _inflate_c (inflateReset), so both paths and twins agree.
                rest = self._inflater.unused_data
                self._inflater = self._decompressobj(self._inflate_wbits)
                if not rest:
                    break
                output = output + self._inflater.decompress(rest, 0 if limit < 0 else limit + 1 - len(output))
        except Exception as exc:  # zlib.error, or the backend's equivalent
            raise InvalidCompressedDataError(f"invalid compressed data: {exc}") from None
        if limit >= 0 and len(output) > limit:
            if self._message_opcode == OP_TEXT:
                # Text within the limit is validated first (as in the pure twin), so the error (1007 or
                # 1009) does not depend on how much was inflated per call, i.e. on the split.
                bad = utf8_scan(&self._utf8, <const uint8_t*>PyBytes_AS_STRING(output), limit)
                if bad >= 0:
                    raise InvalidUTF8Error(
                        f"invalid UTF-8 at byte {self._buffer_len + bad} of a text message"
                    )
            raise MessageTooBigError(
                f"message inflates to more than max_message_size={self._max_size} bytes"
            )
        return output

    cdef int _inflate_c(self, const uint8_t* data, Py_ssize_t size) except -1:
        """Inflate a piece of a compressed message straight into the reassembly buffer (zlib's C API),
        never past max_message_size, validating text as it comes out."""
        cdef Py_ssize_t start = self._buffer_len
        cdef Py_ssize_t bound = PY_SSIZE_T_MAX if self._max_size < 0 else <Py_ssize_t>self._max_size + 1
        cdef Py_ssize_t room
        cdef Py_ssize_t capacity
        cdef Py_ssize_t bad
        cdef unsigned int given
        cdef void* grown
        cdef int rc
        if not self._zstream_ready:
            memset(&self._zstream, 0, sizeof(z_stream))
            if inflateInit2(&self._zstream, self._inflate_wbits) != Z_OK:
                raise MemoryError("zlib could not start an inflater")
            self._zstream_ready = True
        self._zstream.next_in = data
        self._zstream.avail_in = <unsigned int>size  # pieces are at most one read: far below 4 GiB
        while True:
            room = self._buffer_cap - self._buffer_len
            if room < 4096 and self._buffer_cap < bound:
                # Geometric growth, never past max_message_size + 1 (which is how excess is seen).
                capacity = min(max(self._buffer_cap * 2, self._buffer_len + 4 * size + 4096), bound)
                grown = realloc(self._buffer, capacity)
                if grown == NULL:
                    raise MemoryError()
                self._buffer = <uint8_t*>grown
                self._buffer_cap = capacity
                room = capacity - self._buffer_len
            room = min(room, bound - self._buffer_len, 0x40000000)
            self._zstream.next_out = self._buffer + self._buffer_len
            self._zstream.avail_out = <unsigned int>room
            given = self._zstream.avail_out
            with nogil:
                rc = inflate(&self._zstream, Z_SYNC_FLUSH)
            self._buffer_len += given - self._zstream.avail_out
            if self._buffer_len >= bound and bound != PY_SSIZE_T_MAX:
                if self._message_opcode == OP_TEXT and bound - 1 > start:
                    # Text within the limit is validated first: the error must not depend on the split.
                    bad = utf8_scan(&self._utf8, self._buffer + start, bound - 1 - start)
                    if bad >= 0:
                        raise InvalidUTF8Error(f"invalid UTF-8 at byte {start + bad} of a text message")
                raise MessageTooBigError(
                    f"message inflates to more than max_message_size={self._max_size} bytes"
                )
            if rc == Z_STREAM_END:
                # A final DEFLATE block (BFINAL): the next message starts a new stream (RFC 7692 §7.2.3.3).
                inflateReset(&self._zstream)
                if self._zstream.avail_in == 0:
                    break
            elif rc != Z_OK and rc != Z_BUF_ERROR:
                message = (<bytes>self._zstream.msg).decode("utf-8", "replace") if self._zstream.msg else rc
                raise InvalidCompressedDataError(f"invalid compressed data: {message}")
            elif self._zstream.avail_in == 0 and self._zstream.avail_out != 0:
                break
            elif rc == Z_BUF_ERROR and self._zstream.avail_out != 0:
                break  # no progress possible: everything given was consumed
        if self._message_opcode == OP_TEXT and self._buffer_len > start:
            # RFC 6455 §8.1: fail fast on the inflated text too.
            bad = utf8_scan(&self._utf8, self._buffer + start, self._buffer_len - start)
            if bad >= 0:
                raise InvalidUTF8Error(f"invalid UTF-8 at byte {start + bad} of a text message")
        return 0

    cdef object _inflate_whole(self, const uint8_t* data, Py_ssize_t size):
        """A whole compressed message in one inflate call; the output bytes become the message."""
        cdef bytes output = self._inflate(data, size, True)
        cdef Py_ssize_t bad
        if self._message_opcode == OP_BINARY:
            return output
        bad = utf8_scan(&self._utf8, <const uint8_t*>PyBytes_AS_STRING(output), len(output))
        if bad >= 0:
            raise InvalidUTF8Error(f"invalid UTF-8 at byte {bad} of a text message")
        return self._validated_text(<const uint8_t*>PyBytes_AS_STRING(output), len(output), output)

    cdef Py_ssize_t _check_header_start(self, uint8_t first, uint8_t second) except -1:
        """Apply every rule the first two header bytes decide; return the header size."""
        cdef int opcode = first & 0x0F
        # RFC 6455 §5.2: "MUST be 0 unless an extension is negotiated that defines meanings".
        if first & 0x70:
            if first & 0x70 != 0x40 or self._deflate is None:
                raise ProtocolError("reserved bits RSV1-3 are set but no extension was negotiated")
            # RFC 7692 §6.1: RSV1 marks the first frame of a compressed message, nothing else.
            if opcode == OP_CONT or opcode >= OP_CLOSE:
                raise ProtocolError("RSV1 is set on a continuation or control frame")
        # RFC 6455 §5.2: "If an unknown opcode is received, the receiving endpoint MUST _Fail_".
        if (OP_BINARY < opcode < OP_CLOSE) or opcode > OP_PONG:
            raise ProtocolError(f"reserved opcode {opcode:#x}")
        if opcode >= OP_CLOSE:
            # RFC 6455 §5.5: "Control frames themselves MUST NOT be fragmented."
            if not first & 0x80:
                raise ProtocolError("fragmented control frame")
            # RFC 6455 §5.5: "All control frames MUST have a payload length of 125 bytes or less".
            # (126 and 127 announce an extended length, checked in _start_frame.)
            if MAX_CONTROL_PAYLOAD < (second & 0x7F) < 126:
                raise ProtocolError("control frame payload longer than 125 bytes")
        elif opcode == OP_CONT:
            if not self._message_opcode:
                raise ProtocolError("continuation frame without a message to continue")
        elif self._message_opcode:
            # RFC 6455 §5.4: fragments of one message are not interleaved with another data message.
            raise ProtocolError("new data frame before the fragmented message was finished")
        # RFC 6455 §5.1: "A client MUST close a connection if it detects a masked frame."
        if second & 0x80:
            raise ProtocolError("masked frame from the server")
        return header_size(second)

    cdef int _start_frame(self, const uint8_t* header) except -1:
        """Read the payload length of a checked header and prepare to read the payload."""
        cdef uint8_t length7 = header[1] & 0x7F
        cdef uint64_t length
        cdef uint64_t held
        cdef int i
        self.frames_received += 1
        if length7 < 126:
            length = length7
        elif length7 == 126:
            length = (<uint64_t>header[2] << 8) | header[3]
        else:
            length = 0
            for i in range(2, 10):
                length = (length << 8) | header[i]
            # RFC 6455 §5.2: "the most significant bit MUST be 0".
            if length >> 63:
                raise ProtocolError("64-bit payload length has its most significant bit set")
        self._fin = (header[0] & 0x80) != 0
        self._opcode = header[0] & 0x0F
        self._remaining = length
        self._state = READ_PAYLOAD
        if self._opcode >= OP_CLOSE:
            if length > MAX_CONTROL_PAYLOAD:
                raise ProtocolError("control frame payload longer than 125 bytes")
            self._control_len = 0
            return 0
        if self._opcode != OP_CONT:
            self._compressed = (header[0] & 0x40) != 0
            self._wire_len = 0
        # RFC 6455 §10.4: checked against the declared length, before any payload is buffered. (For a
        # compressed message the declared lengths are compressed bytes; its inflated size is checked
        # while it inflates.)
        held = self._wire_len if self._compressed else <uint64_t>self._buffer_len
        if self._max_size >= 0 and length > <uint64_t>self._max_size - held:
            raise MessageTooBigError(
                f"message of at least {held + length} bytes exceeds max_message_size={self._max_size}"
            )
        self._wire_len += length
        if self._opcode != OP_CONT:
            self._message_opcode = self._opcode
            self._buffer_len = 0
            utf8_reset(&self._utf8)
        return 0

    cdef Py_ssize_t _fill_direct(self, const uint8_t* data, Py_ssize_t available) except -1:
        """Copy the next piece of an unfragmented message into its bytes object; return its size."""
        cdef Py_ssize_t take = <Py_ssize_t>min(self._remaining, <uint64_t>available)
        cdef Py_ssize_t bad
        if self._message_opcode == OP_TEXT:
            # RFC 6455 §8.1: fail fast, even inside a frame that has not fully arrived yet.
            bad = utf8_scan(&self._utf8, data, take)
            if bad >= 0:
                raise InvalidUTF8Error(f"invalid UTF-8 at byte {self._direct_len + bad} of a text message")
        memcpy(PyBytes_AS_STRING(self._direct) + self._direct_len, data, take)
        self._direct_len += take
        self._remaining -= take
        return take

    cdef object _finish_direct(self):
        cdef bytes payload = self._direct
        cdef int opcode = self._message_opcode
        self._direct = None
        self._message_opcode = 0
        if opcode == OP_BINARY:
            return payload
        return self._validated_text(<const uint8_t*>PyBytes_AS_STRING(payload), self._direct_len, payload)

    cdef inline int _emit(self, list out, object message) except -1:
        if type(message) is MessageDecodeError:
            self.control_count += 1
        out.append(message)
        return 0

    cdef object _text_bytes(self, object payload):
        """A validated text payload as bytes, or what *loads* makes of it."""
        if self._loads is None:
            return payload
        try:
            return self._loads(payload)
        except Exception as exc:
            error = MessageDecodeError(f"loads() failed on a text message: {exc!r}", payload)
            error.__cause__ = exc
            return error

    cdef object _validated_text(self, const uint8_t* data, Py_ssize_t size, object payload):
        """Build the str (or bytes) of a text message that utf8_scan validated as it arrived."""
        cdef object text
        if self._utf8.need:
            raise InvalidUTF8Error("text message ends inside a UTF-8 sequence")
        if self._text_as_bytes:
            if payload is None:
                payload = PyBytes_FromStringAndSize(<const char*>data, size)
            return self._text_bytes(payload)
        if self._utf8.non_ascii:
            return PyUnicode_DecodeUTF8(<const char*>data, size, NULL)
        # All ASCII, already validated: a compact ASCII str is exactly these bytes, so copy them into
        # one instead of decoding again (about 2x faster on a 4 MiB order-book snapshot).
        text = PyUnicode_New(size, 127)
        memcpy(PyUnicode_DATA(text), data, size)
        return text

    cdef int _append(self, const uint8_t* data, Py_ssize_t size) except -1:
        """Add part of a fragmented or incomplete message to the reassembly buffer."""
        cdef Py_ssize_t needed = self._buffer_len + size
        cdef Py_ssize_t capacity
        cdef void* grown
        cdef Py_ssize_t bad
        if size == 0:
            # An empty fragment: nothing to add, and memcpy() to a buffer not yet allocated (NULL) is
            # undefined behaviour even for 0 bytes (found by UndefinedBehaviorSanitizer).
            return 0
        if self._message_opcode == OP_TEXT:
            # RFC 6455 §8.1: fail fast, even inside a frame that has not fully arrived yet.
            bad = utf8_scan(&self._utf8, data, size)
            if bad >= 0:
                raise InvalidUTF8Error(f"invalid UTF-8 at byte {self._buffer_len + bad} of a text message")
        if needed > self._buffer_cap:
            # Geometric growth keeps reassembly linear (65,536 small fragments cost 17 reallocations).
            capacity = max(needed, self._buffer_cap * 2, 4096)
            grown = realloc(self._buffer, capacity)
            if grown == NULL:
                raise MemoryError()
            self._buffer = <uint8_t*>grown
            self._buffer_cap = capacity
        memcpy(self._buffer + self._buffer_len, data, size)
        self._buffer_len = needed
        return 0

    cdef void _free_buffer(self) noexcept:
        self._direct = None
        free(self._buffer)
        self._buffer = NULL
        self._buffer_len = 0
        self._buffer_cap = 0

    cdef object _message(self, const uint8_t* data, Py_ssize_t size):
        cdef Utf8State state
        cdef Py_ssize_t bad
        if self._message_opcode == OP_BINARY:
            return PyBytes_FromStringAndSize(<const char*>data, size)
        if self._text_as_bytes:
            utf8_reset(&state)
            bad = utf8_scan(&state, data, size)
            if bad >= 0:
                raise InvalidUTF8Error(f"invalid UTF-8 at byte {bad} of a text message")
            if state.need:
                raise InvalidUTF8Error("text message ends inside a UTF-8 sequence")
            return self._text_bytes(PyBytes_FromStringAndSize(<const char*>data, size))
        try:
            return PyUnicode_DecodeUTF8(<const char*>data, size, NULL)
        except UnicodeDecodeError as exc:
            raise InvalidUTF8Error(f"invalid UTF-8 at byte {exc.start} of a text message") from None

    cdef object _control_frame(self):
        cdef unsigned int code
        cdef bytes payload = PyBytes_FromStringAndSize(<const char*>self._control, self._control_len)
        if self._opcode == OP_PING:
            return Ping(payload)
        if self._opcode == OP_PONG:
            return Pong(payload)
        # RFC 6455 §5.5.1: an empty close body is allowed; otherwise a 2-byte code comes first.
        if self._control_len == 0:
            return Close(1005, "")
        if self._control_len == 1:
            raise ProtocolError("close frame with a 1-byte payload")
        code = (<unsigned int>self._control[0] << 8) | self._control[1]
        if not is_valid_close_code(code):
            raise ProtocolError(f"invalid close code {code}")
        try:
            reason = PyUnicode_DecodeUTF8(<const char*>self._control + 2, self._control_len - 2, NULL)
        except UnicodeDecodeError:
            raise InvalidUTF8Error("close reason is not valid UTF-8") from None
        return Close(code, reason)


@cython.final
cdef class Encoder:
    """Builds masked client frames (RFC 6455 §5.2-5.3).

    Every frame gets a fresh masking key from :func:`os.urandom`, a cryptographically secure source as
    RFC 6455 §10.3 requires; keys are fetched 256 at a time so small sends stay cheap. Masking is fused
    with the copy of the payload into the frame.

    One encoder belongs to one connection: an instance must not be used from two threads at once without
    a lock (the free-threaded build has no GIL to serialize the calls; :class:`~wsfast.WebSocketClient`
    holds its write lock around every use). Separate instances are independent.
    """

    cdef uint8_t _keys[KEY_POOL_SIZE]
    cdef Py_ssize_t _key_pos

    def __cinit__(self):
        self._key_pos = KEY_POOL_SIZE

    def encode(self, payload, opcode, bint fin=True, bint rsv1=False) -> bytes:
        """Return one masked frame carrying *payload* (``str`` is encoded as UTF-8).

        *rsv1* marks the first frame of a permessage-deflate message (RFC 7692 §6).

        Raises:
            ValueError: reserved opcode, fragmented control frame, control payload over 125 bytes, a
                CLOSE payload that is not a valid close (RFC 6455 §5.5, §7.4), or RSV1 on a frame other
                than TEXT or BINARY.
        """
        cdef Py_buffer view
        cdef int op
        if isinstance(payload, str):
            payload = PyUnicode_AsUTF8String(payload)
        try:
            op = opcode
        except OverflowError:
            op = -1
        if (OP_BINARY < op < OP_CLOSE) or op > OP_PONG or op < 0:
            raise ValueError(f"invalid opcode {opcode}")
        PyObject_GetBuffer(payload, &view, PyBUF_SIMPLE)
        try:
            if rsv1 and op not in (OP_TEXT, OP_BINARY):
                raise ValueError("RSV1 (compression) can only mark a TEXT or BINARY frame")
            if op >= OP_CLOSE:
                if not fin:
                    raise ValueError("control frames cannot be fragmented")
                if view.len > MAX_CONTROL_PAYLOAD:
                    raise ValueError(f"control frame payload is {view.len} bytes; the limit is 125")
                if op == OP_CLOSE:
                    check_close_payload(<const uint8_t*>view.buf, view.len)
            return self._frame(<const uint8_t*>view.buf, view.len, op | (0x40 if rsv1 else 0), fin)
        finally:
            PyBuffer_Release(&view)

    def encode_close(self, code=1000, reason="") -> bytes:
        """Return a masked CLOSE frame with *code* and *reason*, or an empty body if *code* is None.

        Raises:
            ValueError: *code* may not be sent (RFC 6455 §7.4), a reason without a code, or a body over
                125 bytes.
        """
        return self.encode(close_payload(code, reason), OP_CLOSE)

    cdef bytes _frame(self, const uint8_t* payload, Py_ssize_t size, int opcode, bint fin):
        cdef Py_ssize_t header
        cdef uint8_t* p
        cdef bytes frame
        cdef int i
        cdef Py_ssize_t key_pos
        if size < 126:
            header = 6
        elif size < 65536:
            header = 8
        else:
            header = 14
        frame = PyBytes_FromStringAndSize(NULL, header + size)
        p = <uint8_t*>PyBytes_AS_STRING(frame)
        p[0] = (0x80 if fin else 0) | opcode
        if size < 126:
            p[1] = 0x80 | <uint8_t>size
        elif size < 65536:
            p[1] = 0x80 | 126
            p[2] = <uint8_t>(size >> 8)
            p[3] = <uint8_t>size
        else:
            p[1] = 0x80 | 127
            for i in range(8):
                p[2 + i] = <uint8_t>(<uint64_t>size >> (56 - 8 * i))
        # The position is read once and bounds-checked as read: even an Encoder shared between threads
        # against the rules (free-threaded builds have no GIL to serialize calls) never reads past the pool.
        key_pos = self._key_pos
        if key_pos > KEY_POOL_SIZE - 4:
            memcpy(self._keys, PyBytes_AS_STRING(os.urandom(KEY_POOL_SIZE)), KEY_POOL_SIZE)
            key_pos = 0
        memcpy(p + header - 4, self._keys + key_pos, 4)
        self._key_pos = key_pos + 4
        mask_copy(p + header, payload, size, p + header - 4)
        return frame


def close_payload(code, reason) -> bytes:
    """The body of a CLOSE frame: a 2-byte code and a UTF-8 reason, or nothing if *code* is None."""
    if not isinstance(reason, str):
        raise TypeError(f"the close reason must be a str, not {type(reason).__name__}")
    if code is None:
        if reason:
            raise ValueError("a close reason needs a close code")
        return b""
    if not isinstance(code, int):
        raise TypeError(f"the close code must be an int, not {type(code).__name__}")
    if not (0 <= code <= 0xFFFF and is_valid_close_code(code)):
        raise ValueError(f"close code {code!r} may not be sent (RFC 6455 §7.4)")
    return int(code).to_bytes(2, "big") + reason.encode("utf-8")


cdef int check_close_payload(const uint8_t* body, Py_ssize_t size) except -1:
    cdef unsigned int code
    if size == 0:
        return 0
    if size == 1:
        raise ValueError("a close payload cannot be 1 byte long")
    code = (<unsigned int>body[0] << 8) | body[1]
    if not is_valid_close_code(code):
        raise ValueError(f"close code {code} may not be sent (RFC 6455 §7.4)")
    try:
        PyUnicode_DecodeUTF8(<const char*>body + 2, size - 2, NULL)
    except UnicodeDecodeError:
        raise ValueError("close reason is not valid UTF-8") from None
    return 0
