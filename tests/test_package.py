"""The package around the codec: twin selection, the public surface, the layering rules."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

import wsfast
from wsfast import codec

SOURCE = Path(wsfast.__file__).parent

# DESIGN.md §3: the core never imports I/O, threads or clocks.
CORE_MODULES = [
    "_codec_py.py",
    "_codec_c.pyx",
    "_mask_py.py",
    "_mask_c.pyx",
    "_utf8_py.py",
    "_utf8_c.pyx",
    "_kernels.pxd",
    "codec.py",
    "frames.py",
    "exceptions.py",
    "http11.py",
    "uri.py",
    "handshake.py",
    "protocol.py",
    "health.py",
    "pings.py",
    "lifecycle.py",
    "delivery.py",
    "deflate.py",
    "opening.py",
    "socks.py",
    "proxies.py",
]
FORBIDDEN = {"socket", "ssl", "select", "selectors", "threading", "asyncio", "time"}


def run_python(code: str, **env: str) -> str:
    environment = {k: v for k, v in os.environ.items() if k != "WSFAST_NO_EXTENSIONS"}
    environment.update(env)
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=environment, check=True
    )
    return result.stdout.strip()


class TestImplementationSelection:
    def test_env_var_forces_pure_python(self) -> None:
        out = run_python(
            "import wsfast; print(wsfast.implementation, wsfast.codec.Decoder.__module__)",
            WSFAST_NO_EXTENSIONS="1",
        )
        assert out == "python wsfast._codec_py"

    @pytest.mark.skipif(sys.implementation.name != "cpython", reason="extensions are CPython-only")
    def test_compiled_twins_load_by_default_on_cpython(self) -> None:
        out = run_python("import wsfast; print(wsfast.implementation, wsfast.codec.Decoder.__module__)")
        assert out == "cython wsfast._codec_c"

    def test_codec_names_come_from_one_twin(self) -> None:
        suffix = "_c" if wsfast.implementation == "cython" else "_py"
        assert codec.Decoder.__module__ == f"wsfast._codec{suffix}"
        assert codec.Encoder.__module__ == f"wsfast._codec{suffix}"
        assert codec.apply_mask.__module__ == f"wsfast._mask{suffix}"
        assert codec.Utf8Validator.__module__ == f"wsfast._utf8{suffix}"

    def test_public_names(self) -> None:
        for name in wsfast.__all__:
            assert hasattr(wsfast, name), name
        assert issubclass(wsfast.InvalidUTF8Error, wsfast.ProtocolError)
        assert issubclass(wsfast.MessageTooBigError, wsfast.ProtocolError)
        assert issubclass(wsfast.ProtocolError, wsfast.WebSocketError)
        assert (wsfast.ProtocolError.close_code, wsfast.InvalidUTF8Error.close_code) == (1002, 1007)
        assert wsfast.MessageTooBigError.close_code == 1009


class TestLayering:
    @pytest.mark.parametrize("module", CORE_MODULES)
    def test_core_imports_no_io(self, module: str) -> None:
        text = (SOURCE / module).read_text()
        if module.endswith(".py"):
            imported = set()
            for node in ast.walk(ast.parse(text)):
                if isinstance(node, ast.Import):
                    imported |= {alias.name.split(".")[0] for alias in node.names}
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    imported.add(node.module.split(".")[0])
        else:
            imported = {
                line.split()[1].split(".")[0]
                for line in text.splitlines()
                if line.startswith(("import ", "from ", "cimport "))
            }
        assert not imported & FORBIDDEN, f"{module} imports {imported & FORBIDDEN}"

    def test_only_impl_imports_a_twin(self) -> None:
        for path in SOURCE.glob("*.py"):
            if path.name.endswith(("_py.py",)) or path.name == "_impl.py":
                continue
            text = path.read_text()
            for twin in ("_codec_c", "_mask_c", "_utf8_c"):
                assert f"import {twin}" not in text, path.name
                assert f"{twin} import" not in text, path.name

    def test_every_compiled_module_has_a_twin_and_a_stub(self) -> None:
        for pyx in SOURCE.glob("*_c.pyx"):
            stem = pyx.name[: -len("_c.pyx")]
            assert (SOURCE / f"{stem}_py.py").exists(), pyx.name
            assert (SOURCE / f"{stem}_c.pyi").exists(), pyx.name
        assert (SOURCE / "py.typed").exists()


class TestCommandLine:
    def test_codec_command_measures_both_twins(self) -> None:
        out = run_python("from wsfast.cli import main; raise SystemExit(main(['codec', '--count', '2000']))")
        assert "M messages/s" in out
        assert f"({wsfast.implementation} implementation loaded)" in out

    def test_demo_consumes_the_embedded_feed(self) -> None:
        out = run_python("from wsfast.cli import main; raise SystemExit(main(['demo', '--count', '5000']))")
        assert "<- embedded feed at ws://127.0.0.1:" in out
        assert "5,001 messages in" in out  # the feed's trades plus the acknowledgement of our subscription
        assert "closed by the feed: 1000 feed complete" in out
        assert '"e":"trade"' in out

    def test_client_command_prints_messages_and_stops_after_count(self) -> None:
        from wsfast.feed import FeedServer

        with FeedServer(messages=None, rate=2000, wait_for_subscribe=True) as feed:
            result = subprocess.run(
                [sys.executable, "-m", "wsfast", feed.url, "--count", "3", "--send", "hello"],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
        assert result.returncode == 0, result.stderr
        lines = result.stdout.splitlines()
        assert len(lines) == 3
        assert lines[0] == '{"ack": "hello"}'
        assert all(line.startswith('{"e":"trade"') for line in lines[1:])
        assert "closed 1000" in result.stderr

    def test_client_command_rejects_a_non_websocket_url(self) -> None:
        result = subprocess.run(
            [sys.executable, "-m", "wsfast", "http://127.0.0.1/"], capture_output=True, text=True, check=False
        )
        assert result.returncode == 1
        assert "ws:// or wss://" in result.stderr
        assert "Traceback" not in result.stderr
