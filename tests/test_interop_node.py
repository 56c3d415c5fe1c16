"""Interoperability with Node's ``ws``: both wsfast clients against a real ``ws`` echo server on 127.0.0.1.

The test setup installs the ``ws`` version pinned in ``tests/node/package.json`` with npm into
``tests/node/.npm-cache`` (git-ignored), once per machine and version, and starts
``tests/node/echo_server.js`` (see its header for the options and text commands). Only a missing
``node`` or ``npm`` skips these tests; a failed install fails them.

Every test runs with both clients (``thread``: :class:`wsfast.WebSocketClient`; ``asyncio``:
:func:`wsfast.connect` read with ``async for``) and both codec twins (``codec_impl``). The
permessage-deflate tests are skipped, with the reason, while the client has no ``compression`` keyword.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import os
import queue
import shutil
import subprocess
import sys
import threading
import time
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import wsfast
from wsfast import Opcode

pytest_plugins = ["conftest_client"]
pytestmark = pytest.mark.interop

NODE_DIR = Path(__file__).resolve().parent / "node"
CACHE_DIR = NODE_DIR / ".npm-cache"  # git-ignored
TIMEOUT = 30.0  # seconds for any single wait; 16 MiB in the pure twin stays well below it
LARGE = 16 * 2**20
MAX_MESSAGE_SIZE = 64 * 2**20
CLIENTS = ("thread", "asyncio")


# ---------------------------------------------------------------------------------------------------------
# Node and ws
# ---------------------------------------------------------------------------------------------------------


def _pinned_ws_version() -> str:
    return str(json.loads((NODE_DIR / "package.json").read_text())["dependencies"]["ws"])


def _installed_ws_version() -> str | None:
    with contextlib.suppress(OSError, ValueError, KeyError):
        manifest = CACHE_DIR / "node_modules" / "ws" / "package.json"
        return str(json.loads(manifest.read_text())["version"])
    return None


@contextlib.contextmanager
def _install_lock() -> Iterator[None]:
    """Serialise concurrent installs (two pytest runs at once) on POSIX; a no-op elsewhere."""
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:
        yield
        return
    with open(CACHE_DIR / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@pytest.fixture(scope="session")
def node_ws() -> types.SimpleNamespace:
    """``node`` and the ``node_modules`` holding the pinned ``ws``; installs it with npm if needed."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("the interop tests need Node.js (node and npm on PATH) to run Node's ws server")
    pinned = _pinned_ws_version()
    with _install_lock():
        if _installed_ws_version() != pinned:
            shutil.copyfile(NODE_DIR / "package.json", CACHE_DIR / "package.json")
            command = [npm, "install", "--no-audit", "--no-fund", "--prefix", str(CACHE_DIR)]
            try:
                done = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=CACHE_DIR)
            except subprocess.TimeoutExpired:
                pytest.fail(f"`{' '.join(command)}` did not finish within 300 s", pytrace=False)
            if done.returncode != 0 or _installed_ws_version() != pinned:
                pytest.fail(
                    f"`{' '.join(command)}` failed (status {done.returncode}); the interop tests need "
                    f"ws {pinned} from npm:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}",
                    pytrace=False,
                )
    return types.SimpleNamespace(node=node, node_modules=CACHE_DIR / "node_modules", version=pinned)


