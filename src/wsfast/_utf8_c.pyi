from typing_extensions import disjoint_base

from ._typing import BytesLike

def validate_utf8(data: BytesLike) -> bool: ...

@disjoint_base
class Utf8Validator:
    """Validates a UTF-8 stream that arrives in pieces; see :class:`wsfast._utf8_py.Utf8Validator`.

    A validator keeps the state of one stream: an instance must not be used from two threads at once
    without a lock.
    """

    def __init__(self) -> None: ...
    def feed(self, data: BytesLike) -> None: ...
    def end(self) -> None: ...
    def reset(self) -> None: ...
