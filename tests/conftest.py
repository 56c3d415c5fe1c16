"""Shared fixtures: the ``impl`` fixture runs every codec test on both twins (python, cython).

A missing compiled build fails the cython tests; it is skipped only when ``WSFAST_NO_EXTENSIONS`` is set
to a non-empty value (a pure-Python run on purpose).
"""

from __future__ import annotations

import importlib
import importlib.machinery
import os
import sys
import types

import pytest
from hypothesis import HealthCheck, settings

# Make ``import helpers`` work whatever pytest's import mode is.
_TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
if _TESTS_DIR not in sys.path:
    sys.path.insert(0, _TESTS_DIR)

settings.register_profile(
    "ci",
    deadline=None,
    max_examples=200,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "dev",
    deadline=None,
    max_examples=1000,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or "ci")

IMPLEMENTATIONS = ("python", "cython")
_SUFFIX = {"python": "py", "cython": "c"}


def extensions_disabled() -> bool:
    """Pure Python is forced: by the env var, or by an interpreter other than CPython (e.g. PyPy)."""
    return bool(os.environ.get("WSFAST_NO_EXTENSIONS")) or sys.implementation.name != "cpython"


def load_impl(name: str) -> types.SimpleNamespace:
    """Import one twin set (``_codec_*``, ``_mask_*``, ``_utf8_*``); raises ImportError if missing."""
    suffix = _SUFFIX[name]
    codec = importlib.import_module(f"wsfast._codec_{suffix}")
    mask = importlib.import_module(f"wsfast._mask_{suffix}")
    utf8 = importlib.import_module(f"wsfast._utf8_{suffix}")
    if name == "cython":
        # A same-named pure module must never pass for the compiled twin.
        for module in (codec, mask, utf8):
            path = getattr(module, "__file__", None) or ""
            if not path.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES)):
                raise ImportError(f"{module.__name__} is not a compiled extension: {path!r}")
    return types.SimpleNamespace(
        name=name,
        Decoder=codec.Decoder,
        Encoder=codec.Encoder,
        apply_mask=mask.apply_mask,
        validate_utf8=utf8.validate_utf8,
        Utf8Validator=utf8.Utf8Validator,
    )


def require_impl(name: str) -> types.SimpleNamespace:
    """``load_impl`` for tests: skip or fail (never pass silently) when a twin is unavailable."""
    try:
        return load_impl(name)
    except ImportError as exc:
        if name == "cython" and extensions_disabled():
            pytest.skip(f"compiled twins disabled by WSFAST_NO_EXTENSIONS: {exc}")
        pytest.fail(
            f"cannot import the {name} twins of wsfast ({exc}). Build the extensions with "
            "`pip install -e . --no-build-isolation`, or set WSFAST_NO_EXTENSIONS=1 to test pure "
            "Python only.",
            pytrace=False,
        )


@pytest.fixture(params=IMPLEMENTATIONS, ids=IMPLEMENTATIONS)
def impl(request: pytest.FixtureRequest) -> types.SimpleNamespace:
    return require_impl(request.param)


@pytest.fixture(scope="session")
def twins() -> types.SimpleNamespace:
    """Both twin sets side by side, for differential tests."""
    return types.SimpleNamespace(python=require_impl("python"), cython=require_impl("cython"))
