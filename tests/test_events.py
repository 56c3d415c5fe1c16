"""Socket events (wsfast.events) from both clients against real servers on 127.0.0.1: the exact sequence of a
plain and a TLS connection with a redirect, subscribing and unsubscribing on a live client, raw data on
request, warnings and usage statistics. Every test runs on both codec twins."""

from __future__ import annotations

import asyncio
import dataclasses
import http
import queue
import threading
import time
import types
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import pytest

import wsfast
from servers import (
    ConnectProxy,
    RawConnection,
    RawServer,
    WebsocketsServer,
    accept_then,
    echo,
    redirect_response,
    tls_certs,
)
from wsfast.events import (
    Closed,
    Connected,
    Connecting,
    DataRead,
    DataSent,
    Event,
    HostnameLookup,
    HostnameResolved,
    LowThroughput,
    Monitor,
    Redirect,
    RequestSent,
    ResponseReceived,
    SlowOperation,
    TlsEstablished,
    TlsStart,
    Usage,
)

pytest_plugins = ["conftest_client"]

TIMEOUT = 10.0
CLIENTS = ["threaded", "sync", "asyncio", "uvloop"]
T = TypeVar("T")

TCP = [HostnameLookup, HostnameResolved, Connecting, Connected]
TLS = [TlsStart, TlsEstablished]
HANDSHAKE = [DataSent, RequestSent, DataRead, ResponseReceived]
REDIRECTED = [Redirect, Closed]
CLOSING = [DataSent, DataRead, Closed]  # our CLOSE, the server's CLOSE, the socket closed


def collapse(events: list[Event]) -> list[type[Event]]:
    """The event types in order, runs of DataRead merged: TCP may deliver a write in several reads."""
    kinds: list[type[Event]] = []
    for event in events:
        if not (type(event) is DataRead and kinds and kinds[-1] is DataRead):
            kinds.append(type(event))
    return kinds


def redirecting_raw_server() -> RawServer:
    """The first connection gets a 302 to /new, the next a 101 and a closing handshake."""

    def handler(conn: RawConnection) -> None:
        if conn.index == 0:
            conn.read_request()
            conn.send(redirect_response("/new"))
        else:
            accept_then()(conn)

    return RawServer(handler)


def redirect_old(connection: Any, request: Any) -> Any:
    """websockets' process_request: /old answers 302 to /new."""
    if request.path == "/old":
        response = connection.respond(http.HTTPStatus.FOUND, "")
        response.headers["Location"] = "/new"
        return response
    return None


def open_and_close(client: str, url: str, **options: Any) -> list[Event]:
    """Connect with *client* (subscribed through ``events=``), close, return every event delivered."""
    if client == "threaded":
        events: queue.Queue[Event] = queue.Queue()
        ws = wsfast.WebSocketClient(None, url, events=events, timeout=TIMEOUT, **options)
        ws.connect()
        ws.disconnect()
        assert ws.wait(TIMEOUT)
        return drain(events)
    if client == "sync":
        events = queue.Queue()
        with wsfast.sync.connect(url, events=events, timeout=TIMEOUT, **options) as sync_ws:
            assert sync_ws.open
        assert sync_ws.wait_closed(TIMEOUT)
        return drain(events)

    async def main() -> list[Event]:
        events: asyncio.Queue[Event] = asyncio.Queue()
        ws = await wsfast.connect(url, events=events, **options)
        await ws.close()
        await ws.wait_closed()
        return [events.get_nowait() for _ in range(events.qsize())]

    return run_on(client, asyncio.wait_for(main(), TIMEOUT))


def run_on(client: str, coroutine: Coroutine[Any, Any, T]) -> T:
    """Run *coroutine* on asyncio's default loop, or on uvloop for the ``"uvloop"`` client."""
    if client != "uvloop":
        return asyncio.run(coroutine)
    uvloop = pytest.importorskip("uvloop")
    loop = uvloop.new_event_loop()
    try:
        return loop.run_until_complete(coroutine)  # type: ignore[no-any-return]
    finally:
        loop.close()


