"""End-to-end loopback benchmarks: real clients against e2e_server.py running in another process.

Each round connects, receives exactly N messages streamed by the server as fast as the socket allows,
and completes the closing handshake (so connect + handshake + close are in every round; N is large
enough for them to be noise).  After every round, outside the timed region, the round's result is
checked: exact message count, type and content of the first and the last message, close code 1000
where the library exposes it -- so a client that loses, duplicates or garbles messages fails instead
of posting a fast number.

Groups (all contenders of a scenario share one group): ``e2e-small-json``, ``e2e-binary-64k``,
``e2e-binary-1m``, ``e2e-text-4m-frag-1k``, ``e2e-latency`` (echo round trips; p50/p99 of the
per-message RTT go to ``extra_info`` and the summary printed at the end of the run) and
``e2e-latency-paired`` (wsfast / picows latency ratios from alternating rounds, with 95% intervals).

With ``--benchmark-disable`` every benchmark runs one small, verified round: a smoke test.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import os
import queue
import random
import socket
import statistics
import struct
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import pytest

import e2e_server
import peers

MAX_SIZE = 64 * 2**20  # every library's message/frame limit: the 4 MiB and 1 MiB messages must pass
ROUND_TIMEOUT = 60.0  # a hanging client fails the round instead of hanging the run
RECV_BUFFER = 256 * 1024  # raw-recv-into; the same size as wsfast's receive buffer
WARMUP_ROUNDS = 1


# --------------------------------------------------------------------------- parameters
@dataclass
class Plan:
    count: int  # messages per round (echo round trips for latency)
    rounds: int
    smoke_count: int  # with --benchmark-disable
    slow: dict = field(default_factory=dict)  # contender -> (count, rounds) for impractically slow ones


STREAM_PLANS = {
    "small-json": Plan(count=200_000, rounds=15, smoke_count=1_000, slow={"websocket-client": (10_000, 5)}),
    "binary-64k": Plan(count=4096, rounds=15, smoke_count=16, slow={"websocket-client": (1024, 5)}),
    "binary-1m": Plan(count=256, rounds=15, smoke_count=2, slow={"websocket-client": (64, 5)}),
    "text-4m-frag-1k": Plan(count=32, rounds=15, smoke_count=1, slow={"websocket-client": (1, 2)}),
}
LATENCY_PLAN = Plan(count=1000, rounds=15, smoke_count=20)
LATENCY_WARMUP = 20  # echoes per round before the recorded ones

STREAM_CONTENDERS = [
    "wsfast-thread",
    "wsfast-sync-recv",
    "wsfast-sync-iter",
    "wsfast-async-iter",
    "wsfast-async-inline",
    "wsfast-async-inline-uvloop",
    "picows",
    "picows-uvloop",
    "aiohttp",
    "websockets",
    "websocket-client",
    "raw-recv-into",
]
LATENCY_CONTENDERS = [
    "wsfast-async-inline",
    "wsfast-async-inline-uvloop",
    "wsfast-async-iter",
    "wsfast-thread",
    "wsfast-sync-recv",
    "picows",
    "picows-uvloop",
    "aiohttp",
    "websockets",
]

#: contender (without -uvloop) -> module that must import
REQUIRES = {
    "wsfast-thread": "wsfast",
    "wsfast-sync-recv": "wsfast.sync",
    "wsfast-sync-iter": "wsfast.sync",
    "wsfast-async-iter": "wsfast.asyncio",
    "wsfast-async-inline": "wsfast.asyncio",
    "picows": "picows",
    "aiohttp": "aiohttp",
    "websockets": "websockets.asyncio.client",
    "websocket-client": "websocket",
    "raw-recv-into": "socket",
}


def _require(contender: str) -> tuple[str, str | None]:
    """Skip unless the contender's libraries import; return (base name, loop kind or None)."""
    base = contender.removesuffix("-uvloop")
    peers.importorskip(REQUIRES[base])
    if base in ("wsfast-async-iter", "wsfast-async-inline", "picows", "aiohttp", "websockets"):
        return base, ("uvloop" if contender.endswith("-uvloop") else "asyncio")
    return base, None


class ClientFailed(AssertionError):
    """The client under test hung, lost messages, or raised."""


# --------------------------------------------------------------------------- round results
class Result:
    """What one round received.  on_message() is the per-message user code of every callback API."""

    __slots__ = ("close_code", "count", "cpu_ns", "first", "head", "last", "nbytes", "rtts", "tail")

    def __init__(self) -> None:
        self.count = 0
        self.first = None
        self.last = None
        self.close_code = None  # None: the library does not expose it (not checked)
        self.nbytes = 0
        self.head = b""
        self.tail = b""
        self.rtts: list[int] = []
        self.cpu_ns = 0  # process CPU time (all threads, user + system) spent in the round

    def on_message(self, message) -> None:
        if self.count == 0:
            self.first = message
        self.count += 1
        self.last = message


