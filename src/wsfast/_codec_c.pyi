from collections.abc import Callable
from typing import Any, Final, final

from ._typing import BytesLike
from .deflate import Negotiated

__all__ = ["DEFAULT_MAX_MESSAGE_SIZE", "Decoder", "Encoder", "close_payload"]

DEFAULT_MAX_MESSAGE_SIZE: Final[int]

@final
class Decoder:
    """Turns the bytes a server sends into messages (RFC 6455 §5); see :class:`wsfast._codec_py.Decoder`.

    One decoder belongs to one connection: an instance must not be used from two threads at once without a
    lock (the free-threaded build has no GIL to serialize the calls). Separate instances are independent.
    """

    control_count: int
    frames_received: int
    def __init__(
        self,
        max_message_size: int | None = ...,
        *,
        text_as_bytes: bool = False,
        loads: Callable[[bytes], Any] | None = None,
        compression: Negotiated | None = None,
    ) -> None: ...
    @property
    def max_message_size(self) -> int | None: ...
    def feed(self, data: BytesLike) -> list[Any]: ...

@final
class Encoder:
    """Builds masked client frames (RFC 6455 §5.2-5.3); see :class:`wsfast._codec_py.Encoder`.

    One encoder belongs to one connection: an instance must not be used from two threads at once without a
    lock (:class:`wsfast.WebSocketClient` holds its write lock around every use).
    """

    def __init__(self) -> None: ...
    def encode(
        self, payload: BytesLike | str, opcode: int, fin: bool = True, rsv1: bool = False
    ) -> bytes: ...
    def encode_close(self, code: int | None = 1000, reason: str = "") -> bytes: ...

def close_payload(code: int | None, reason: str) -> bytes: ...
