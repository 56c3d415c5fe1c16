"""Check an *installed* wsfast: run as a script inside the environment under test (not collected by pytest).

``python tests/wheel_check.py cython`` fails unless the compiled twins are what ``import wsfast`` loaded,
from outside any source tree; on a free-threaded interpreter it also fails if importing them re-enabled the
GIL (a module without Cython's ``freethreading_compatible`` directive does). ``python tests/wheel_check.py
python`` fails unless the pure-Python twins are loaded, and then round-trips a frame through them.
cibuildwheel runs the first form on every wheel it builds (pyproject.toml); tests/test_build.py runs both.
"""

from __future__ import annotations

import importlib.machinery
import os
import subprocess
import sys
import sysconfig
import warnings


def fail(message: str) -> None:
    sys.exit(f"wheel_check: {message}")


def check_location(module_file: str) -> None:
    """The package must come from an installation (site-packages), never from a ``src/`` checkout."""
    purelib = os.path.realpath(sysconfig.get_paths()["purelib"])
    platlib = os.path.realpath(sysconfig.get_paths()["platlib"])
    path = os.path.realpath(module_file)
    if not (path.startswith(purelib + os.sep) or path.startswith(platlib + os.sep)):
        fail(f"wsfast was imported from {path}, not from this environment's site-packages ({purelib})")


def check_gil_stays_disabled() -> None:
    """On a free-threaded build, importing the compiled modules must leave the GIL disabled."""
    code = (
        "import sys, wsfast._codec_c, wsfast._mask_c, wsfast._utf8_c\n"
        "sys.exit('the GIL was re-enabled' if sys._is_gil_enabled() else 0)\n"
    )
    environment = {key: value for key, value in os.environ.items() if key != "PYTHON_GIL"}
    # -W error: CPython warns (RuntimeWarning) when an extension module makes it re-enable the GIL.
    result = subprocess.run([sys.executable, "-W", "error", "-c", code], env=environment)
    if result.returncode != 0:
        fail("importing the compiled modules re-enabled the GIL on a free-threaded interpreter")


def main(expected: str) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        import wsfast
        from wsfast import _impl

    check_location(wsfast.__file__ or "")
    if wsfast.implementation != expected:
        fail(f"wsfast.implementation is {wsfast.implementation!r}, expected {expected!r}")
    for warning in caught:
        print(f"wheel_check: {warning.category.__name__} on import: {warning.message}")
    if expected == "cython":
        if caught:
            fail(f"unexpected warnings on import: {[str(w.message) for w in caught]}")
        for module in (_impl.codec, _impl.mask, _impl.utf8):
            if not (module.__file__ or "").endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES)):
                fail(f"{module.__name__} is not a compiled extension: {module.__file__}")
        if sysconfig.get_config_var("Py_GIL_DISABLED"):
            check_gil_stays_disabled()
    # Whichever twin is loaded, it must work: encode a masked frame, unmask it, decode it.
    frame = wsfast.codec.Encoder().encode("héllo", wsfast.Opcode.TEXT)
    unmasked = bytes([frame[0], frame[1] & 0x7F]) + wsfast.codec.apply_mask(frame[6:], frame[2:6])
    if wsfast.codec.Decoder().feed(unmasked) != ["héllo"]:
        fail("a frame did not survive an encode/decode round trip")
    print(f"wheel_check: wsfast {wsfast.__version__} ({wsfast.implementation}) from {wsfast.__file__}: ok")


if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] not in ("cython", "python"):
        sys.exit("usage: python wheel_check.py cython|python")
    main(sys.argv[1])