def _same(got, want) -> bool:
    if isinstance(want, str):
        return type(got) is str and got == want
    return isinstance(got, (bytes, bytearray, memoryview)) and bytes(got) == want


def _describe(message) -> str:
    if message is None:
        return "None"
    start = message[:40] if isinstance(message, str) else bytes(message[:40])
    return f"{type(message).__name__} of {len(message)}: {start!r}..."


def verify_stream(contender: str, scen, count: int, res: Result) -> None:
    if contender == "raw-recv-into":
        want = scen.wire_bytes(count)
        if res.nbytes != want:
            raise ClientFailed(f"raw-recv-into: {res.nbytes} bytes received, {want} expected")
        if res.head != scen.joined[: len(res.head)] or len(res.head) < 2:
            raise ClientFailed(f"raw-recv-into: stream starts with {res.head!r}")
        if res.tail != e2e_server.CLOSE_1000:
            raise ClientFailed(f"raw-recv-into: stream ends with {res.tail!r}, not CLOSE 1000")
        return
    if res.count != count:
        raise ClientFailed(f"{contender}: received {res.count} messages, expected {count}")
    for label, got, want in (
        ("first", res.first, scen.expected(0)),
        ("last", res.last, scen.expected(count - 1)),
    ):
        if not _same(got, want):
            raise ClientFailed(
                f"{contender}: wrong {label} message: got {_describe(got)}, want {_describe(want)}"
            )
    if res.close_code is not None and res.close_code != 1000:
        raise ClientFailed(f"{contender}: close code {res.close_code}, expected 1000")


# --------------------------------------------------------------------------- stream drivers
# Every async driver is a coroutine run with loop.run_until_complete(wait_for(..., ROUND_TIMEOUT));
# every sync driver bounds its blocking calls with ROUND_TIMEOUT.


def stream_wsfast_thread(url: str, res: Result) -> None:
    import wsfast

    def on_close(code: int, reason: str) -> None:
        res.close_code = code

    client = wsfast.WebSocketClient(res.on_message, url, on_close=on_close, max_message_size=MAX_SIZE)
    client.connect()
    if not client.wait(ROUND_TIMEOUT):
        client.disconnect(timeout=1)
        raise ClientFailed(
            f"wsfast-thread: connection not closed after {ROUND_TIMEOUT} s ({res.count} messages)"
        )


def stream_wsfast_sync_recv(url: str, res: Result) -> None:
    """The blocking front-end read with ``recv(timeout)`` in a loop: the same event thread as
    wsfast-thread feeds a queue, and this thread takes the messages from it."""
    from wsfast import ConnectionClosedOK
    from wsfast.sync import connect

    count, first, last = 0, None, None
    with connect(url, max_message_size=MAX_SIZE) as ws:
        recv = ws.recv
        while True:
            try:
                message = recv(ROUND_TIMEOUT)
            except ConnectionClosedOK:
                break
            if count == 0:
                first = message
            count += 1
            last = message
    res.count, res.first, res.last = count, first, last
    res.close_code = ws.close_code


def stream_wsfast_sync_iter(url: str, res: Result) -> None:
    """The blocking front-end read with ``for message in ws`` (unbounded: ROUND_TIMEOUT is the
    server's to keep, as it closes every stream)."""
    from wsfast.sync import connect

    count, first, last = 0, None, None
    with connect(url, max_message_size=MAX_SIZE) as ws:
        for message in ws:
            if count == 0:
                first = message
            count += 1
            last = message
    res.count, res.first, res.last = count, first, last
    res.close_code = ws.close_code


SYNC_STREAM = {
    "wsfast-thread": stream_wsfast_thread,
    "wsfast-sync-recv": stream_wsfast_sync_recv,
    "wsfast-sync-iter": stream_wsfast_sync_iter,
}


async def stream_wsfast_inline(url: str, res: Result, ctx) -> None:
    import wsfast

    ws = await wsfast.connect(url, on_message=res.on_message, max_message_size=MAX_SIZE)
    await ws.wait_closed()
    res.close_code = ws.close_code


async def stream_wsfast_iter(url: str, res: Result, ctx) -> None:
    import wsfast

    count, first, last = 0, None, None
    async with wsfast.connect(url, max_message_size=MAX_SIZE) as ws:
        async for message in ws:
            if count == 0:
                first = message
            count += 1
            last = message
    res.count, res.first, res.last = count, first, last
    res.close_code = ws.close_code