class NodeServer:
    """``tests/node/echo_server.js`` in a child process; its JSON event lines are collected."""

    def __init__(self, node_ws: types.SimpleNamespace, *options: str) -> None:
        env = dict(os.environ, NODE_PATH=str(node_ws.node_modules))
        self.options = options
        self.process = subprocess.Popen(
            [node_ws.node, str(NODE_DIR / "echo_server.js"), *options],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        self.events: list[dict[str, Any]] = []
        self._condition = threading.Condition()
        self._stderr: list[str] = []
        threading.Thread(target=self._read_events, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()
        listening = self.wait_event(lambda e: e["event"] == "listening", timeout=20)
        self.port = int(listening["port"])
        assert listening["ws"] == node_ws.version

    def _read_events(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with contextlib.suppress(ValueError):
                event = json.loads(line)
                with self._condition:
                    self.events.append(event)
                    self._condition.notify_all()

    def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self._stderr.append(line.decode(errors="replace"))

    def url(self, path: str = "/") -> str:
        return f"ws://127.0.0.1:{self.port}{path}"

    def wait_event(self, predicate: Callable[[dict[str, Any]], bool], timeout: float = TIMEOUT) -> Any:
        deadline = time.monotonic() + timeout
        with self._condition:
            while True:
                for event in self.events:
                    if predicate(event):
                        return event
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self.process.poll() is not None:
                    raise AssertionError(
                        f"no such event from the ws server (options {self.options}); events: "
                        f"{self.events[-10:]}; stderr: {''.join(self._stderr)[-2000:]}"
                    )
                self._condition.wait(min(remaining, 0.5))

    def connection_events(self, connection_id: int) -> list[dict[str, Any]]:
        with self._condition:
            return [e for e in self.events if e.get("id") == connection_id]

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            assert self.process.stdin is not None
            self.process.stdin.close()  # the server exits when stdin closes
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture(scope="session")
def node_server(node_ws: types.SimpleNamespace) -> Iterator[Callable[..., NodeServer]]:
    """``node_server(*options)``: a running ws echo server with those options, shared by the session."""
    servers: dict[tuple[str, ...], NodeServer] = {}

    def get(*options: str) -> NodeServer:
        server = servers.get(options)
        if server is None or server.process.poll() is not None:
            server = servers[options] = NodeServer(node_ws, *options)
        return server

    yield get
    for server in servers.values():
        server.stop()


# ---------------------------------------------------------------------------------------------------------
# Both clients behind one blocking interface
# ---------------------------------------------------------------------------------------------------------


def client_target(kind: str) -> Any:
    return wsfast.WebSocketClient if kind == "thread" else wsfast.connect


def accepts_keyword(kind: str, keyword: str) -> bool:
    parameters = inspect.signature(client_target(kind)).parameters
    return keyword in parameters or any(p.kind is p.VAR_KEYWORD for p in parameters.values())


def require_compression(kind: str) -> None:
    """Skip unless *kind*'s client takes ``compression=`` (permessage-deflate is being added)."""
    if not accepts_keyword(kind, "compression"):
        pytest.skip(
            f"the {kind} client has no `compression` keyword yet: the permessage-deflate interop tests "
            "run once it does"
        )


class ThreadConnection:
    """:class:`wsfast.WebSocketClient`: messages and PONGs go to queues from the event thread."""

    def __init__(self, url: str, **options: Any) -> None:
        self.messages: queue.Queue[Any] = queue.Queue()
        self.pongs: queue.Queue[bytes] = queue.Queue()
        self.closed: tuple[int, str] | None = None
        self._closed_event = threading.Event()
        self.client = wsfast.WebSocketClient(
            self.messages.put, url, on_close=self._on_close, on_pong=self.pongs.put, **options
        )
        self.client.connect()
        self.response = self.client.response

    def _on_close(self, code: int, reason: str) -> None:
        self.closed = (code, reason)
        self._closed_event.set()

    def send(self, message: Any) -> None:
        self.client.send(message)

    def send_frame(self, data: str | bytes, opcode: int, fin: bool) -> None:
        self.client.send_frame(data, opcode, fin)

    def ping(self, payload: bytes) -> bytes:
        self.client.ping(payload)
        return self.pongs.get(timeout=TIMEOUT)

    def recv(self, timeout: float = TIMEOUT) -> Any:
        return self.messages.get(timeout=timeout)

    def close(self, code: int = 1000, reason: str = "") -> tuple[int, str]:
        self.client.disconnect(code, reason, timeout=TIMEOUT)
        return self.wait_closed()

    def wait_closed(self) -> tuple[int, str]:
        assert self._closed_event.wait(TIMEOUT), "the connection did not close"
        assert self.closed is not None
        return self.closed

    def abort(self) -> None:
        with contextlib.suppress(Exception):
            self.client.disconnect(timeout=2.0)


class LoopThread:
    """An asyncio event loop in a daemon thread, for driving the asyncio client from blocking tests."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="interop-loop", daemon=True)
        self._thread.start()

    def run(self, coroutine: Any, timeout: float = TIMEOUT) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
        if not self._thread.is_alive():
            self.loop.close()


class AsyncioConnection:
    """:func:`wsfast.connect`, read by an ``async for`` task that puts messages in a queue."""

    def __init__(self, loop: LoopThread, url: str, **options: Any) -> None:
        self._loop = loop
        self.messages: queue.Queue[Any] = queue.Queue()
        self.error: BaseException | None = None

        async def open_() -> Any:
            return await wsfast.connect(url, **options)

        self.ws = loop.run(open_())
        self.response = self.ws.response
        self._reader = asyncio.run_coroutine_threadsafe(self._read(), loop.loop)

    async def _read(self) -> None:
        try:
            async for message in self.ws:
                self.messages.put(message)
        except wsfast.ConnectionClosedError as exc:
            self.error = exc

    def send(self, message: Any) -> None:
        self._loop.run(self.ws.send(message))

    def send_frame(self, data: str | bytes, opcode: int, fin: bool) -> None:
        self._loop.run(self.ws.send_frame(data, opcode, fin))

    def ping(self, payload: bytes) -> bytes:
        latency = self._loop.run(self.ws.ping(payload))
        assert latency >= 0
        return payload  # ping() returns when the PONG with this payload arrived

    def recv(self, timeout: float = TIMEOUT) -> Any:
        return self.messages.get(timeout=timeout)

    def close(self, code: int = 1000, reason: str = "") -> tuple[int, str]:
        self._loop.run(self.ws.close(code, reason))
        return self.wait_closed()

    def wait_closed(self) -> tuple[int, str]:
        self._loop.run(self.ws.wait_closed())
        with contextlib.suppress(Exception):
            self._reader.result(TIMEOUT)
        return self.ws.close_code, self.ws.close_reason

    def abort(self) -> None:
        with contextlib.suppress(Exception):
            self._loop.run(self.ws.close(), timeout=5.0)


Connection = ThreadConnection | AsyncioConnection


@pytest.fixture(scope="module")
def loop_thread() -> Iterator[LoopThread]:
    loop = LoopThread()
    yield loop
    loop.stop()


@pytest.fixture(params=CLIENTS)
def client_kind(request: pytest.FixtureRequest, codec_impl: types.SimpleNamespace) -> str:
    return str(request.param)


@pytest.fixture
def connect(
    client_kind: str, loop_thread: LoopThread, codec_impl: types.SimpleNamespace
) -> Iterator[Callable[..., Connection]]:
    """``connect(url, **options)`` with the client and codec twin under test; leftover connections are
    closed after."""
    opened: list[Connection] = []

    def open_connection(url: str, **options: Any) -> Connection:
        options.setdefault("max_message_size", MAX_MESSAGE_SIZE)
        options.setdefault("implementation", codec_impl.name)
        connection: Connection = (
            ThreadConnection(url, **options)
            if client_kind == "thread"
            else AsyncioConnection(loop_thread, url, **options)
        )
        opened.append(connection)
        return connection

    yield open_connection
    for connection in opened:
        connection.abort()


def server_id(connection: Connection) -> int:
    """This connection's id on the ws server (asks it with ``info:``)."""
    connection.send("info:")
    return int(json.loads(connection.recv())["id"])


# ---------------------------------------------------------------------------------------------------------
# Messages
# ---------------------------------------------------------------------------------------------------------


TEXTS = [
    "",
    "hello",
    "héllo wörld ☃ 😀 \u0000 \U0010ffff",
    "x" * 125,
    "y" * 126,
    "z" * 65535,
    "€" * 21846,  # 65538 bytes: the 64-bit length form
]
BINARIES = [b"", bytes(range(256)), os.urandom(126), os.urandom(65536), os.urandom(200_000)]


def test_text(node_server: Callable[..., NodeServer], connect: Callable[..., Connection]) -> None:
    connection = connect(node_server().url())
    for text in TEXTS:
        connection.send(text)
        echoed = connection.recv()
        assert type(echoed) is str
        assert echoed == text
    assert connection.close() == (1000, "")


def test_binary(node_server: Callable[..., NodeServer], connect: Callable[..., Connection]) -> None:
    connection = connect(node_server().url())
    for data in BINARIES:
        connection.send(data)
        echoed = connection.recv()
        assert type(echoed) is bytes
        assert echoed == data
    connection.send(bytearray(b"bytearray"))
    assert connection.recv() == b"bytearray"
    connection.send(memoryview(b"__memoryview__")[2:-2])
    assert connection.recv() == b"memoryview"
    assert connection.close() == (1000, "")


def test_many_messages_keep_their_order(
    node_server: Callable[..., NodeServer], connect: Callable[..., Connection]
) -> None:
    connection = connect(node_server().url())
    sent = [f"message {i}" if i % 2 else f"binary {i}".encode() for i in range(2000)]
    for message in sent:
        connection.send(message)
    assert [connection.recv() for _ in sent] == sent
    connection.close()


# ---------------------------------------------------------------------------------------------------------
# Fragmentation
# ---------------------------------------------------------------------------------------------------------


def test_fragmented_text_from_client(
    node_server: Callable[..., NodeServer], connect: Callable[..., Connection]
) -> None:
    connection = connect(node_server().url())
    connection.send_frame("hel", Opcode.TEXT, fin=False)
    connection.send_frame("lo ", Opcode.CONT, fin=False)
    connection.send_frame("world", Opcode.CONT, fin=True)
    assert connection.recv() == "hello world"
    # A character split across fragments: ws validates UTF-8 over the whole message.
    euro = "€".encode()
    connection.send_frame(b"price " + euro[:1], Opcode.TEXT, fin=False)
    connection.send_frame(euro[1:2], Opcode.CONT, fin=False)
    connection.send_frame(euro[2:] + b" 5", Opcode.CONT, fin=True)
    assert connection.recv() == "price € 5"
    connection.close()


def test_fragmented_binary_from_client_with_ping_between(
    node_server: Callable[..., NodeServer], connect: Callable[..., Connection]
) -> None:
    server = node_server()
    connection = connect(server.url())
    parts = [os.urandom(1000), os.urandom(70_000), b"", os.urandom(3)]
    connection.send_frame(parts[0], Opcode.BINARY, fin=False)
    assert connection.ping(b"between fragments") == b"between fragments"  # RFC 6455 §5.4
    for part in parts[1:-1]:
        connection.send_frame(part, Opcode.CONT, fin=False)
    connection.send_frame(parts[-1], Opcode.CONT, fin=True)
    assert connection.recv() == b"".join(parts)
    connection.close()


@pytest.mark.parametrize("count", [2, 7, 100])
def test_fragmented_text_from_server(
    node_server: Callable[..., NodeServer], connect: Callable[..., Connection], count: int
) -> None:
    connection = connect(node_server().url())
    text = "fragmented ☃ message with 4-byte 😀 characters split at byte boundaries " * 20
    connection.send(f"fragments:{count}:{text}")
    assert connection.recv() == text
    connection.send("after")
    assert connection.recv() == "after"
    connection.close()


# ---------------------------------------------------------------------------------------------------------
# Large messages
# ---------------------------------------------------------------------------------------------------------


def test_large_binary_16mib(
    node_server: Callable[..., NodeServer], connect: Callable[..., Connection]
) -> None:
    connection = connect(node_server().url())
    data = os.urandom(LARGE)
    connection.send(data)
    assert connection.recv() == data
    connection.close()


def test_large_text_16mib(node_server: Callable[..., NodeServer], connect: Callable[..., Connection]) -> None:
    connection = connect(node_server().url())
    unit = "order book snapshot ☃ 😀 "  # 1-, 3- and 4-byte characters
    text = unit * (LARGE // len(unit.encode()))
    connection.send(text)
    echoed = connection.recv()
    assert len(echoed) == len(text)
    assert echoed == text
    connection.close()


def test_message_over_max_message_size_fails_with_1009(
    node_server: Callable[..., NodeServer], connect: Callable[..., Connection]
) -> None:
    server = node_server()
    connection = connect(server.url(), max_message_size=1000)
    identifier = server_id(connection)
    connection.send(b"x" * 2000)  # the server echoes it: too big for the client
    assert connection.wait_closed()[0] == 1009
    closed = server.wait_event(lambda e: e.get("id") == identifier and e["event"] == "close")
    assert closed["code"] == 1009


# ---------------------------------------------------------------------------------------------------------
# Ping and pong
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("payload", [b"", b"ping!", bytes(range(125))])
def test_ping_from_client(
    node_server: Callable[..., NodeServer], connect: Callable[..., Connection], payload: bytes
) -> None:
    connection = connect(node_server().url())
    assert connection.ping(payload) == payload
    connection.send("still open")
    assert connection.recv() == "still open"
    connection.close()


@pytest.mark.parametrize("payload", ["", "keepalive", "p" * 120])
def test_ping_from_server_is_answered(
    node_server: Callable[..., NodeServer], connect: Callable[..., Connection], payload: str
) -> None:
    connection = connect(node_server().url())
    connection.send(f"ping:{payload}")
    assert connection.recv() == f"pong:{payload}"  # the server got our PONG with its payload
    connection.close()


# ---------------------------------------------------------------------------------------------------------
# Closing
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "reason"), [(1000, ""), (1001, "going away"), (3000, "registered"), (4000, "custom ☃")]
)
def test_client_closes_with_code(
    node_server: Callable[..., NodeServer], connect: Callable[..., Connection], code: int, reason: str
) -> None:
    server = node_server()
    connection = connect(server.url())
    identifier = server_id(connection)
    closed_code, _ = connection.close(code, reason)
    assert closed_code == code  # ws echoes the status code
    closed = server.wait_event(lambda e: e.get("id") == identifier and e["event"] == "close")
    assert (closed["code"], closed["reason"]) == (code, reason)


@pytest.mark.parametrize(
    ("code", "reason"),
    [(1000, ""), (1001, "bye"), (1011, "internal error"), (3000, "x"), (4999, "custom: reason ☃")],
)
def test_server_closes_with_code(
    node_server: Callable[..., NodeServer], connect: Callable[..., Connection], code: int, reason: str
) -> None:
    server = node_server()
    connection = connect(server.url())
    identifier = server_id(connection)
    connection.send(f"close:{code}:{reason}")
    assert connection.wait_closed() == (code, reason)
    closed = server.wait_event(lambda e: e.get("id") == identifier and e["event"] == "close")
    assert closed["code"] == code  # the client echoed the status code (RFC 6455 §5.5.1)


def test_server_closes_without_status_code(
    node_server: Callable[..., NodeServer], connect: Callable[..., Connection]
) -> None:
    server = node_server()
    connection = connect(server.url())
    identifier = server_id(connection)
    connection.send("close:")
    assert connection.wait_closed() == (1005, "")
    closed = server.wait_event(lambda e: e.get("id") == identifier and e["event"] == "close")
    assert closed["code"] == 1005  # the client answered with an empty CLOSE


def test_server_drops_tcp_gives_1006(
    node_server: Callable[..., NodeServer], connect: Callable[..., Connection]
) -> None:
    connection = connect(node_server().url())
    connection.send("terminate:")
    assert connection.wait_closed()[0] == 1006


def test_invalid_utf8_from_client_is_refused_by_ws_with_1007(
    node_server: Callable[..., NodeServer], connect: Callable[..., Connection]
) -> None:
    server = node_server()
    connection = connect(server.url())
    identifier = server_id(connection)
    connection.send_frame(b"\xff\xfe", Opcode.TEXT, fin=True)  # raw bytes: wsfast does not check outgoing
    assert connection.wait_closed()[0] == 1007  # ws failed the connection with 1007
    error = server.wait_event(lambda e: e.get("id") == identifier and e["event"] == "error")
    assert error["code"] == "WS_ERR_INVALID_UTF8"


# ---------------------------------------------------------------------------------------------------------
# permessage-deflate (RFC 7692)
# ---------------------------------------------------------------------------------------------------------

DEFLATE_SERVERS = {
    "takeover": ("--deflate",),
    "server_no_context_takeover": ("--deflate", "--server-no-context-takeover"),
    "client_no_context_takeover": ("--deflate", "--client-no-context-takeover"),
    "no_context_takeover": ("--deflate", "--server-no-context-takeover", "--client-no-context-takeover"),
    "server_max_window_bits_10": ("--deflate", "--server-max-window-bits", "10"),
}


def _stats(connection: Connection) -> dict[str, int]:
    connection.send("stats:")
    return json.loads(connection.recv())  # type: ignore[no-any-return]


def _negotiated(connection: Connection) -> str:
    response = connection.response
    assert response is not None
    return str(response.headers.get("Sec-WebSocket-Extensions", ""))


def _first_offer(server: NodeServer, connection_id: int) -> str:
    """The first permessage-deflate offer the client sent, as the server saw it."""
    opened = server.wait_event(lambda e: e["event"] == "open" and e["id"] == connection_id)
    return str(opened["offer"] or "").split(",")[0]


def _deflate_exchange(connection: Connection) -> None:
    """Messages that share content (context takeover matters), both types, empty ones, large ones, and
    a message the server fragments after compressing it."""
    messages: list[str | bytes] = []
    for i in range(50):
        messages.append(f'{{"seq": {i}, "bids": [["100.{i}", "1.5"]], "asks": [["101.{i}", "2"]]}}' * 4)
        messages.append(b"binary frame " * (i % 20) + bytes([i]))
    messages += ["", b"", "€ ☃ 😀" * 5000, os.urandom(20_000), "ascii " * 200_000, b"\x00" * 3_000_000]
    for message in messages:
        connection.send(message)
        assert connection.recv() == message
    text = '{"snapshot": "' + "level ☃ " * 5000 + '"}'
    connection.send(f"fragments:5:{text}")
    assert connection.recv() == text


def _wire_bytes(connection: Connection, payload: bytes, repeats: int = 3) -> tuple[list[int], list[int]]:
    """Echo *payload* *repeats* times; the server's TCP byte counts (read, written) for each round."""
    read, written = [], []
    before = _stats(connection)
    for _ in range(repeats):
        connection.send(payload)
        assert connection.recv() == payload
        after = _stats(connection)
        read.append(after["bytesRead"] - before["bytesRead"])
        written.append(after["bytesWritten"] - before["bytesWritten"])
        before = after
    return read, written


@pytest.mark.parametrize("setup", list(DEFLATE_SERVERS))
def test_deflate_echo(
    node_server: Callable[..., NodeServer], connect: Callable[..., Connection], client_kind: str, setup: str
) -> None:
    require_compression(client_kind)
    server = node_server(*DEFLATE_SERVERS[setup])
    connection = connect(server.url(), compression="deflate")
    header = _negotiated(connection)
    assert "permessage-deflate" in header
    info = json.loads((connection.send("info:"), connection.recv())[1])
    params = info["extensions"]["permessage-deflate"]
    offer = _first_offer(server, info["id"])
    # What ws agreed is what the client's handshake response says, and follows the server's options.
    server_resets = setup in ("server_no_context_takeover", "no_context_takeover")
    assert ("server_no_context_takeover" in params) == server_resets, (params, header)
    assert ("server_no_context_takeover" in header) == server_resets, header
    client_resets = setup in ("client_no_context_takeover", "no_context_takeover")
    client_resets = client_resets or "client_no_context_takeover" in offer
    assert ("client_no_context_takeover" in params) == client_resets, (params, offer)
    assert ("client_no_context_takeover" in header) == client_resets, (header, offer)
    if setup == "server_max_window_bits_10":
        assert "server_max_window_bits=10" in header
    _deflate_exchange(connection)
    assert connection.close() == (1000, "")
    events = server.connection_events(info["id"])
    assert not [e for e in events if e["event"] == "error"], events


@pytest.mark.parametrize("setup", list(DEFLATE_SERVERS))
def test_deflate_context_takeover_on_the_wire(
    node_server: Callable[..., NodeServer], connect: Callable[..., Connection], client_kind: str, setup: str
) -> None:
    """Echo one incompressible 16 KB message three times and count the bytes on the server's socket.

    Server to client: with context takeover the repeats are a back-reference into the previous message
    (tiny on the wire), so the client must keep its inflate window across messages; without it each copy
    costs 16 KB. Client to server: with client_no_context_takeover agreed the client must reset its
    compressor (each copy costs 16 KB; ws could not inflate a back-reference anyway). A 1 MiB
    compressible text proves the client compresses at all.
    """
    require_compression(client_kind)
    server = node_server(*DEFLATE_SERVERS[setup])
    connection = connect(server.url(), compression="deflate")
    header = _negotiated(connection)
    read, written = _wire_bytes(connection, os.urandom(16_000))
    if "server_no_context_takeover" in header:
        assert min(written[1:]) > 15_000, written
    elif setup != "server_max_window_bits_10":  # a 1 KiB window cannot reach back 16 KB
        assert max(written[1:]) < 2_000, written  # and the client inflated them right (echo checked)
    if "client_no_context_takeover" in header:
        assert min(read[1:]) > 15_000, read
    before = _stats(connection)
    text = "compressible market data " * 42_000  # about 1 MiB
    connection.send(text)
    assert connection.recv() == text
    after = _stats(connection)
    assert after["bytesRead"] - before["bytesRead"] < len(text) // 4, "the client did not compress"
    assert after["bytesWritten"] - before["bytesWritten"] < len(text) // 4, "ws did not compress"
    connection.close()


# The client's own offer parameters (wsfast.Deflate), against ws with its defaults.
CLIENT_OFFERS: dict[str, dict[str, Any]] = {
    "server_no_context_takeover": {"server_no_context_takeover": True},
    "server_max_window_bits_9": {"server_max_window_bits": 9},
    "client_max_window_bits_9": {"client_max_window_bits": 9},
    "client_no_context_takeover": {"client_no_context_takeover": True},
    "no_client_max_window_bits": {"client_max_window_bits": False},
    "threshold_0_level_1": {"compress_threshold": 0, "level": 1},
}


@pytest.mark.parametrize("offer", list(CLIENT_OFFERS))
def test_deflate_client_offer_parameters(
    node_server: Callable[..., NodeServer], connect: Callable[..., Connection], client_kind: str, offer: str
) -> None:
    require_compression(client_kind)
    deflate_class = getattr(wsfast, "Deflate", None)
    if deflate_class is None:
        pytest.skip("wsfast has no Deflate class for permessage-deflate parameters")
    server = node_server(*DEFLATE_SERVERS["takeover"])
    connection = connect(server.url(), compression=deflate_class(**CLIENT_OFFERS[offer]))
    header = _negotiated(connection)
    assert "permessage-deflate" in header
    if offer == "server_no_context_takeover":
        assert "server_no_context_takeover" in header
    elif offer == "server_max_window_bits_9":
        assert "server_max_window_bits=9" in header
    elif offer == "client_max_window_bits_9":
        assert "client_max_window_bits=9" in header
    _deflate_exchange(connection)
    _, written = _wire_bytes(connection, os.urandom(16_000))
    if offer == "server_no_context_takeover":
        assert min(written[1:]) > 15_000, written  # the server honoured the request
    connection.send("small")  # below the default threshold: sent uncompressed, still fine
    assert connection.recv() == "small"
    assert connection.close() == (1000, "")


def test_deflate_offer_declined_by_server(
    node_server: Callable[..., NodeServer], connect: Callable[..., Connection], client_kind: str
) -> None:
    require_compression(client_kind)
    server = node_server()  # no --deflate: ws answers without the extension
    connection = connect(server.url(), compression="deflate")
    assert "permessage-deflate" not in _negotiated(connection)
    for message in ["plain text", b"plain binary", "x" * 100_000]:
        connection.send(message)
        assert connection.recv() == message
    assert connection.close() == (1000, "")


def test_no_compression_offered_by_default(
    node_server: Callable[..., NodeServer], connect: Callable[..., Connection], client_kind: str
) -> None:
    """Without ``compression=`` the client offers nothing, even to a server that would compress."""
    parameter = inspect.signature(client_target(client_kind)).parameters.get("compression")
    if parameter is not None and parameter.default not in (None, False, "", inspect.Parameter.empty):
        pytest.skip(f"the client compresses by default (compression={parameter.default!r})")
    server = node_server(*DEFLATE_SERVERS["takeover"])
    connection = connect(server.url())
    info = json.loads((connection.send("info:"), connection.recv())[1])
    assert info["extensions"] == {}
    assert "sec-websocket-extensions" not in info["headers"]
    connection.send("x" * 10_000)
    assert connection.recv() == "x" * 10_000
    connection.close()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-v"]))
