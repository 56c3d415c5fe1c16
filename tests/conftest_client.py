"""Fixtures for the protocol and client tests, loaded with ``pytest_plugins = ["conftest_client"]``.

``codec_impl`` runs a test once per codec twin ("python", "cython") and gives it the twin through the
codec seam, never by patching modules: ``codec_impl.name`` is what a client's ``implementation=`` option
takes, ``codec_impl.module`` what ``ClientProtocol(codec=...)`` takes.
"""

from __future__ import annotations

import asyncio
import importlib.machinery
import os
import sys
import types
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from wsfast import _impl

IMPLEMENTATIONS = ("python", "cython")


def extensions_disabled() -> bool:
    return bool(os.environ.get("WSFAST_NO_EXTENSIONS")) or sys.implementation.name != "cpython"


def load_codec(name: str) -> types.SimpleNamespace:
    """The codec twin *name*: its ``name`` (for ``implementation=``), its ``module`` (for ``codec=``), and
    its ``Decoder``, ``Encoder`` and ``DEFAULT_MAX_MESSAGE_SIZE``; skip/fail if unavailable."""
    module = _impl.codec_twins().get(name)
    if module is None:
        if name == "cython" and extensions_disabled():
            pytest.skip("compiled twins disabled by WSFAST_NO_EXTENSIONS and not importable")
        pytest.fail(f"cannot import the {name} codec twin", pytrace=False)
    path = getattr(module, "__file__", None) or ""
    if name == "cython" and not path.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES)):
        pytest.fail(f"{module.__name__} is not a compiled extension: {path!r}", pytrace=False)
    return types.SimpleNamespace(
        name=name,
        module=module,
        Decoder=module.Decoder,
        Encoder=module.Encoder,
        DEFAULT_MAX_MESSAGE_SIZE=module.DEFAULT_MAX_MESSAGE_SIZE,
    )


@pytest.fixture(params=IMPLEMENTATIONS, ids=IMPLEMENTATIONS)
def codec_impl(request: pytest.FixtureRequest) -> types.SimpleNamespace:
    """The codec twin of this run (see the module docstring): pass ``implementation=codec_impl.name`` to
    a client, ``codec=codec_impl.module`` to a ``ClientProtocol``."""
    return load_codec(request.param)


ASYNC_TIMEOUT = 10.0
LOOPS = ["asyncio", "uvloop"]


@pytest.fixture(params=LOOPS)
def run(request: pytest.FixtureRequest, codec_impl: types.SimpleNamespace) -> Callable[..., Any]:
    """``run(coroutine_function)``: run it on the chosen event loop (asyncio's default loop, or uvloop
    when installed), bounded by ASYNC_TIMEOUT seconds, with the chosen codec twin."""
    if request.param == "uvloop":
        uvloop = pytest.importorskip("uvloop")
        loop_factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    else:
        loop_factory = asyncio.new_event_loop

    def runner(function: Callable[[], Coroutine[Any, Any, Any]], timeout: float = ASYNC_TIMEOUT) -> Any:
        loop = loop_factory()
        try:
            return loop.run_until_complete(asyncio.wait_for(function(), timeout))
        finally:
            loop.close()

    return runner