@functools.cache
def _picows_listener_class():
    from picows import WSListener, WSMsgType

    TEXT, BINARY, CONT, CLOSE = WSMsgType.TEXT, WSMsgType.BINARY, WSMsgType.CONTINUATION, WSMsgType.CLOSE

    class StreamListener(WSListener):
        """What a picows user writes: text via get_payload_as_utf8_text(), binary via
        get_payload_as_bytes(), fragments joined by hand (picows delivers frames, not messages)."""

        def __init__(self, res: Result) -> None:
            self.res = res
            self.frag = None
            self.frag_type = None

        def on_ws_frame(self, transport, frame) -> None:
            t = frame.msg_type
            if frame.fin:
                if t == TEXT:
                    message = frame.get_payload_as_utf8_text()
                elif t == BINARY:
                    message = frame.get_payload_as_bytes()
                elif t == CONT:
                    frag = self.frag
                    frag += frame.get_payload_as_memoryview()
                    message = frag.decode("utf-8") if self.frag_type == TEXT else bytes(frag)
                    self.frag = self.frag_type = None
                elif t == CLOSE:
                    code = frame.get_close_code()
                    self.res.close_code = int(code)
                    transport.send_close(code)
                    transport.disconnect()
                    return
                else:
                    return
                # The per-message user code, inline (as Result.on_message does for the callback APIs).
                res = self.res
                if res.count == 0:
                    res.first = message
                res.count += 1
                res.last = message
            elif t == CONT:
                self.frag += frame.get_payload_as_memoryview()
            else:
                self.frag_type = t
                self.frag = bytearray(frame.get_payload_as_memoryview())

    return StreamListener


async def stream_picows(url: str, res: Result, ctx) -> None:
    from picows import ws_connect

    listener_class = _picows_listener_class()
    transport, _ = await ws_connect(lambda: listener_class(res), url, max_frame_size=MAX_SIZE)
    await transport.wait_disconnected()


async def _aiohttp_session(ctx):
    import aiohttp

    session = ctx.get("aiohttp")
    if session is None:
        session = ctx["aiohttp"] = aiohttp.ClientSession()
        asyncio.get_running_loop().e2e_cleanup.append(session.close)
    return session


async def stream_aiohttp(url: str, res: Result, ctx) -> None:
    session = await _aiohttp_session(ctx)  # one ClientSession per benchmark, as aiohttp recommends
    count, first, last = 0, None, None
    async with session.ws_connect(url, max_msg_size=MAX_SIZE) as ws:
        async for msg in ws:
            data = msg.data
            if count == 0:
                first = data
            count += 1
            last = data
    res.count, res.first, res.last = count, first, last
    res.close_code = ws.close_code


def _websockets_connect():
    import websockets.asyncio.messages as messages
    from websockets.asyncio.client import connect

    # A 4 MiB message in 1 KiB fragments has 4097 fragments; websockets refuses more than
    # WEBSOCKETS_MAX_FRAGMENTS (default 4096) per message.  Raise the documented knob.
    messages.MAX_FRAGMENTS = max(messages.MAX_FRAGMENTS, 1 << 20)
    return connect


async def stream_websockets(url: str, res: Result, ctx) -> None:
    connect = _websockets_connect()
    count, first, last = 0, None, None
    async with connect(url, max_size=MAX_SIZE) as ws:
        async for message in ws:
            if count == 0:
                first = message
            count += 1
            last = message
    res.count, res.first, res.last = count, first, last
    res.close_code = ws.close_code


def stream_websocket_client(url: str, res: Result) -> None:
    import websocket

    ws = websocket.create_connection(url, timeout=ROUND_TIMEOUT)
    try:
        count, first, last = 0, None, None
        while True:
            message = ws.recv()
            if not message:  # "" = the server's CLOSE (answered by recv()); no stream has empty messages
                break
            if count == 0:
                first = message
            count += 1
            last = message
        res.count, res.first, res.last = count, first, last
    finally:
        ws.shutdown()  # recv() already sent the closing CLOSE; close() would send a second one