def drain(events: queue.Queue[Event]) -> list[Event]:
    result = []
    while not events.empty():
        result.append(events.get_nowait())
    return result


@pytest.fixture(params=CLIENTS)
def client(request: pytest.FixtureRequest, codec_impl: types.SimpleNamespace) -> str:
    return str(request.param)


class TestSequence:
    def test_plain_with_redirect(self, client: str, codec_impl: types.SimpleNamespace) -> None:
        with redirecting_raw_server() as server:
            events = open_and_close(client, server.url("/old"), implementation=codec_impl.name)
        assert collapse(events) == TCP + HANDSHAKE + REDIRECTED + TCP + HANDSHAKE + CLOSING
        connection_ids = {event.connection_id for event in events}
        assert len(connection_ids) == 1
        assert connection_ids.pop() > 0
        timestamps = [event.timestamp for event in events]
        assert timestamps == sorted(timestamps)
        lookup, resolved, connecting, connected = events[:4]
        assert isinstance(lookup, HostnameLookup)
        assert lookup.host == "127.0.0.1"
        assert isinstance(resolved, HostnameResolved)
        assert resolved.addresses == (("ipv4", "127.0.0.1"),)
        assert isinstance(connecting, Connecting)
        assert (connecting.family, connecting.address, connecting.port) == ("ipv4", "127.0.0.1", server.port)
        assert isinstance(connected, Connected)
        assert (connected.address, connected.port) == ("127.0.0.1", server.port)
        requests = [event for event in events if isinstance(event, RequestSent)]
        assert [request.request_line for request in requests] == ["GET /old HTTP/1.1", "GET /new HTTP/1.1"]
        assert ("Upgrade", "websocket") in requests[0].headers
        responses = [event for event in events if isinstance(event, ResponseReceived)]
        assert [(r.status, r.reason) for r in responses] == [(302, "Found"), (101, "Switching Protocols")]
        assert ("Location", "/new") in responses[0].headers
        redirect = next(event for event in events if isinstance(event, Redirect))
        assert (redirect.status, redirect.location) == (302, server.url("/new"))
        # DataSent sizes: the two requests as written, then our CLOSE (2 header + 4 mask + 2 code bytes).
        sent = [event for event in events if isinstance(event, DataSent)]
        assert [event.size for event in sent[:2]] == [len(r.request) for r in server.connections]
        assert sent[2].size == 8
        assert all(event.data is None for event in events if isinstance(event, (DataRead, DataSent)))

    def test_tls_with_redirect(self, client: str, codec_impl: types.SimpleNamespace) -> None:
        certs = tls_certs()
        with WebsocketsServer(echo, ssl_context=certs.server_context, process_request=redirect_old) as server:
            events = open_and_close(
                client, server.url("/old"), ssl=certs.client_context, implementation=codec_impl.name
            )
        expected = TCP + TLS + HANDSHAKE + REDIRECTED + TCP + TLS + HANDSHAKE + CLOSING
        assert collapse(events) == expected
        starts = [event for event in events if isinstance(event, TlsStart)]
        assert [start.server_hostname for start in starts] == ["127.0.0.1", "127.0.0.1"]
        for established in (event for event in events if isinstance(event, TlsEstablished)):
            assert established.version.startswith("TLSv1.")
            assert established.cipher
            assert established.bits >= 128
        responses = [event for event in events if isinstance(event, ResponseReceived)]
        assert [r.status for r in responses] == [302, 101]
        redirect = next(event for event in events if isinstance(event, Redirect))
        assert redirect.location == server.url("/new")

    @pytest.mark.parametrize("secure", [False, True], ids=["ws", "wss"])
    def test_through_a_proxy(self, client: str, secure: bool, codec_impl: types.SimpleNamespace) -> None:
        certs = tls_certs()
        context = certs.server_context if secure else None
        options: dict[str, Any] = {"ssl": certs.client_context} if secure else {}
        with WebsocketsServer(echo, ssl_context=context) as server, ConnectProxy() as proxy:
            events = open_and_close(
                client, server.url(), proxy=proxy.url(), **options, implementation=codec_impl.name
            )
        # The TCP events name the proxy; the CONNECT exchange has the handshake's events; TLS runs
        # through the tunnel to the server.
        assert collapse(events) == TCP + HANDSHAKE + (TLS if secure else []) + HANDSHAKE + CLOSING
        connecting = next(event for event in events if isinstance(event, Connecting))
        assert connecting.port == proxy.port
        requests = [event.request_line for event in events if isinstance(event, RequestSent)]
        assert requests == [f"CONNECT 127.0.0.1:{server.port} HTTP/1.1", "GET / HTTP/1.1"]
        statuses = [event.status for event in events if isinstance(event, ResponseReceived)]
        assert statuses == [200, 101]
        assert proxy.tunnels == 1

    def test_proxy_credentials_are_masked(self, client: str, codec_impl: types.SimpleNamespace) -> None:
        with WebsocketsServer(echo) as server, ConnectProxy(auth=("user", "s3cret")) as proxy:
            events = open_and_close(client, server.url(), proxy=proxy.url(), implementation=codec_impl.name)
        connect = next(event for event in events if isinstance(event, RequestSent))
        assert dict(connect.headers)["Proxy-Authorization"] == "********"
        assert "s3cret" not in repr(events)

    def test_credentials_are_masked_in_requests(self, client: str, codec_impl: types.SimpleNamespace) -> None:
        with WebsocketsServer(echo) as server:
            events = open_and_close(
                client,
                server.url(),
                token="s3cret",
                headers={"Cookie": "id=s3cret"},
                implementation=codec_impl.name,
            )
        request = next(event for event in events if isinstance(event, RequestSent))
        headers = dict(request.headers)
        assert headers["Authorization"] == headers["Cookie"] == "********"
        assert "s3cret" not in repr(events)

    def test_failed_connection(self, client: str, codec_impl: types.SimpleNamespace) -> None:
        with RawServer(lambda conn: None) as server:
            port = server.port
        events: queue.Queue[Event] = queue.Queue()
        if client == "threaded":
            # An OpeningError naming the hop, with the socket's error as its cause (issue 15).
            with pytest.raises(wsfast.OpeningError) as failed:
                wsfast.WebSocketClient(
                    None, f"ws://127.0.0.1:{port}/", events=events, implementation=codec_impl.name
                ).connect()
        elif client == "sync":
            with pytest.raises(wsfast.OpeningError) as failed:
                wsfast.sync.connect(
                    f"ws://127.0.0.1:{port}/", events=events, implementation=codec_impl.name
                ).open()
        else:

            async def main() -> None:
                await wsfast.connect(f"ws://127.0.0.1:{port}/", events=events, implementation=codec_impl.name)

            with pytest.raises(wsfast.OpeningError) as failed:
                run_on(client, main())
        assert isinstance(failed.value.__cause__, ConnectionRefusedError)
        assert (failed.value.hop, failed.value.stage) == ("server", "connect")
        assert collapse(drain(events)) == [HostnameLookup, HostnameResolved, Connecting]


