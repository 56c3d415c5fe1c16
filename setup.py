"""Build script: compiles the ``*_c.pyx`` hot-path modules with Cython.

``WSFAST_BUILD_EXTENSION`` chooses what happens:

* ``yes``  -- the compile is mandatory (wheel builds): any failure aborts the build.
* ``no``   -- skip it and build a pure-Python package (the ``py3-none-any`` wheel).
* unset / ``auto`` -- mandatory on CPython, skipped on other interpreters (PyPy, GraalPy), where the
  pure-Python twins are faster than an emulated C API.  A failed compile on CPython is loud, never a
  silent pure build.
"""

from __future__ import annotations

import os
import platform
import sys

from setuptools import Extension, setup

MODULES = ("_mask_c", "_utf8_c", "_codec_c")


def _build_mode() -> str:
    mode = os.environ.get("WSFAST_BUILD_EXTENSION", "auto").strip().lower() or "auto"
    if mode not in ("yes", "no", "auto"):
        sys.exit(f"WSFAST_BUILD_EXTENSION must be yes, no or auto, not {mode!r}")
    if mode == "auto":
        return "yes" if platform.python_implementation() == "CPython" else "no"
    return mode


def _have_zlib() -> bool:
    """Whether zlib's header and library are there, so the compiled codec can inflate through zlib's C
    API (``WSFAST_ZLIB=yes|no|auto``). Without them it inflates through the :mod:`zlib` module."""
    mode = os.environ.get("WSFAST_ZLIB", "auto").strip().lower() or "auto"
    if mode == "no" or (mode == "auto" and sys.platform == "win32"):
        return False
    import tempfile

    from setuptools._distutils.ccompiler import new_compiler
    from setuptools._distutils.sysconfig import customize_compiler

    compiler = new_compiler()
    customize_compiler(compiler)
    with tempfile.TemporaryDirectory() as folder:
        source = os.path.join(folder, "zlib_probe.c")
        with open(source, "w") as probe:
            probe.write("#include <zlib.h>\nint main(void) { return zlibVersion()[0] == 0; }\n")
        try:
            objects = compiler.compile([source], output_dir=folder)
            compiler.link_executable(objects, os.path.join(folder, "zlib_probe"), libraries=["z"])
        except Exception:
            if mode == "yes":
                raise
            print("wsfast: zlib.h not found; the compiled codec inflates through the zlib module")
            return False
    return True


def _extensions() -> list[Extension]:
    from Cython.Build import cythonize

    debug = os.environ.get("WSFAST_DEBUG_BUILD", "") not in ("", "0")
    if sys.platform == "win32":
        cflags = ["/O2"]
    elif debug:
        cflags = ["-O1", "-g", "-fno-omit-frame-pointer"]
    else:
        cflags = ["-O3", "-g0", "-DNDEBUG"]
    extra = os.environ.get("WSFAST_EXTRA_CFLAGS", "").split()
    ldflags = os.environ.get("WSFAST_EXTRA_LDFLAGS", "").split()
    zlib = _have_zlib()
    extensions = [
        Extension(
            f"wsfast.{name}",
            [f"src/wsfast/{name}.pyx"],
            extra_compile_args=cflags + extra,
            extra_link_args=ldflags,
            define_macros=[("WSFAST_HAVE_ZLIB", "1")] if zlib and name == "_codec_c" else [],
            libraries=["z"] if zlib and name == "_codec_c" else [],
        )
        for name in MODULES
    ]
    return cythonize(
        extensions,
        compiler_directives={
            "language_level": 3,
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": False,
            "embedsignature": True,
            "freethreading_compatible": True,
        },
        annotate=os.environ.get("WSFAST_ANNOTATE", "") not in ("", "0"),
    )


ext_modules = _extensions() if _build_mode() == "yes" else []
setup(ext_modules=ext_modules)