def _raw_handshake(url: str) -> tuple[socket.socket, bytes]:
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=ROUND_TIMEOUT)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    key = base64.b64encode(os.urandom(16)).decode()
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    sock.sendall(
        (
            f"GET {target} HTTP/1.1\r\nHost: {parts.netloc}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            raise ClientFailed("raw-recv-into: connection closed during the handshake")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    accept = base64.b64encode(hashlib.sha1(key.encode() + e2e_server.WS_GUID).digest())
    if not head.startswith(b"HTTP/1.1 101") or b"Sec-WebSocket-Accept: " + accept not in head:
        raise ClientFailed(f"raw-recv-into: bad handshake response {head!r}")
    return sock, rest


def stream_raw(url: str, res: Result, expected_bytes: int) -> None:
    """The transport ceiling: recv_into() a reusable buffer until every byte is in; parse nothing."""
    sock, rest = _raw_handshake(url)
    try:
        view = memoryview(bytearray(RECV_BUFFER))
        recv_into = sock.recv_into
        total = len(rest)
        head = rest[:16]
        tail = rest[-4:]
        while total < expected_bytes:
            n = recv_into(view)
            if not n:
                break
            if len(head) < 16:
                head += bytes(view[: 16 - len(head)])
            total += n
            tail = (tail + bytes(view[max(0, n - 4) : n]))[-4:]
        res.nbytes, res.head, res.tail = total, head, tail
        mask = os.urandom(4)
        payload = struct.pack("!H", 1000)
        sock.sendall(b"\x88\x82" + mask + bytes(b ^ mask[i] for i, b in enumerate(payload)))
        while sock.recv(4096):  # wait for the server to close TCP
            pass
    finally:
        sock.close()


ASYNC_STREAM = {
    "wsfast-async-inline": stream_wsfast_inline,
    "wsfast-async-iter": stream_wsfast_iter,
    "picows": stream_picows,
    "aiohttp": stream_aiohttp,
    "websockets": stream_websockets,
}


# --------------------------------------------------------------------------- latency drivers
def _payload(i: int) -> str:
    return f'{{"op":"ping","id":{i},"ts":1732000000000}}'


async def latency_wsfast_inline(url: str, res: Result, ctx, k: int) -> None:
    import wsfast

    loop = asyncio.get_running_loop()
    waiter: list = [None]

    def on_message(message) -> None:
        future = waiter[0]
        if future is not None and not future.done():
            future.set_result(message)

    ws = await wsfast.connect(url, on_message=on_message)
    try:
        for i in range(LATENCY_WARMUP + k):
            payload = _payload(i)
            future = waiter[0] = loop.create_future()
            t0 = time.perf_counter_ns()
            ws.send_nowait(payload)  # the inline API's synchronous send, as picows' transport.send()
            got = await future
            dt = time.perf_counter_ns() - t0
            if got != payload:
                raise ClientFailed(f"wsfast-async-inline: echo {got!r} != {payload!r}")
            if i >= LATENCY_WARMUP:
                res.rtts.append(dt)
    finally:
        await ws.close()
    res.close_code = ws.close_code


async def latency_wsfast_iter(url: str, res: Result, ctx, k: int) -> None:
    import wsfast

    async with wsfast.connect(url) as ws:
        for i in range(LATENCY_WARMUP + k):
            payload = _payload(i)
            t0 = time.perf_counter_ns()
            await ws.send(payload)
            got = await ws.recv()
            dt = time.perf_counter_ns() - t0
            if got != payload:
                raise ClientFailed(f"wsfast-async-iter: echo {got!r} != {payload!r}")
            if i >= LATENCY_WARMUP:
                res.rtts.append(dt)
    res.close_code = ws.close_code


def latency_wsfast_thread(url: str, res: Result, k: int) -> None:
    import wsfast

    inbox: queue.SimpleQueue = queue.SimpleQueue()
    client = wsfast.WebSocketClient(inbox.put, url)
    client.connect()
    try:
        for i in range(LATENCY_WARMUP + k):
            payload = _payload(i)
            t0 = time.perf_counter_ns()
            client.send(payload)
            try:
                got = inbox.get(timeout=ROUND_TIMEOUT)
            except queue.Empty:
                raise ClientFailed(
                    f"wsfast-thread: no echo for message {i} within {ROUND_TIMEOUT} s"
                ) from None
            dt = time.perf_counter_ns() - t0
            if got != payload:
                raise ClientFailed(f"wsfast-thread: echo {got!r} != {payload!r}")
            if i >= LATENCY_WARMUP:
                res.rtts.append(dt)
    finally:
        client.disconnect(timeout=10)
    res.close_code = client.close_code


def latency_wsfast_sync(url: str, res: Result, k: int) -> None:
    from wsfast.sync import connect

    with connect(url) as ws:
        for i in range(LATENCY_WARMUP + k):
            payload = _payload(i)
            t0 = time.perf_counter_ns()
            ws.send(payload)
            got = ws.recv(ROUND_TIMEOUT)
            dt = time.perf_counter_ns() - t0
            if got != payload:
                raise ClientFailed(f"wsfast-sync-recv: echo {got!r} != {payload!r}")
            if i >= LATENCY_WARMUP:
                res.rtts.append(dt)
    res.close_code = ws.close_code


SYNC_LATENCY = {"wsfast-thread": latency_wsfast_thread, "wsfast-sync-recv": latency_wsfast_sync}


@functools.cache
def _picows_echo_listener_class():
    from picows import WSListener, WSMsgType

    TEXT = WSMsgType.TEXT

    class EchoListener(WSListener):
        def __init__(self) -> None:
            self.future = None

        def on_ws_frame(self, transport, frame) -> None:
            if frame.msg_type == TEXT:
                future = self.future
                if future is not None and not future.done():
                    future.set_result(frame.get_payload_as_utf8_text())

    return EchoListener


async def latency_picows(url: str, res: Result, ctx, k: int) -> None:
    from picows import WSCloseCode, WSMsgType, ws_connect

    loop = asyncio.get_running_loop()
    transport, listener = await ws_connect(_picows_echo_listener_class(), url)
    try:
        for i in range(LATENCY_WARMUP + k):
            payload = _payload(i)
            future = listener.future = loop.create_future()
            t0 = time.perf_counter_ns()
            transport.send(WSMsgType.TEXT, payload.encode())
            got = await future
            dt = time.perf_counter_ns() - t0
            if got != payload:
                raise ClientFailed(f"picows: echo {got!r} != {payload!r}")
            if i >= LATENCY_WARMUP:
                res.rtts.append(dt)
    finally:
        transport.send_close(WSCloseCode.OK)
        await transport.wait_disconnected()


async def latency_aiohttp(url: str, res: Result, ctx, k: int) -> None:
    session = await _aiohttp_session(ctx)
    async with session.ws_connect(url) as ws:
        for i in range(LATENCY_WARMUP + k):
            payload = _payload(i)
            t0 = time.perf_counter_ns()
            await ws.send_str(payload)
            msg = await ws.receive()
            dt = time.perf_counter_ns() - t0
            if msg.data != payload:
                raise ClientFailed(f"aiohttp: echo {msg!r} != {payload!r}")
            if i >= LATENCY_WARMUP:
                res.rtts.append(dt)
    res.close_code = ws.close_code


async def latency_websockets(url: str, res: Result, ctx, k: int) -> None:
    connect = _websockets_connect()
    async with connect(url) as ws:
        for i in range(LATENCY_WARMUP + k):
            payload = _payload(i)
            t0 = time.perf_counter_ns()
            await ws.send(payload)
            got = await ws.recv()
            dt = time.perf_counter_ns() - t0
            if got != payload:
                raise ClientFailed(f"websockets: echo {got!r} != {payload!r}")
            if i >= LATENCY_WARMUP:
                res.rtts.append(dt)
    res.close_code = ws.close_code


ASYNC_LATENCY = {
    "wsfast-async-inline": latency_wsfast_inline,
    "wsfast-async-iter": latency_wsfast_iter,
    "picows": latency_picows,
    "aiohttp": latency_aiohttp,
    "websockets": latency_websockets,
}


# --------------------------------------------------------------------------- running rounds
def _async_runner(loop, coroutine_function, *args):
    ctx: dict = {}

    def run(res: Result) -> None:
        loop.run_until_complete(
            asyncio.wait_for(coroutine_function(*args[:1], res, ctx, *args[1:]), ROUND_TIMEOUT)
        )

    return run


def _describe_transport(benchmark, base: str, loop_kind: str | None) -> None:
    if loop_kind is not None:
        benchmark.extra_info["loop"] = loop_kind
    if base == "picows":
        import picows.api

        # picows uses aiofastnet's compiled transport instead of the loop's when it is installed.
        benchmark.extra_info["picows_aiofastnet"] = bool(getattr(picows.api, "_HAS_AIOFASTNET", False))


def _run_rounds(benchmark, round_fn, verify, rounds: int) -> list[Result]:
    """pedantic rounds, one connection each; every round's result (warm-up included) is verified
    outside the timing.  Returns the measured rounds' results (messages dropped, cpu and rtts kept)."""
    made: list[Result] = []

    def setup():
        made.append(Result())
        return (made[-1],), {}

    def timed(res: Result) -> None:
        cpu = time.process_time_ns()  # this process only: the server runs in another one
        round_fn(res)
        res.cpu_ns = time.process_time_ns() - cpu

    def check(res: Result) -> None:
        verify(res)
        res.first = res.last = None  # keep memory flat (4 MiB messages)

    benchmark.pedantic(
        timed, setup=setup, teardown=check, rounds=rounds, warmup_rounds=WARMUP_ROUNDS, iterations=1
    )
    if benchmark.disabled:  # smoke test: pedantic ran one round and no teardown
        check(made[-1])
        return made
    return made[WARMUP_ROUNDS:]


def _cpu_median(results: list[Result]) -> float:
    return statistics.median(r.cpu_ns for r in results) / 1e9


#: rows for the summary printed by conftest.pytest_terminal_summary
REPORT: list[dict] = []


@pytest.mark.parametrize("contender", STREAM_CONTENDERS)
@pytest.mark.parametrize("scenario_name", list(STREAM_PLANS))
def test_e2e_stream(benchmark, e2e_url, make_loop, scenario_name, contender):
    base, loop_kind = _require(contender)
    plan = STREAM_PLANS[scenario_name]
    count, rounds = plan.slow.get(base, (plan.count, plan.rounds))
    if benchmark.disabled:
        count = min(count, plan.smoke_count)
    scen = e2e_server.scenario(scenario_name)
    url = f"{e2e_url}/{scenario_name}?count={count}"
    group = f"e2e-{scenario_name}"
    benchmark.group = group
    benchmark.extra_info.update(
        messages=count, payload_bytes=scen.payload_bytes(count), wire_bytes=scen.wire_bytes(count)
    )

    _describe_transport(benchmark, base, loop_kind)
    if loop_kind is not None:
        round_fn = _async_runner(make_loop(loop_kind), ASYNC_STREAM[base], url)
    elif base in SYNC_STREAM:
        round_fn = functools.partial(SYNC_STREAM[base], url)
    elif base == "websocket-client":
        round_fn = functools.partial(stream_websocket_client, url)
    else:
        round_fn = lambda res: stream_raw(url, res, scen.wire_bytes(count))  # noqa: E731

    results = _run_rounds(
        benchmark, round_fn, functools.partial(verify_stream, contender, scen, count), rounds
    )

    if not benchmark.disabled:
        stats = benchmark.stats.stats
        payload = scen.payload_bytes(count)
        cpu = _cpu_median(results)
        row = dict(
            group=group,
            contender=contender,
            count=count,
            median=stats.median,
            msgs_per_s=count / stats.median,
            MB_per_s=payload / stats.median / 1e6,
            best_msgs_per_s=count / stats.min,
            best_MB_per_s=payload / stats.min / 1e6,
            cpu_s=cpu,
            cpu_msgs_per_s=count / cpu,
            cpu_MB_per_s=payload / cpu / 1e6,
        )
        benchmark.extra_info.update(
            {k: v for k, v in row.items() if k not in ("group", "contender", "count")}
        )
        REPORT.append(row)
        print(
            f"\n{group} {contender}: {row['msgs_per_s']:,.0f} msg/s, {row['MB_per_s']:,.1f} MB/s "
            f"(median of {rounds} rounds, N={count}); client CPU {cpu * 1e3:.1f} ms/round"
        )


def _percentile(sorted_values: list[int], q: float) -> float:
    """The *q* quantile of *sorted_values* (nearest rank, no interpolation)."""
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * q))]


