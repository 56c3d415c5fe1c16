"""Fixtures for the protocol and client tests, loaded with ``pytest_plugins = ["conftest_client"]``.

``codec_impl`` runs a test once per codec twin ("python", "cython"): it monkeypatches
``wsfast.protocol.codec`` (which :class:`~wsfast.protocol.ClientProtocol` reads at construction) with the
chosen twin's classes.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.machinery
import os
import sys
import types
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

import wsfast.protocol

IMPLEMENTATIONS = ("python", "cython")
_MODULES = {"python": "wsfast._codec_py", "cython": "wsfast._codec_c"}


def extensions_disabled() -> bool:
    return bool(os.environ.get("WSFAST_NO_EXTENSIONS")) or sys.implementation.name != "cpython"


def load_codec(name: str) -> types.SimpleNamespace:
    """The codec twin *name* as the namespace ``wsfast.protocol`` expects; skip/fail if unavailable."""
    try:
        module = importlib.import_module(_MODULES[name])
        path = getattr(module, "__file__", None) or ""
        if name == "cython" and not path.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES)):
            raise ImportError(f"{module.__name__} is not a compiled extension: {path!r}")
    except ImportError as exc:
        if name == "cython" and extensions_disabled():
            pytest.skip(f"compiled twins disabled by WSFAST_NO_EXTENSIONS: {exc}")
        pytest.fail(f"cannot import the {name} codec twin: {exc}", pytrace=False)
    return types.SimpleNamespace(
        name=name,
        Decoder=module.Decoder,
        Encoder=module.Encoder,
        DEFAULT_MAX_MESSAGE_SIZE=module.DEFAULT_MAX_MESSAGE_SIZE,
    )


@pytest.fixture(params=IMPLEMENTATIONS, ids=IMPLEMENTATIONS)
def codec_impl(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> types.SimpleNamespace:
    impl = load_codec(request.param)
    monkeypatch.setattr(
        wsfast.protocol,
        "codec",
        types.SimpleNamespace(
            Decoder=impl.Decoder,
            Encoder=impl.Encoder,
            DEFAULT_MAX_MESSAGE_SIZE=impl.DEFAULT_MAX_MESSAGE_SIZE,
        ),
    )
    return impl


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