class TestSubscriptions:
    def test_threaded_subscribe_on_a_live_client(self, codec_impl: types.SimpleNamespace) -> None:
        messages: queue.Queue[Any] = queue.Queue()
        with WebsocketsServer(echo) as server:
            client = wsfast.WebSocketClient(
                messages.put, server.url(), timeout=TIMEOUT, implementation=codec_impl.name
            )
            client.connect()
            assert client._events is None  # nothing observes it: the data path checks one attribute
            client.send("unobserved")
            assert messages.get(timeout=TIMEOUT) == "unobserved"
            events: queue.Queue[Event] = queue.Queue()
            client.subscribe(events, data=True)
            client.send("observed")
            assert messages.get(timeout=TIMEOUT) == "observed"
            received = wait_events(events, lambda got: any(isinstance(e, DataRead) for e in got))
            sent = [e for e in received if isinstance(e, DataSent)]
            read = [e for e in received if isinstance(e, DataRead)]
            assert sent[0].size == 2 + 4 + len("observed")
            assert sent[0].data is not None
            assert len(sent[0].data) == sent[0].size
            assert b"".join(e.data or b"" for e in read) == b"\x81\x08observed"
            assert all(e.connection_id == client.connection_id for e in received)
            assert client.unsubscribe(events)
            assert not client.unsubscribe(events)
            assert client._events is None  # back to zero cost
            client.send("unobserved again")
            assert messages.get(timeout=TIMEOUT) == "unobserved again"
            usage = client.usage()
            assert usage.bytes_sent == sent[0].size
            assert usage.bytes_received == len(b"\x81\x08observed")
            client.disconnect()
            assert client.wait(TIMEOUT)
            assert drain(events) == []

    def test_sync_subscribe_on_a_live_websocket(self, codec_impl: types.SimpleNamespace) -> None:
        with (
            WebsocketsServer(echo) as server,
            wsfast.sync.connect(server.url(), implementation=codec_impl.name) as ws,
        ):
            events: queue.Queue[Event] = queue.Queue()
            ws.subscribe(events, data=True)
            ws.send("observed")
            assert ws.recv(TIMEOUT) == "observed"
            received = wait_events(events, lambda got: any(isinstance(e, DataRead) for e in got))
            assert b"".join(e.data or b"" for e in received if isinstance(e, DataRead)) == b"\x81\x08observed"
            assert all(e.connection_id == ws.connection_id for e in received)
            assert ws.unsubscribe(events)
            assert not ws.unsubscribe(events)
            ws.send("unobserved")
            assert ws.recv(TIMEOUT) == "unobserved"
            usage = ws.usage()
            assert usage.bytes_sent == 2 + 4 + len("observed")
            assert usage.bytes_received == len(b"\x81\x08observed")

    def test_asyncio_subscribe_on_a_live_websocket(self, codec_impl: types.SimpleNamespace) -> None:
        async def main(url: str) -> None:
            async with wsfast.connect(url, implementation=codec_impl.name) as ws:
                assert ws._events is None
                events: asyncio.Queue[Event] = asyncio.Queue()
                ws.subscribe(events, data=True)
                await ws.send("observed")
                assert await ws.recv(timeout=TIMEOUT) == "observed"
                got = [events.get_nowait() for _ in range(events.qsize())]
                assert [type(e) for e in got][:1] == [DataSent]
                assert b"".join(e.data or b"" for e in got if isinstance(e, DataRead)) == b"\x81\x08observed"
                assert all(e.connection_id == ws.connection_id > 0 for e in got)
                assert ws.unsubscribe(events)
                assert ws._events is None
                assert ws._connection is not None
                assert ws._connection.events is None
                await ws.send("unobserved")
                assert await ws.recv(timeout=TIMEOUT) == "unobserved"
                assert events.empty()
                assert ws.usage().bytes_sent == 2 + 4 + len("observed")

        with WebsocketsServer(echo) as server:
            asyncio.run(asyncio.wait_for(main(server.url()), TIMEOUT))

    def test_subscribing_while_data_flows(self, codec_impl: types.SimpleNamespace) -> None:
        """subscribe()/unsubscribe() from another thread never disturb the event thread."""
        messages: queue.Queue[Any] = queue.Queue()
        stop = threading.Event()
        with WebsocketsServer(echo) as server:
            client = wsfast.WebSocketClient(
                messages.put, server.url(), timeout=TIMEOUT, implementation=codec_impl.name
            )
            client.connect()

            def toggle() -> None:
                while not stop.is_set():
                    client.subscribe(_ignore)
                    client.unsubscribe(_ignore)

            toggler = threading.Thread(target=toggle, daemon=True)
            toggler.start()
            try:
                for i in range(300):
                    client.send(f"message {i}")
                assert [messages.get(timeout=TIMEOUT) for _ in range(300)] == [
                    f"message {i}" for i in range(300)
                ]
            finally:
                stop.set()
                toggler.join(TIMEOUT)
            client.disconnect()
            assert client.wait(TIMEOUT)
        assert client.close_code == 1000

    def test_callable_and_several_subscribers(self, codec_impl: types.SimpleNamespace) -> None:
        seen: list[Event] = []
        other: queue.Queue[Event] = queue.Queue()

        def broken(event: Event) -> None:
            raise RuntimeError("a broken subscriber does not break the connection")

        with WebsocketsServer(echo) as server:
            client = wsfast.WebSocketClient(
                None, server.url(), events=seen.append, timeout=TIMEOUT, implementation=codec_impl.name
            )
            client.subscribe(broken)
            client.subscribe(other)
            client.connect()
            client.disconnect()
            assert client.wait(TIMEOUT)
        assert client.close_code == 1000
        assert [type(e) for e in seen] == [type(e) for e in drain(other)]
        assert type(seen[-1]) is Closed

    def test_asyncio_queue_fed_from_the_event_thread(self, codec_impl: types.SimpleNamespace) -> None:
        async def main(url: str) -> list[Event]:
            events: asyncio.Queue[Event] = asyncio.Queue()
            client = wsfast.WebSocketClient(
                None, url, events=events, timeout=TIMEOUT, implementation=codec_impl.name
            )
            await asyncio.to_thread(client.connect)
            await asyncio.to_thread(client.disconnect)
            got = []
            while not got or type(got[-1]) is not Closed:
                got.append(await asyncio.wait_for(events.get(), TIMEOUT))
            return got

        with WebsocketsServer(echo) as server:
            got = asyncio.run(main(server.url()))
        assert collapse(got) == TCP + HANDSHAKE + CLOSING

    def test_bad_subscribers(self) -> None:
        client = wsfast.WebSocketClient(None, "ws://127.0.0.1/")
        with pytest.raises(ValueError, match="unbounded"):
            client.subscribe(queue.Queue(maxsize=10))
        with pytest.raises(ValueError, match="event loop"):
            client.subscribe(asyncio.Queue())
        with pytest.raises(TypeError, match="subscriber"):
            client.subscribe(42)
        assert client._events is None or not client._events.needed