@pytest.mark.parametrize("contender", LATENCY_CONTENDERS)
def test_e2e_latency(benchmark, e2e_url, make_loop, contender):
    base, loop_kind = _require(contender)
    k = LATENCY_PLAN.smoke_count if benchmark.disabled else LATENCY_PLAN.count
    url = f"{e2e_url}/echo"
    benchmark.group = "e2e-latency"
    benchmark.extra_info["round_trips_per_round"] = k

    _describe_transport(benchmark, base, loop_kind)
    if loop_kind is not None:
        run = _async_runner(make_loop(loop_kind), ASYNC_LATENCY[base], url, k)
    else:
        run = functools.partial(SYNC_LATENCY[base], url, k=k)

    def verify(res: Result) -> None:
        if len(res.rtts) != k:
            raise ClientFailed(f"{contender}: {len(res.rtts)} round trips, expected {k}")
        if res.close_code is not None and res.close_code != 1000:
            raise ClientFailed(f"{contender}: close code {res.close_code}, expected 1000")

    results = _run_rounds(benchmark, run, verify, LATENCY_PLAN.rounds)

    if not benchmark.disabled:
        samples = sorted(rtt for res in results for rtt in res.rtts)  # measured rounds only
        p50 = _percentile(samples, 0.5) / 1e3
        p99 = _percentile(samples, 0.99) / 1e3
        mean = statistics.fmean(samples) / 1e3
        cpu_us = _cpu_median(results) / k * 1e6
        benchmark.extra_info.update(
            rtt_p50_us=p50, rtt_p99_us=p99, rtt_mean_us=mean, rtt_samples=len(samples), cpu_us_per_rtt=cpu_us
        )
        REPORT.append(
            dict(group="e2e-latency", contender=contender, p50=p50, p99=p99, mean=mean, cpu_us=cpu_us)
        )
        print(
            f"\ne2e-latency {contender}: RTT p50 {p50:.1f} us, p99 {p99:.1f} us ({len(samples)} samples); "
            f"client CPU {cpu_us:.1f} us per round trip"
        )


