"""Type aliases shared by the twins (``collections.abc.Buffer`` needs Python 3.12)."""

from __future__ import annotations

from typing import TypeAlias

BytesLike: TypeAlias = bytes | bytearray | memoryview