def _ignore(event: Event) -> None:
    pass


def wait_events(events: queue.Queue[Event], done: Callable[[list[Event]], bool]) -> list[Event]:
    got: list[Event] = []
    deadline = time.monotonic() + TIMEOUT
    while not done(got):
        got.append(events.get(timeout=max(deadline - time.monotonic(), 0.01)))
    time.sleep(0.05)  # anything else already on its way
    return got + drain(events)


def slow_handshake(delay: float) -> Callable[[RawConnection], None]:
    def handler(conn: RawConnection) -> None:
        conn.read_request()
        time.sleep(delay)
        accept_then()(conn)

    return handler


class TestWarningsAndUsage:
    def test_slow_handshake_warns(self, client: str, codec_impl: types.SimpleNamespace) -> None:
        with RawServer(slow_handshake(0.3)) as server:
            events = open_and_close(
                client,
                server.url(),
                warn_slow_operation=0.1,
                warn_low_throughput=10_000.0,
                implementation=codec_impl.name,
            )
        slow = [event for event in events if isinstance(event, SlowOperation)]
        assert [event.operation for event in slow] == ["handshake"]
        assert slow[0].duration >= 0.25
        assert slow[0].threshold == 0.1
        low = [event for event in events if isinstance(event, LowThroughput)]
        assert [event.direction for event in low] == ["receive"]
        assert low[0].size == 129  # the 101 response
        assert low[0].bytes_per_second < 10_000.0
        assert low[0].threshold == 10_000.0
        # The warnings come right after the response they are about.
        kinds = [type(event) for event in events]
        position = kinds.index(ResponseReceived)
        assert kinds[position + 1 : position + 3] == [SlowOperation, LowThroughput]

    def test_fast_connection_does_not_warn(self, client: str, codec_impl: types.SimpleNamespace) -> None:
        with WebsocketsServer(echo) as server:
            events = open_and_close(
                client,
                server.url(),
                warn_slow_operation=5.0,
                warn_low_throughput=1.0,
                implementation=codec_impl.name,
            )
        assert not [event for event in events if isinstance(event, (SlowOperation, LowThroughput))]

    def test_thresholds_alone_keep_statistics(self, codec_impl: types.SimpleNamespace) -> None:
        with WebsocketsServer(echo) as server:
            client = wsfast.WebSocketClient(
                None, server.url(), warn_slow_operation=5.0, timeout=TIMEOUT, implementation=codec_impl.name
            )
            assert client._events is not None  # thresholds need a monitor, even without subscribers
            client.connect()
            client.send("x" * 100)
            client.disconnect()
            assert client.wait(TIMEOUT)
        usage = client.usage()
        assert usage.bytes_sent > 2 + 4 + 100  # the request, the message and our CLOSE
        assert usage.bytes_received >= 100 + 2 + 4  # the echo and the server's CLOSE
        assert usage.send_time > 0
        assert usage.receive_time > 0

    def test_usage_matches_the_events(self, client: str, codec_impl: types.SimpleNamespace) -> None:
        with redirecting_raw_server() as server:
            events = open_and_close(client, server.url("/old"), implementation=codec_impl.name)
        monitor_usage = Usage(
            bytes_sent=sum(e.size for e in events if isinstance(e, DataSent)),
            bytes_received=sum(e.size for e in events if isinstance(e, DataRead)),
        )
        assert monitor_usage.bytes_sent == sum(len(c.request) for c in server.connections) + 8
        assert monitor_usage.bytes_received > 0


