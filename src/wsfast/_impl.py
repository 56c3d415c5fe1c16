"""The one place that chooses between the compiled and the pure-Python twins.

``WSFAST_NO_EXTENSIONS=1`` (any non-empty value) forces the pure-Python twins, and so does any interpreter
other than CPython, where a C extension runs through a slow emulation layer. On CPython without the env var
the compiled twins are loaded; if they are missing (a source checkout that was never built), wsfast still
works, warns once, and says so in ``wsfast.implementation``.
"""

from __future__ import annotations

import os
import sys
import warnings
from types import ModuleType

__all__ = ["codec", "codec_twins", "implementation", "mask", "utf8"]


def _load() -> tuple[str, ModuleType, ModuleType, ModuleType]:
    if os.environ.get("WSFAST_NO_EXTENSIONS") or sys.implementation.name != "cpython":
        from . import _codec_py, _mask_py, _utf8_py

        return "python", _codec_py, _mask_py, _utf8_py
    try:
        from . import _codec_c, _mask_c, _utf8_c
    except ImportError as exc:
        warnings.warn(
            f"wsfast's compiled modules could not be loaded ({exc}); using the pure-Python twins, "
            "which are about 10x slower. The pure py3-none-any wheel (for platforms without a compiled "
            "wheel) has none: `pip install --no-binary wsfast wsfast` builds them with a C compiler, and "
            "`pip install -e .` in a source checkout. Set WSFAST_NO_EXTENSIONS=1 to silence this warning.",
            RuntimeWarning,
            stacklevel=3,
        )
        from . import _codec_py, _mask_py, _utf8_py

        return "python", _codec_py, _mask_py, _utf8_py
    return "cython", _codec_c, _mask_c, _utf8_c


implementation, codec, mask, utf8 = _load()


def codec_twins() -> dict[str, ModuleType]:
    """Every codec twin that can be imported here, by implementation name (for demos and benchmarks)."""
    from . import _codec_py

    twins = {"python": _codec_py}
    try:
        from . import _codec_c
    except ImportError:
        pass
    else:
        twins["cython"] = _codec_c
    return twins
