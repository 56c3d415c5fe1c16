"""The frame codec: :class:`Decoder`, :class:`Encoder` and the masking and UTF-8 kernels.

These names come from the compiled twins when they are available and from the pure-Python twins otherwise
(see :data:`wsfast.implementation`); both behave identically. The codec is sans-I/O: it turns bytes into
messages and messages into bytes, and never touches a socket, a thread or a clock.

Example::

    decoder = Decoder(max_message_size=16 * 2**20)
    for message in decoder.feed(sock.recv(65536)):
        ...

    encoder = Encoder()
    sock.sendall(encoder.encode('{"op": "subscribe"}', Opcode.TEXT))
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import _impl
from .frames import Opcode

__all__ = [
    "DEFAULT_MAX_MESSAGE_SIZE",
    "Decoder",
    "Encoder",
    "Opcode",
    "Utf8Validator",
    "apply_mask",
    "validate_utf8",
]

if TYPE_CHECKING:
    from ._codec_py import DEFAULT_MAX_MESSAGE_SIZE, Decoder, Encoder
    from ._mask_py import apply_mask
    from ._utf8_py import Utf8Validator, validate_utf8
else:
    DEFAULT_MAX_MESSAGE_SIZE = _impl.codec.DEFAULT_MAX_MESSAGE_SIZE
    Decoder = _impl.codec.Decoder
    Encoder = _impl.codec.Encoder
    apply_mask = _impl.mask.apply_mask
    Utf8Validator = _impl.utf8.Utf8Validator
    validate_utf8 = _impl.utf8.validate_utf8
