# cython: language_level=3
"""C kernels shared by the compiled modules: XOR masking and incremental UTF-8 validation.

Both are ``cdef inline`` so that each ``*_c`` module that cimports them gets its own copy, inlined into
its hot loop. The pure-Python twins are ``_mask_py.apply_mask`` and ``_utf8_py.Utf8Validator``.
"""

from libc.stdint cimport uint8_t, uint32_t, uint64_t
from libc.string cimport memcpy


cdef inline void mask_copy(uint8_t* dst, const uint8_t* src, Py_ssize_t n,
                           const uint8_t* key) noexcept nogil:
    """Write ``src[i] ^ key[i % 4]`` to ``dst[i]`` for i < n (RFC 6455 §5.3); dst may equal src.

    Masking is fused with the copy so a frame is built in one pass. The key is repeated into a 64-bit word
    and applied 8 bytes at a time through ``memcpy`` (unaligned-safe, compiled to plain loads and stores,
    and auto-vectorized at -O3): within 2x of a plain memcpy (``benchmarks/bench_codec.py::mask``).
    """
    cdef uint32_t key32
    cdef uint64_t key64, word
    cdef Py_ssize_t i = 0
    memcpy(&key32, key, 4)
    # Both halves are equal, so the byte pattern k0 k1 k2 k3 k0 k1 k2 k3 holds on either endianness.
    key64 = (<uint64_t>key32 << 32) | key32
    while i + 32 <= n:
        memcpy(&word, src + i, 8)
        word ^= key64
        memcpy(dst + i, &word, 8)
        memcpy(&word, src + i + 8, 8)
        word ^= key64
        memcpy(dst + i + 8, &word, 8)
        memcpy(&word, src + i + 16, 8)
        word ^= key64
        memcpy(dst + i + 16, &word, 8)
        memcpy(&word, src + i + 24, 8)
        word ^= key64
        memcpy(dst + i + 24, &word, 8)
        i += 32
    while i + 8 <= n:
        memcpy(&word, src + i, 8)
        word ^= key64
        memcpy(dst + i, &word, 8)
        i += 8
    while i < n:
        dst[i] = src[i] ^ key[i & 3]
        i += 1


cdef inline bint utf8_second_byte_ok(uint8_t lead, uint8_t byte) noexcept nogil:
    """Unicode Table 3-7: the range of the byte after a 3- or 4-byte lead."""
    if lead == 0xE0:
        return 0xA0 <= byte <= 0xBF
    if lead == 0xED:
        return 0x80 <= byte <= 0x9F
    if lead == 0xF0:
        return 0x90 <= byte <= 0xBF
    if lead == 0xF4:
        return 0x80 <= byte <= 0x8F
    return 0x80 <= byte <= 0xBF


cdef struct Utf8State:
    # Continuation bytes still expected, and the range the next one must fall in (Unicode Table 3-7).
    int need
    uint8_t lo
    uint8_t hi
    # Whether any non-ASCII byte was seen: an all-ASCII text is built with one memcpy, no decoding.
    bint non_ascii


cdef inline void utf8_reset(Utf8State* state) noexcept nogil:
    state.need = 0
    state.lo = 0x80
    state.hi = 0xBF
    state.non_ascii = False


cdef inline Py_ssize_t utf8_scan(Utf8State* state, const uint8_t* p, Py_ssize_t n) noexcept nogil:
    """Validate ``p[:n]`` as the next bytes of a UTF-8 stream; return -1, or the index of the bad byte.

    The fail point is the earliest possible one: the first byte after which the bytes seen so far are no
    longer a prefix of any well-formed UTF-8 string (Unicode Table 3-7). So ``ED A0`` (a surrogate) fails
    at ``A0`` and ``F4 90`` (above U+10FFFF) at ``90``. RFC 6455 §8.1 asks to fail the connection as soon
    as invalid data is seen; this is the contract ``_utf8_py.Utf8Validator`` also keeps.

    Market-data JSON is ASCII, so whole 8-byte words without a high bit are skipped in one step.
    """
    cdef Py_ssize_t i = 0
    cdef uint64_t word, word2, word3, word4
    cdef uint8_t b
    cdef int need = state.need
    cdef uint8_t lo = state.lo
    cdef uint8_t hi = state.hi
    while i < n:
        if need == 0:
            # ASCII fast path: 32 bytes per step (four words OR-ed, one test), then 8 at a time.
            while i + 32 <= n:
                memcpy(&word, p + i, 8)
                memcpy(&word2, p + i + 8, 8)
                memcpy(&word3, p + i + 16, 8)
                memcpy(&word4, p + i + 24, 8)
                if (word | word2 | word3 | word4) & 0x8080808080808080ULL:
                    break
                i += 32
            while i + 8 <= n:
                memcpy(&word, p + i, 8)
                if word & 0x8080808080808080ULL:
                    break
                i += 8
            if i >= n:
                break
            b = p[i]
            if b < 0x80:
                i += 1
                continue
            state.non_ascii = True
            if i + 4 <= n:
                # The whole sequence is here: check it in one step, without the state machine.
                if 0xC2 <= b < 0xE0:
                    if p[i + 1] & 0xC0 != 0x80:
                        return i + 1
                    i += 2
                    continue
                if 0xE0 <= b < 0xF0:
                    if not utf8_second_byte_ok(b, p[i + 1]):
                        return i + 1
                    if p[i + 2] & 0xC0 != 0x80:
                        return i + 2
                    i += 3
                    continue
                if 0xF0 <= b < 0xF5:
                    if not utf8_second_byte_ok(b, p[i + 1]):
                        return i + 1
                    if p[i + 2] & 0xC0 != 0x80:
                        return i + 2
                    if p[i + 3] & 0xC0 != 0x80:
                        return i + 3
                    i += 4
                    continue
                return i
            if b < 0xC2:              # stray continuation byte, or overlong C0/C1 lead
                return i
            elif b < 0xE0:
                need = 1
            elif b == 0xE0:           # E0 A0..BF: no overlong 3-byte forms
                need = 2
                lo = 0xA0
            elif b == 0xED:           # ED 80..9F: no UTF-16 surrogates
                need = 2
                hi = 0x9F
            elif b < 0xF0:
                need = 2
            elif b == 0xF0:           # F0 90..BF: no overlong 4-byte forms
                need = 3
                lo = 0x90
            elif b < 0xF4:
                need = 3
            elif b == 0xF4:           # F4 80..8F: nothing above U+10FFFF
                need = 3
                hi = 0x8F
            else:                     # F5..FF never appear in UTF-8
                return i
        else:
            b = p[i]
            if b < lo or b > hi:
                return i
            need -= 1
            lo = 0x80
            hi = 0xBF
        i += 1
    state.need = need
    state.lo = lo
    state.hi = hi
    return -1