#: (wsfast contender, reference) pairs of the paired latency test
LATENCY_PAIRS = [
    ("wsfast-async-inline", "picows"),
    ("wsfast-async-iter", "picows"),
    ("wsfast-thread", "picows"),
    ("wsfast-async-inline-uvloop", "picows-uvloop"),
]
PAIRED_PLAN = Plan(count=1000, rounds=20, smoke_count=20)
BOOTSTRAP_RESAMPLES = 2000


def _latency_round(contender: str, make_loop, url: str, k: int):
    base, loop_kind = _require(contender)
    if loop_kind is not None:
        return _async_runner(make_loop(loop_kind), ASYNC_LATENCY[base], url, k)
    return functools.partial(SYNC_LATENCY[base], url, k=k)


def bootstrap_ci(
    values: list[float], resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0
) -> tuple[float, float]:
    """95% percentile-bootstrap interval of the median of *values* (a fixed seed: reproducible)."""
    rng = random.Random(seed)
    n = len(values)
    medians = sorted(statistics.median(rng.choices(values, k=n)) for _ in range(resamples))
    return medians[int(resamples * 0.025)], medians[min(resamples - 1, int(resamples * 0.975))]


@pytest.mark.parametrize("pair", LATENCY_PAIRS, ids="-vs-".join)
def test_e2e_latency_paired(benchmark, e2e_url, make_loop, pair):
    """The latency ratio, free of the machine's drift: rounds of the two contenders alternate
    (A B, B A, A B, ...), each round's p50 and p99 are divided by those of its partner round, and
    the median of those per-pair ratios is reported with a 95% bootstrap interval.

    test_e2e_latency runs each contender's rounds back to back, so a shared machine that slows
    down for a few seconds skews its ratios by 10-30%; here both contenders meet the same drift.
    """
    name, reference = pair
    k = PAIRED_PLAN.smoke_count if benchmark.disabled else PAIRED_PLAN.count
    rounds = 2 if benchmark.disabled else PAIRED_PLAN.rounds
    url = f"{e2e_url}/echo"
    benchmark.group = "e2e-latency-paired"
    runners = {c: _latency_round(c, make_loop, url, k) for c in pair}
    samples: dict[str, list[list[int]]] = {c: [] for c in pair}

    def one_round(contender: str) -> None:
        res = Result()
        runners[contender](res)
        if len(res.rtts) != k:
            raise ClientFailed(f"{contender}: {len(res.rtts)} round trips, expected {k}")
        if res.close_code is not None and res.close_code != 1000:
            raise ClientFailed(f"{contender}: close code {res.close_code}, expected 1000")
        samples[contender].append(sorted(res.rtts))

    for contender in pair:  # warm-up round each, not recorded
        one_round(contender)
        samples[contender].clear()

    def experiment() -> None:
        for i in range(rounds):
            for contender in pair if i % 2 == 0 else pair[::-1]:
                one_round(contender)

    benchmark.pedantic(experiment, rounds=1, iterations=1)
    if benchmark.disabled:
        return
    ratios = {}
    for q, label in ((0.5, "p50"), (0.99, "p99")):
        per_pair = [
            _percentile(a, q) / _percentile(b, q)
            for a, b in zip(samples[name], samples[reference], strict=True)
        ]
        ratios[label] = (statistics.median(per_pair), *bootstrap_ci(per_pair))
    pooled = {c: sorted(rtt for rnd in samples[c] for rtt in rnd) for c in pair}
    row = dict(
        group="e2e-latency-paired",
        contender=name,
        reference=reference,
        rounds=rounds,
        p50=_percentile(pooled[name], 0.5) / 1e3,
        p99=_percentile(pooled[name], 0.99) / 1e3,
        ref_p50=_percentile(pooled[reference], 0.5) / 1e3,
        ref_p99=_percentile(pooled[reference], 0.99) / 1e3,
        p50_ratio=ratios["p50"],
        p99_ratio=ratios["p99"],
    )
    benchmark.extra_info.update({k_: v for k_, v in row.items() if k_ != "group"})
    REPORT.append(row)
    print(
        f"\ne2e-latency-paired {name} / {reference}: p50 x{ratios['p50'][0]:.3f} "
        f"[{ratios['p50'][1]:.3f}, {ratios['p50'][2]:.3f}], p99 x{ratios['p99'][0]:.3f} "
        f"[{ratios['p99'][1]:.3f}, {ratios['p99'][2]:.3f}] ({rounds} paired rounds of {k})"
    )