class TestMonitor:
    def test_events_are_frozen(self) -> None:
        event = Closed(connection_id=1, timestamp=0.0)
        with pytest.raises(dataclasses.FrozenInstanceError):
            event.connection_id = 2  # type: ignore[misc]

    def test_create_only_when_needed(self) -> None:
        assert Monitor.create(None) is None
        assert Monitor.create(None, warn_low_throughput=1.0) is not None

    def test_slow_send(self) -> None:
        seen: list[Event] = []
        monitor = Monitor(warn_slow_operation=0.05, warn_low_throughput=1e6)
        monitor.subscribe(seen.append)
        monitor.send(lambda data: time.sleep(0.15), b"x" * 1000)
        assert [type(e) for e in seen] == [DataSent, SlowOperation, LowThroughput]
        slow, low = seen[1], seen[2]
        assert isinstance(slow, SlowOperation)
        assert slow.operation == "send"
        assert isinstance(low, LowThroughput)
        assert (low.direction, low.size) == ("send", 1000)
        assert monitor.usage().bytes_sent == 1000
        assert monitor.usage().send_time >= 0.1

    def test_throughput_needs_a_long_enough_transfer(self) -> None:
        seen: list[Event] = []
        monitor = Monitor(warn_low_throughput=1e9)
        monitor.subscribe(seen.append)
        monitor.check_throughput("send", 10, 0.001)  # a fast small write is not a rate
        assert seen == []
        monitor.check_throughput("send", 10, 0.5)
        assert [type(e) for e in seen] == [LowThroughput]
