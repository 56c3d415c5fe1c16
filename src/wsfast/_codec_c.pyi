from collections.abc import Callable
from typing import Any, Final

from ._typing import BytesLike
from .deflate import Negotiated

__all__ = ["DEFAULT_MAX_MESSAGE_SIZE", "Decoder", "Encoder", "close_payload"]

DEFAULT_MAX_MESSAGE_SIZE: Final[int]

class Decoder:
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

class Encoder:
    def __init__(self) -> None: ...
    def encode(
        self, payload: BytesLike | str, opcode: int, fin: bool = True, rsv1: bool = False
    ) -> bytes: ...
    def encode_close(self, code: int | None = 1000, reason: str = "") -> bytes: ...

def close_payload(code: int | None, reason: str) -> bytes: ...
