"""Offline adapters that drive each library's *server-frame parser* (client side).

Every adapter is created by :func:`make_adapter` and exposes::

    adapter.parse(stream_chunks) -> int   # number of messages produced
    adapter.last                          # list of the messages of the last parse() call
    adapter.close()                       # release loops / sockets

``stream_chunks`` is a list of ``bytes`` objects holding unmasked server frames,
cut like a socket ``recv()`` would deliver them.  ``parse`` pushes all chunks
through the library's receive path and materialises each message the way a
user of that library gets it: ``str`` for text messages, ``bytes``-like for
binary messages, fragmented messages reassembled.

All adapters keep their parser state across calls (a long-lived connection),
so each stream must end on a message boundary.  Every peer is configured with
a message/frame size limit of 64 MiB (wsfast runs with ``max_message_size=None``)
so limits never interfere.

Importing a peer that is not installed raises ``ImportError`` from
:func:`make_adapter`; the benchmarks turn that into a skip.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import importlib
import logging
import os
import socket

MAX_SIZE = 64 * 2**20

#: contender name -> module that must be importable for it
REQUIRES = {
    "wsfast-c": "wsfast._codec_c",
    "wsfast-py": "wsfast._codec_py",
    "picows": "picows.picows",
    "aiohttp": "aiohttp._websocket.reader_c",
    "websockets": "websockets.asyncio.messages",
    "wsproto": "wsproto.connection",
}

CONTENDERS = list(REQUIRES)


# --------------------------------------------------------------------------- wsfast
class WsfastAdapter:
    """``Decoder.feed(chunk)`` returns the complete messages in that chunk."""

    def __init__(self, module_name: str, compression=None):
        mod = importlib.import_module(module_name)
        self._decoder = mod.Decoder(max_message_size=None, compression=compression)
        self.last: list = []

    def parse(self, chunks) -> int:
        out: list = []
        extend = out.extend
        feed = self._decoder.feed
        for chunk in chunks:
            extend(feed(chunk))
        self.last = out
        return len(out)

    def close(self) -> None:
        pass


# --------------------------------------------------------------------------- picows
# Path driven: picows.picows.WSProtocol (the cdef asyncio.BufferedProtocol that
# ws_connect() uses) with its real WSTransport, connected to a fake asyncio
# transport.  connection_made() makes it write its HTTP upgrade request; we answer
# with a valid 101 response through the same receive path, so the protocol is in
# its genuine post-handshake state (READ_HEADER) with a user WSListener installed.
# Data is then delivered exactly as asyncio's selector loop delivers it to a
# BufferedProtocol: buf = get_buffer(-1); <recv_into(buf)>; buffer_updated(n).
# The recv_into is simulated by a memcpy of the chunk into picows' own read
# buffer -- picows has no API to parse caller-owned memory, so that copy (which
# replaces the kernel->user copy of a real recv) is included in its timings,
# while the other libraries receive ready-made bytes objects.  For 64 KiB
# chunks this is a plain memcpy (~5-10 us per MiB).
#
# picows hands out one WSFrame per frame and leaves reassembly to the user; the
# listener below does what a picows user would: unfragmented text ->
# frame.get_payload_as_utf8_text(), binary -> frame.get_payload_as_bytes();
# fragments are accumulated in a bytearray (+= memoryview accessor) and
# decoded / converted to bytes on the final frame.

_WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455


class _FakeAsyncioTransport(asyncio.Transport):
    def __init__(self):
        super().__init__()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.written: list[bytes] = []
        self._closing = False

    def get_extra_info(self, name, default=None):
        if name == "socket":
            return self.sock
        if name in ("peername", "sockname"):
            return ("127.0.0.1", 9)
        return default

    def write(self, data):
        self.written.append(bytes(data))

    def get_write_buffer_size(self):
        return 0

    def set_write_buffer_limits(self, high=None, low=None):
        pass

    def pause_reading(self):
        pass

    def resume_reading(self):
        pass

    def is_closing(self):
        return self._closing

    def close(self):
        self._closing = True

    def abort(self):
        self._closing = True


class PicowsAdapter:
    def __init__(self):
        from picows import picows as pw

        self._pw = pw
        TEXT, BINARY, CONT = pw.WSMsgType.TEXT, pw.WSMsgType.BINARY, pw.WSMsgType.CONTINUATION

        class Listener(pw.WSListener):
            def __init__(self):
                self.out: list = []
                self.frag = bytearray()
                self.frag_type = None

            def on_ws_frame(self, transport, frame):
                t = frame.msg_type
                if frame.fin:
                    if t == TEXT:
                        self.out.append(frame.get_payload_as_utf8_text())
                    elif t == BINARY:
                        self.out.append(frame.get_payload_as_bytes())
                    elif t == CONT:
                        frag = self.frag
                        frag += frame.get_payload_as_memoryview()
                        if self.frag_type == TEXT:
                            self.out.append(frag.decode("utf-8"))
                        else:
                            self.out.append(bytes(frag))
                        self.frag = bytearray()
                        self.frag_type = None
                    # control frames: none in the benchmark streams
                else:
                    if t != CONT:
                        self.frag_type = t
                    frag = self.frag
                    frag += frame.get_payload_as_memoryview()

        self._listener = Listener()
        logger = logging.getLogger("wsfast.bench.picows")
        logger.setLevel(logging.ERROR)
        logger.propagate = False

        self._loop = asyncio.new_event_loop()
        listener = self._listener

        async def build():  # WSProtocol.__init__ needs a running loop
            return pw.WSProtocol(
                "localhost:9",  # host_port
                "/",  # ws_path
                True,  # is_client_side
                lambda: listener,  # ws_listener_factory
                logger,
                True,  # disconnect_on_exception
                None,  # websocket_handshake_timeout
                False,  # enable_auto_ping
                10,
                10,
                pw.WSAutoPingStrategy.PING_WHEN_IDLE,
                True,  # enable_auto_pong
                MAX_SIZE,  # max_frame_size
                None,  # extra_headers
                16 * 1024,  # read_buffer_init_size (ws_connect default)
            )

        self._proto = self._loop.run_until_complete(build())
        self._tr = _FakeAsyncioTransport()
        self._proto.connection_made(self._tr)
        request = b"".join(self._tr.written)
        key = None
        for line in request.split(b"\r\n"):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"sec-websocket-key":
                key = value.strip()
        assert key, request
        accept = base64.b64encode(hashlib.sha1(key + _WS_GUID).digest())
        response = (
            b"HTTP/1.1 101 Switching Protocols\r\n"
            b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n"
        )
        self._feed(response)
        assert self._proto.transport.response is not None, "picows handshake failed"
        assert self._proto.listener is listener
        self.last: list = []

    def _feed(self, data: bytes) -> None:
        get_buffer = self._proto.get_buffer
        buffer_updated = self._proto.buffer_updated
        view = memoryview(data)
        pos, size = 0, len(data)
        while pos < size:
            buf = get_buffer(-1)
            n = min(len(buf), size - pos)
            buf[:n] = view[pos : pos + n]  # the recv_into()
            buffer_updated(n)
            pos += n

    def parse(self, chunks) -> int:
        listener = self._listener
        out = listener.out = []
        get_buffer = self._proto.get_buffer
        buffer_updated = self._proto.buffer_updated
        for chunk in chunks:
            buf = get_buffer(-1)
            n = len(chunk)
            if len(buf) >= n:  # fast path once the read buffer has grown
                buf[:n] = chunk
                buffer_updated(n)
            else:
                self._feed(chunk)
        if self._proto.transport.is_close_frame_sent:
            raise RuntimeError("picows rejected the stream (sent CLOSE)")
        self.last = out
        return len(out)

    def close(self) -> None:
        self._tr.sock.close()
        self._loop.close()


# --------------------------------------------------------------------------- aiohttp
# Path driven: the compiled aiohttp._websocket.reader_c.WebSocketReader, built
# exactly as ClientSession._ws_connect does (WebSocketDataQueue(protocol,
# DEFAULT_CHUNK_SIZE), WebSocketReader(queue, max_msg_size, compress=False,
# decode_text=True)).  ResponseHandler.data_received() calls
# reader.feed_data(data) for every socket read; that is what parse() does.
# Messages are taken out of the queue with its real read() coroutine (what
# ClientWebSocketResponse.receive() awaits), stepped synchronously with
# send(None) -- it completes without suspending when a message is queued.  This
# keeps aiohttp's queue accounting and flow control (pause_reading/stalled
# reader resume) fully active.  The user gets WSMessage(type, data, extra); we
# keep msg.data (str for TEXT, bytes for BINARY).  The outer
# ClientWebSocketResponse.receive() wrapper (timeout/close bookkeeping) needs a
# live connection and is not included.


class _FakeAiohttpProtocol:
    def __init__(self):
        self._reading_paused = False

    def pause_reading(self):
        self._reading_paused = True

    def resume_reading(self):
        self._reading_paused = False


class AiohttpAdapter:
    def __init__(self, compress: bool = False):
        from aiohttp._websocket.reader_c import WebSocketDataQueue, WebSocketReader
        from aiohttp.helpers import DEFAULT_CHUNK_SIZE

        self._loop = asyncio.new_event_loop()
        self._queue = WebSocketDataQueue(_FakeAiohttpProtocol(), DEFAULT_CHUNK_SIZE, loop=self._loop)
        self._reader = WebSocketReader(self._queue, MAX_SIZE, compress=compress, decode_text=True)
        self.last: list = []

    def parse(self, chunks) -> int:
        out: list = []
        append = out.append
        feed_data = self._reader.feed_data
        queue = self._queue
        pending = queue._buffer
        read = queue.read
        for chunk in chunks:
            err, _ = feed_data(chunk)
            if err:
                raise RuntimeError(f"aiohttp rejected the stream: {queue.exception()!r}")
            while pending:
                coro = read()
                try:
                    coro.send(None)
                except StopIteration as stop:
                    append(stop.value.data)
                else:  # pragma: no cover - would mean read() suspended
                    coro.close()
                    raise RuntimeError("aiohttp queue.read() suspended")
        self.last = out
        return len(out)

    def close(self) -> None:
        self._loop.close()


# --------------------------------------------------------------------------- websockets
# Path driven: what websockets.asyncio.client.ClientConnection does on every
# socket read: the Sans-I/O ClientProtocol (put in OPEN state, as after the
# handshake) .receive_data(data) -> Frame.parse via its StreamReader ->
# events_received(); data frames go to the connection's Assembler (same
# high/low water marks as the default max_queue=16), and each message is
# obtained through Assembler.get() -- the coroutine behind `await ws.recv()` --
# which joins fragments and decodes TEXT to str.  get() is stepped
# synchronously with send(None) only when a complete message is queued, so it
# never suspends.
#
# websockets refuses messages with more than WEBSOCKETS_MAX_FRAGMENTS (default
# 4096) fragments.  The 64-byte-fragment scenario has 65536 fragments, so we
# raise that documented knob (env var, or the module constant if websockets was
# already imported) -- a user would have to do the same.

_WS_MAX_FRAGMENTS = 1 << 20


class WebsocketsAdapter:
    def __init__(self, extensions=()):
        os.environ.setdefault("WEBSOCKETS_MAX_FRAGMENTS", str(_WS_MAX_FRAGMENTS))
        import websockets.asyncio.messages as ws_messages
        from websockets.client import ClientProtocol
        from websockets.frames import DATA_OPCODES
        from websockets.protocol import State
        from websockets.uri import parse_uri

        if ws_messages.MAX_FRAGMENTS < _WS_MAX_FRAGMENTS:
            ws_messages.MAX_FRAGMENTS = _WS_MAX_FRAGMENTS

        self._data_opcodes = DATA_OPCODES
        self._proto = ClientProtocol(parse_uri("ws://localhost/"), state=State.OPEN, max_size=MAX_SIZE)
        # What ClientProtocol.process_response() stores after a handshake that negotiated them.
        self._proto.extensions = list(extensions)
        self._loop = asyncio.new_event_loop()

        async def build():  # SimpleQueue() needs a running loop
            return ws_messages.Assembler(16, 4, pause=lambda: None, resume=lambda: None)

        self._assembler = self._loop.run_until_complete(build())
        self.last: list = []

    def parse(self, chunks) -> int:
        out: list = []
        append = out.append
        proto = self._proto
        assembler = self._assembler
        put = assembler.put
        get = assembler.get
        data_opcodes = self._data_opcodes
        for chunk in chunks:
            proto.receive_data(chunk)
            events = proto.events_received()
            proto.data_to_send()
            if proto.parser_exc is not None:
                raise RuntimeError(f"websockets rejected the stream: {proto.parser_exc!r}")
            ready = 0
            for frame in events:
                if frame.opcode in data_opcodes:
                    put(frame)
                    if frame.fin:
                        ready += 1
            for _ in range(ready):
                coro = get()
                try:
                    coro.send(None)
                except StopIteration as stop:
                    append(stop.value)
                else:  # pragma: no cover
                    coro.close()
                    raise RuntimeError("websockets Assembler.get() suspended")
        self.last = out
        return len(out)

    def close(self) -> None:
        self._loop.close()


# --------------------------------------------------------------------------- wsproto
# Path driven: wsproto.connection.Connection(ConnectionType.CLIENT) -- the object
# WSConnection hands the socket to once the handshake is done; it starts OPEN and
# wraps FrameProtocol(client=True).  receive_data(data) then events():
# TextMessage/BytesMessage events (text already incrementally UTF-8 decoded by
# wsproto, one event per frame or partial frame).  A wsproto user buffers
# event.data until event.message_finished; we do that with a list + join.
# (Using FrameProtocol.receive_bytes/received_frames directly would skip only
# the thin event-object layer.)


class WsprotoAdapter:
    def __init__(self):
        from wsproto.connection import Connection, ConnectionType
        from wsproto.events import BytesMessage, TextMessage

        self._conn = Connection(ConnectionType.CLIENT)
        self._Text, self._Bytes = TextMessage, BytesMessage
        self._parts: list = []
        self.last: list = []

    def parse(self, chunks) -> int:
        out: list = []
        append = out.append
        conn = self._conn
        parts = self._parts
        Text, Bytes = self._Text, self._Bytes
        for chunk in chunks:
            conn.receive_data(chunk)
            for ev in conn.events():
                cls = type(ev)
                if cls is Text or cls is Bytes:
                    if ev.message_finished:
                        if parts:
                            parts.append(ev.data)
                            append(("" if cls is Text else b"").join(parts))
                            parts.clear()
                        else:
                            append(ev.data)
                    else:
                        parts.append(ev.data)
                else:
                    raise RuntimeError(f"wsproto: unexpected event {ev!r}")
        self.last = out
        return len(out)

    def close(self) -> None:
        pass


# --------------------------------------------------------------------------- factory
# --------------------------------------------------------------------------- wsfast offline
# bench_events.py and bench_echo_path.py drive a real wsfast.asyncio.WebSocket in memory: no socket, no
# loop turn, no keepalive or reconnect timers.


class StandInTransport:
    """Stands in for the asyncio transport under a wsfast ``_Connection``: keeps a copy of every write."""

    def __init__(self) -> None:
        self.written: list[bytes] = []

    def write(self, data) -> None:
        self.written.append(bytes(data))

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def is_closing(self) -> bool:
        return False


def offline_connection(on_message, connection_class=None, subscriber=None, implementation=None):
    """A ``wsfast.asyncio.WebSocket`` opened on a ``_Connection`` (or *connection_class*) without a
    network: the 101 answer given in memory, a :class:`StandInTransport`, inline *on_message*, no size
    limit, no keepalive, the codec twin *implementation* names (``"python"``, ``"cython"``; ``None``:
    wsfast's choice), and otherwise ``wsfast.connect()``'s defaults (built as its ``_open`` builds
    them); *subscriber* receives its socket events.  Returns ``(ws, connection)``.  The loop they are
    built in is closed here (nothing in them ever awaits)."""
    import wsfast
    from wsfast.asyncio.client import WebSocket, _Connection
    from wsfast.handshake import Accepted
    from wsfast.http11 import Headers, Response

    connector = wsfast.connect(
        "ws://127.0.0.1/",
        on_message=on_message,
        max_message_size=None,
        ping_interval=None,
        implementation=implementation,
    )

    async def make():
        ws = WebSocket(connector)
        if subscriber is not None:
            ws.subscribe(subscriber)
        connection = (connection_class or _Connection)(ws)
        connection.transport = StandInTransport()
        accepted = Accepted(Response(101, "Switching Protocols", Headers()), None, [], b"")
        ws._open(connection, accepted, connector._config.url)
        return ws, connection

    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(make())
    finally:
        loop.close()


def importorskip(module: str):
    """pytest.importorskip, tolerant of broken peer installs.

    wsfast modules skip only when absent (a wsfast build that fails to import
    must not be hidden); a peer also skips when its import raises ImportError
    (e.g. a compiled extension built for another interpreter).
    """
    import pytest

    if module.startswith("wsfast"):
        return pytest.importorskip(module)
    return pytest.importorskip(module, exc_type=ImportError)


def make_adapter(name: str):
    """Build the adapter for contender ``name`` (ImportError if not installed)."""
    importlib.import_module(REQUIRES[name])
    if name == "wsfast-c":
        return WsfastAdapter("wsfast._codec_c")
    if name == "wsfast-py":
        return WsfastAdapter("wsfast._codec_py")
    if name == "picows":
        return PicowsAdapter()
    if name == "aiohttp":
        return AiohttpAdapter()
    if name == "websockets":
        return WebsocketsAdapter()
    if name == "wsproto":
        return WsprotoAdapter()
    raise KeyError(name)


# --------------------------------------------------------------------------- permessage-deflate
# bench_deflate.py: the same receive paths with permessage-deflate (RFC 7692) in force.  Every contender
# is configured from the *same* server answer, run through that library's own negotiation code, so
# each ends up exactly as its client would after the handshake:
#
# * wsfast: wsfast.deflate.Deflate().negotiate([answer]) -> Negotiated, given to Decoder(compression=).
# * websockets: the factory websockets.asyncio.client.connect(compression="deflate") uses
#   (enable_client_permessage_deflate(None)), .process_response_params() on the parsed answer -> the
#   PerMessageDeflate extension, stored in ClientProtocol.extensions as process_response() does.
#   Frame.parse() then runs extension.decode(frame, max_size=...) on every frame.
# * aiohttp: ws_ext_parse(answer) -> (compress, notakeover) as ClientSession._ws_connect does, then
#   WebSocketReader(queue, max_msg_size, compress=bool(compress)).  (notakeover only concerns
#   aiohttp's writer; its reader keeps one decompressor, which decodes no-takeover streams too.)
# * picows-websockets: picows' websockets-compatible layer (picows.websockets.asyncio, compiled): the
#   real picows WSProtocol on a fake transport, whose 101 answer carries the extension header; the
#   listener factory is the one picows.websockets.connect() installs (Request/Response.from_picows,
#   configure_permessage_deflate(response, "deflate"), ClientConnection(...) with connect()'s
#   defaults, max_size=64 MiB, no keepalive task).  Messages are taken with ClientConnection.recv(),
#   stepped like an asyncio Task: when the queue is empty it suspends on its waiter future and is
#   resumed once a later chunk has completed that future.

DEFLATE_ANSWERS = {
    True: "permessage-deflate",  # context takeover
    False: "permessage-deflate; server_no_context_takeover",
}

DEFLATE_REQUIRES = {
    "wsfast-c": "wsfast._codec_c",
    "wsfast-py": "wsfast._codec_py",
    "picows-websockets": "picows.websockets.asyncio.connection",
    "aiohttp": "aiohttp._websocket.reader_c",
    "websockets": "websockets.extensions.permessage_deflate",
}

DEFLATE_CONTENDERS = list(DEFLATE_REQUIRES)


def wsfast_negotiated(answer: str, zlib_backend=None):
    """wsfast's Negotiated parameters for the server's Sec-WebSocket-Extensions *answer*."""
    import zlib

    from wsfast.deflate import Deflate

    negotiated = Deflate(zlib_backend=zlib_backend or zlib).negotiate([answer])
    assert negotiated is not None, answer
    return negotiated


class PicowsWebsocketsAdapter:
    def __init__(self, answer: str):
        from picows import picows as pw
        from picows.websockets.asyncio.connection import ClientConnection
        from picows.websockets.asyncio.negotiation import configure_permessage_deflate
        from picows.websockets.compat import Request, Response

        logger = logging.getLogger("wsfast.bench.picows-websockets")
        logger.setLevel(logging.ERROR)
        logger.propagate = False
        self._loop = asyncio.new_event_loop()
        self._tr = _FakeAsyncioTransport()
        made: list = []

        def listener_factory(request, response):
            # picows.websockets.asyncio.client._Connect._connect's listener_factory, connect() defaults
            # except max_size (64 MiB like every contender) and ping_interval (no keepalive task).
            wrapped_response = Response.from_picows(response)
            connection = ClientConnection(
                request=Request.from_picows(request),
                response=wrapped_response,
                subprotocol=None,
                permessage_deflate=configure_permessage_deflate(wrapped_response, "deflate"),
                ping_interval=None,
                ping_timeout=None,
                close_timeout=10,
                max_queue=16,
                write_limit=32768,
                max_message_size=MAX_SIZE,
                max_frame_size=MAX_SIZE,
                logger=logger,
            )
            made.append(connection)
            return connection

        async def handshake():  # WSProtocol and ClientConnection need a running loop
            proto = pw.WSProtocol(
                "localhost:9",
                "/",
                True,  # is_client_side
                listener_factory,
                logger,
                True,  # disconnect_on_exception
                None,  # websocket_handshake_timeout
                False,  # enable_auto_ping (picows.websockets.connect passes False)
                10,
                10,
                pw.WSAutoPingStrategy.PING_WHEN_IDLE,
                True,  # enable_auto_pong
                MAX_SIZE,  # max_frame_size
                None,  # extra_headers
                16 * 1024,  # read_buffer_init_size (ws_connect default)
            )
            proto.connection_made(self._tr)
            request = b"".join(self._tr.written)
            assert b"sec-websocket-key" in request.lower(), request
            key = next(
                line.partition(b":")[2].strip()
                for line in request.split(b"\r\n")
                if line.partition(b":")[0].strip().lower() == b"sec-websocket-key"
            )
            accept = base64.b64encode(hashlib.sha1(key + _WS_GUID).digest())
            response = (
                b"HTTP/1.1 101 Switching Protocols\r\n"
                b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Accept: " + accept + b"\r\n"
                b"Sec-WebSocket-Extensions: " + answer.encode() + b"\r\n\r\n"
            )
            buf = proto.get_buffer(-1)
            buf[: len(response)] = response
            proto.buffer_updated(len(response))
            return proto

        self._proto = self._loop.run_until_complete(handshake())
        assert self._proto.transport.response is not None, "picows handshake failed"
        assert len(made) == 1, "listener factory not used"
        assert self._proto.listener is made[0], "listener factory not used"
        self._conn = made[0]
        self._pending = None  # a recv() coroutine suspended on its waiter future
        self._waiter = None
        self.last: list = []

    def parse(self, chunks) -> int:
        out: list = []
        append = out.append
        get_buffer = self._proto.get_buffer
        buffer_updated = self._proto.buffer_updated
        recv = self._conn.recv
        pending, waiter = self._pending, self._waiter
        for chunk in chunks:
            n = len(chunk)
            view = memoryview(chunk)
            pos = 0
            while pos < n:  # the recv_into() (see PicowsAdapter)
                buf = get_buffer(-1)
                take = min(len(buf), n - pos)
                buf[:take] = view[pos : pos + take]
                buffer_updated(take)
                pos += take
            if waiter is not None and not waiter.done():
                continue  # no message completed yet: the Task would stay asleep
            while True:
                coro = pending if pending is not None else recv()
                pending = waiter = None
                try:
                    waiter = coro.send(None)
                except StopIteration as stop:
                    append(stop.value)
                else:
                    pending = coro  # queue empty: suspended on the waiter until a frame arrives
                    break
        self._pending, self._waiter = pending, waiter
        if self._proto.transport.is_close_frame_sent:
            raise RuntimeError("picows.websockets rejected the stream (sent CLOSE)")
        self.last = out
        return len(out)

    def close(self) -> None:
        if self._pending is not None:
            self._pending.close()
        self._tr.sock.close()
        self._loop.close()


def make_deflate_adapter(name: str, takeover: bool, zlib_backend=None):
    """Adapter for contender ``name`` with permessage-deflate negotiated (ImportError if not installed)."""
    importlib.import_module(DEFLATE_REQUIRES[name])
    answer = DEFLATE_ANSWERS[takeover]
    if zlib_backend is not None and not name.startswith("wsfast"):
        raise ValueError("zlib_backend= is for the wsfast contenders")
    if name == "wsfast-c":
        return WsfastAdapter("wsfast._codec_c", wsfast_negotiated(answer, zlib_backend))
    if name == "wsfast-py":
        return WsfastAdapter("wsfast._codec_py", wsfast_negotiated(answer, zlib_backend))
    if name == "picows-websockets":
        return PicowsWebsocketsAdapter(answer)
    if name == "aiohttp":
        from aiohttp.http_websocket import ws_ext_parse

        compress, _notakeover = ws_ext_parse(answer)
        assert compress == 15, answer
        return AiohttpAdapter(compress=bool(compress))
    if name == "websockets":
        from websockets.extensions.permessage_deflate import enable_client_permessage_deflate
        from websockets.headers import parse_extension

        (factory,) = enable_client_permessage_deflate(None)
        ((ext_name, params),) = parse_extension(answer)
        assert ext_name == factory.name, answer
        extension = factory.process_response_params(params, [])
        assert extension.remote_no_context_takeover is (not takeover), extension
        return WebsocketsAdapter(extensions=[extension])
    raise KeyError(name)


# --------------------------------------------------------------------------- mask / utf8
def mask_functions() -> dict:
    """name -> (import requirement, factory returning f(data: bytes, mask: bytes) -> bytes-like)."""

    def wsfast_c():
        return importlib.import_module("wsfast._mask_c").apply_mask

    def wsfast_py():
        return importlib.import_module("wsfast._mask_py").apply_mask

    def copy():
        # Baseline: one allocation + memcpy.  (bench_codec.py times the bound
        # method memoryview(data).tobytes directly, without this wrapper.)
        return lambda data, mask: memoryview(data).tobytes()

    def aiohttp():
        # aiohttp masks in place on a bytearray it owns (the writer builds the
        # frame in a bytearray first); copy + in-place mask is its real cost.
        from aiohttp._websocket.mask import _websocket_mask_cython as m

        def apply(data, mask):
            buf = bytearray(data)
            m(mask, buf)
            return buf

        return apply

    def websockets():
        from websockets.speedups import apply_mask

        return apply_mask

    def wsproto():
        # wsproto's (pure Python) masker, fresh per frame as wsproto does.
        from wsproto.frame_protocol import XorMaskerSimple

        return lambda data, mask: XorMaskerSimple(mask).process(data)

    # picows' SIMD masker (_mask_payload) is a cdef function with no Python
    # entry point; only reachable through WSTransport.send(), which also frames
    # and writes -- not comparable, so it is left out.
    return {
        "wsfast-c": ("wsfast._mask_c", wsfast_c),
        "wsfast-py": ("wsfast._mask_py", wsfast_py),
        "copy": (None, copy),
        "aiohttp": ("aiohttp._websocket.mask", aiohttp),
        "websockets": ("websockets.speedups", websockets),
        "wsproto": ("wsproto.frame_protocol", wsproto),
    }


def utf8_functions() -> dict:
    """name -> (import requirement, factory returning f(data: bytes) -> bool)."""

    def wsfast_c():
        return importlib.import_module("wsfast._utf8_c").validate_utf8

    def wsfast_py():
        return importlib.import_module("wsfast._utf8_py").validate_utf8

    def decode():
        def validate(data):
            try:
                data.decode("utf-8")
            except UnicodeDecodeError:
                return False
            return True

        return validate

    return {
        "wsfast-c": ("wsfast._utf8_c", wsfast_c),
        "wsfast-py": ("wsfast._utf8_py", wsfast_py),
        "bytes.decode": (None, decode),
    }