# --------------------------------------------------------------------------- summary
def summary_lines() -> list[str]:
    """Rates per group (median round, best round, client CPU) and the wsfast/picows, wsfast/raw ratios."""
    wsfast = (
        "wsfast-async-inline",
        "wsfast-async-iter",
        "wsfast-thread",
        "wsfast-sync-recv",
        "wsfast-sync-iter",
        "wsfast-async-inline-uvloop",
    )
    lines: list[str] = []
    groups: dict[str, list[dict]] = {}
    for row in REPORT:
        groups.setdefault(row["group"], []).append(row)
    for group, rows in groups.items():
        lines.append("")
        by = {r["contender"]: r for r in rows}
        if group == "e2e-latency":
            lines.append(f"{group}: round trip of a ~40-byte text echo, microseconds (lower is better)")
            lines.append(f"  {'contender':<28} {'p50':>8} {'p99':>8} {'mean':>8} {'client CPU':>11}")
            for row in sorted(rows, key=lambda r: r["p50"]):
                lines.append(
                    f"  {row['contender']:<28} {row['p50']:8.1f} {row['p99']:8.1f} {row['mean']:8.1f} "
                    f"{row['cpu_us']:11.1f}"
                )
            for name in wsfast:
                ref = "picows-uvloop" if name.endswith("uvloop") else "picows"
                if name in by and ref in by:
                    lines.append(
                        f"  {name} / {ref}: p50 x{by[name]['p50'] / by[ref]['p50']:.2f}, "
                        f"p99 x{by[name]['p99'] / by[ref]['p99']:.2f} (< 1: wsfast faster; rounds run "
                        "back to back, see e2e-latency-paired for the drift-free ratio)"
                    )
            continue
        if group == "e2e-latency-paired":
            lines.append(
                f"{group}: rounds alternate between the two contenders; median of the per-pair ratios "
                "[95% bootstrap interval] (< 1: wsfast faster)"
            )
            for row in rows:
                (p50, p50_lo, p50_hi), (p99, p99_lo, p99_hi) = row["p50_ratio"], row["p99_ratio"]
                lines.append(
                    f"  {row['contender']} / {row['reference']}: "
                    f"p50 x{p50:.3f} [{p50_lo:.3f}, {p50_hi:.3f}], "
                    f"p99 x{p99:.3f} [{p99_lo:.3f}, {p99_hi:.3f}]; pooled p50 {row['p50']:.1f} vs "
                    f"{row['ref_p50']:.1f} us, p99 {row['p99']:.1f} vs {row['ref_p99']:.1f} us "
                    f"({row['rounds']} pairs)"
                )
            continue
        unit = "msg/s" if group == "e2e-small-json" else "MB/s"
        key = "msgs_per_s" if unit == "msg/s" else "MB_per_s"
        lines.append(
            f"{group}: {unit} (higher is better); median = the benchmark's median round, best = its fastest "
            "round, cpu = payload / client CPU time (the server runs in another process)"
        )
        lines.append(f"  {'contender':<28} {'median':>14} {'best':>14} {'cpu':>14}  N")
        for row in sorted(rows, key=lambda r: -r[key]):
            lines.append(
                f"  {row['contender']:<28} {row[key]:>14,.0f} {row['best_' + key]:>14,.0f} "
                f"{row['cpu_' + key]:>14,.0f}  {row['count']}"
            )
        for name in wsfast:
            ref = "picows-uvloop" if name.endswith("uvloop") else "picows"
            for base in (ref, "raw-recv-into"):
                if name in by and base in by and (base != "raw-recv-into" or not name.endswith("uvloop")):
                    a, b = by[name], by[base]
                    median, best, cpu = (a[k] / b[k] for k in (key, "best_" + key, "cpu_" + key))
                    lines.append(f"  {name} / {base}: median x{median:.2f}, best x{best:.2f}, cpu x{cpu:.2f}")
    return lines
