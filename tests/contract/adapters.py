"""One blocking, test-friendly interface over every front-end, so a contract test is written once.

A :class:`Variant` is a front-end x event loop x codec twin:

- ``threaded``: :class:`wsfast.WebSocketClient`; messages arrive in its callback (on its event thread) and
  are put in a queue that :meth:`Client.recv` reads.
- ``recv``: the asyncio client read with ``await ws.recv()`` (and ``async for``).
- ``inline``: the asyncio client with an inline ``on_message`` callback feeding the queue.
- ``sync``: :mod:`wsfast.sync`, the blocking front-end over the threaded client, read with ``ws.recv()``
  (and ``for message in ws``) in the test's thread.

The asyncio variants run their event loop (asyncio's default or uvloop) in a thread of their own; the
adapter runs every call on it and waits for the result with a timeout, so a test reads as blocking code
and a hang fails instead of blocking the suite. The twin is chosen with the ``implementation=`` option
(the codec seam): never by patching modules.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import inspect
import queue
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any

import wsfast

WAIT = 5.0  # seconds: the bound on every wait; a correct client needs far less
CLOSE_TIMEOUT = 2.0  # the clients' close_timeout unless a test sets one

FRONTENDS = ("threaded", "recv", "inline", "sync")
ASYNC_FRONTENDS = ("recv", "inline")
THREAD_FRONTENDS = ("threaded", "sync")  # no event loop
LOOPS = ("asyncio", "uvloop")
TWINS = ("python", "cython")


@dataclasses.dataclass(frozen=True)
class Variant:
    frontend: str
    loop: str | None  # None for the threaded and sync front-ends
    twin: str

    @property
    def id(self) -> str:
        return "-".join(part for part in (self.frontend, self.loop, self.twin) if part)


def variants(frontends: tuple[str, ...] = FRONTENDS) -> list[Variant]:
    result = []
    for frontend in frontends:
        for loop in (None,) if frontend in THREAD_FRONTENDS else LOOPS:
            for twin in TWINS:
                result.append(Variant(frontend, loop, twin))
    return result


def has_codec_seam(variant: Variant) -> bool:
    """Whether this front-end takes ``implementation=`` (the codec seam of issue 15). Without it only
    the process's default twin (``wsfast.implementation``) can be tested: the fixtures skip the other."""
    constructors = {"threaded": wsfast.WebSocketClient, "sync": wsfast.sync.connect}  # type: ignore[attr-defined]
    constructor = constructors.get(variant.frontend, wsfast.connect)  # type: ignore[attr-defined]
    return "implementation" in inspect.signature(constructor).parameters


class Events:
    """What the callbacks saw, in order: ``("connect",)``, ``("disconnect", Disconnected)``,
    ``("close", code, reason)`` (the threaded client's ``on_close``)."""

    def __init__(self) -> None:
        self.seen: list[tuple[Any, ...]] = []
        self.threads: list[int] = []  # the thread each event came from (threading.get_ident())
        self._cond = threading.Condition()

    def add(self, *event: Any) -> None:
        with self._cond:
            self.seen.append(event)
            self.threads.append(threading.get_ident())
            self._cond.notify_all()

    def of(self, kind: str) -> list[tuple[Any, ...]]:
        with self._cond:
            return [event for event in self.seen if event[0] == kind]

    @property
    def connects(self) -> int:
        return len(self.of("connect"))

    @property
    def disconnects(self) -> list[Any]:
        return [event[1] for event in self.of("disconnect")]

    def wait_for(self, kind: str, count: int = 1, timeout: float = WAIT) -> list[tuple[Any, ...]]:
        with self._cond:
            ok = self._cond.wait_for(lambda: len([e for e in self.seen if e[0] == kind]) >= count, timeout)
            assert ok, f"no {count} {kind!r} events within {timeout} s; seen: {self.seen!r}"[:2000]
        return self.of(kind)


class Client:
    """The interface every front-end adapter offers (see the module docstring)."""

    has_recv = False  # recv() raises errors in-line; callback front-ends log and skip them instead

    def __init__(self, variant: Variant) -> None:
        self.variant = variant
        self.events = Events()
        self.messages: queue.Queue[Any] = queue.Queue()

    # Subclasses

    def construct(self, url: str, **options: Any) -> Any:
        """Build the client object without opening anything (construction-time validation)."""
        raise NotImplementedError

    def open(self, url: str, **options: Any) -> None:
        raise NotImplementedError

    def send(self, data: str | bytes) -> None:
        raise NotImplementedError

    def ping(self, timeout: float = WAIT, payload: str | bytes | None = None) -> Any:
        """``ping(payload)``: the round-trip time."""
        raise NotImplementedError

    def close(self, code: int = 1000, reason: str = "") -> None:
        raise NotImplementedError

    def stats(self) -> Any:
        raise NotImplementedError

    @property
    def url(self) -> Any:
        raise NotImplementedError

    @property
    def close_code(self) -> int | None:
        raise NotImplementedError

    @property
    def raw(self) -> Any:
        """The client object itself (a WebSocketClient or a WebSocket), for attributes both have:
        ``response``, ``subprotocol``, ``close_reason``, ``repr()``."""
        raise NotImplementedError

    def send_frame(self, data: str | bytes, opcode: int, fin: bool = True) -> None:
        raise NotImplementedError

    def pong(self, data: str | bytes = b"") -> None:
        raise NotImplementedError

    def send_from_callback(self, data: str | bytes) -> None:
        """Send from inside the message callback (callback front-ends), without waiting."""
        raise NotImplementedError

    def pong_from_callback(self, data: bytes) -> None:
        """Send a PONG from inside the on_ping hook, without waiting."""
        raise NotImplementedError

    def reconnect(self) -> None:
        """Close the connection (1000) and open a new one, now, whatever the reconnect policy."""
        raise NotImplementedError

    def wait_closed(self, timeout: float = WAIT) -> None:
        """Until the client is closed for good (no reconnection left)."""
        raise NotImplementedError

    @property
    def protocol(self) -> Any:
        """The sans-I/O ``ClientProtocol`` of the current connection (a private attribute of the client:
        for the tests of the codec seam only)."""
        raise NotImplementedError

    def shutdown(self) -> None:
        """Teardown: close whatever is still open, stop threads; never raises."""
        raise NotImplementedError

    # Shared

    def recv(self, timeout: float = WAIT) -> Any:
        """The next message (callback front-ends: from the queue the callback fills)."""
        try:
            return self.messages.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no message within {timeout} s; events: {self.events.seen!r}") from None

    def recv_many(self, count: int, timeout: float = WAIT) -> list[Any]:
        return [self.recv(timeout) for _ in range(count)]

    def options(self, options: dict[str, Any]) -> dict[str, Any]:
        """The test's options plus the adapter's: the twin, short close timeout, recording callbacks
        (a test's own on_connect / on_disconnect still run, after being recorded)."""
        options = dict(options)
        if has_codec_seam(self.variant):
            options.setdefault("implementation", self.variant.twin)
        options.setdefault("close_timeout", CLOSE_TIMEOUT)
        events = self.events
        user_disconnect = options.pop("on_disconnect", None)

        def on_disconnect(info: Any) -> Any:
            events.add("disconnect", info)
            return user_disconnect(info) if user_disconnect is not None else None

        options["on_disconnect"] = on_disconnect
        return options


def _wrap_on_connect(events: Events, user: Callable[[Any], Any] | None, asynchronous: bool) -> Any:
    if asynchronous:

        async def on_connect_async(client: Any) -> None:
            events.add("connect")
            if user is not None:
                result = user(client)
                if inspect.isawaitable(result):
                    await result

        return on_connect_async

    def on_connect(client: Any) -> None:
        events.add("connect")
        if user is not None:
            user(client)

    return on_connect


class ThreadedClient(Client):
    """:class:`wsfast.WebSocketClient`: messages from its callback into the queue."""

    def __init__(self, variant: Variant) -> None:
        super().__init__(variant)
        self.client: wsfast.WebSocketClient | None = None  # type: ignore[name-defined]

    def options(self, options: dict[str, Any]) -> dict[str, Any]:
        options = super().options(options)
        options["on_connect"] = _wrap_on_connect(self.events, options.get("on_connect"), False)
        options.setdefault("timeout", WAIT)
        user_close = options.pop("on_close", None)

        def on_close(code: int, reason: str) -> None:
            self.events.add("close", code, reason)
            if user_close is not None:
                user_close(code, reason)

        options["on_close"] = on_close
        return options

    def construct(self, url: str, **options: Any) -> Any:
        options = self.options(options)
        callback = None if "on_message" in options else self.messages.put
        self.client = wsfast.WebSocketClient(callback, url, **options)  # type: ignore[attr-defined]
        return self.client

    def open(self, url: str, **options: Any) -> None:
        self.construct(url, **options).connect()

    def _current(self) -> Any:
        assert self.client is not None, "open() first"
        return self.client

    def send(self, data: str | bytes) -> None:
        self._current().send(data)

    def ping(self, timeout: float = WAIT, payload: str | bytes | None = None) -> Any:
        return self._current().ping(payload, timeout=timeout)

    def close(self, code: int = 1000, reason: str = "") -> None:
        self._current().disconnect(code, reason)

    def stats(self) -> Any:
        return self._current().stats()

    @property
    def url(self) -> Any:
        return self._current().url

    @property
    def close_code(self) -> int | None:
        return self._current().close_code  # type: ignore[no-any-return]

    @property
    def raw(self) -> Any:
        return self._current()

    def send_frame(self, data: str | bytes, opcode: int, fin: bool = True) -> None:
        self._current().send_frame(data, opcode, fin=fin)

    def pong(self, data: str | bytes = b"") -> None:
        self._current().pong(data)

    def send_from_callback(self, data: str | bytes) -> None:
        self._current().send(data)

    def pong_from_callback(self, data: bytes) -> None:
        self._current().pong(data)

    def reconnect(self) -> None:
        self._current().reconnect()

    @property
    def protocol(self) -> Any:
        return self._current()._protocol

    def wait_closed(self, timeout: float = WAIT) -> None:
        assert self._current().wait(timeout), f"still open after {timeout} s"

    def shutdown(self) -> None:
        client = self.client
        if client is None:
            return
        closer = threading.Thread(target=client.disconnect, kwargs={"timeout": 1.0}, daemon=True)
        closer.start()
        closer.join(3.0)
        if not closer.is_alive():
            client.wait(3.0)


class AsyncioClient(Client):
    """The asyncio client on its own loop thread; ``recv`` front-end: ``ws.recv()``, ``inline``
    front-end: an inline ``on_message`` feeding the queue."""

    def __init__(self, variant: Variant) -> None:
        super().__init__(variant)
        self.has_recv = variant.frontend == "recv"
        if variant.loop == "uvloop":
            import uvloop

            self.loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
        else:
            self.loop = asyncio.new_event_loop()
        self.ws: Any = None
        self._tasks: set[asyncio.Future[Any]] = set()
        self._thread = threading.Thread(target=self._main, name=f"loop-{variant.id}", daemon=True)
        self._thread.start()

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    # Running things on the loop

    def run(self, make: Callable[[], Coroutine[Any, Any, Any]], timeout: float = WAIT) -> Any:
        """Run the coroutine *make()* on the loop; its result, or its exception, here. A call still
        running after *timeout* seconds is cancelled and fails the test as a hang (an AssertionError,
        never a TimeoutError, which the client's own timeouts raise)."""

        async def bounded() -> Any:
            task = asyncio.ensure_future(make())
            done, _ = await asyncio.wait({task}, timeout=timeout)
            if not done:
                task.cancel()
                raise AssertionError(f"no result within {timeout} s (hang?)")
            return task.result()

        future = asyncio.run_coroutine_threadsafe(bounded(), self.loop)
        try:
            return future.result(timeout + 2.0)
        except concurrent.futures.TimeoutError:
            if future.done():  # the client's own TimeoutError (OpenTimeout, recv(timeout=...))
                raise
            future.cancel()
            raise AssertionError(f"the event loop did not answer within {timeout} s") from None

    def call(self, function: Callable[[], Any], timeout: float = WAIT) -> Any:
        """Run the plain *function* on the loop thread; its result here."""

        async def call() -> Any:
            return function()

        return self.run(call, timeout)

    def start(self, make: Callable[[], Coroutine[Any, Any, Any]]) -> concurrent.futures.Future[Any]:
        """Start the coroutine *make()* on the loop and return at once (a pending recv(), say)."""

        async def started() -> Any:
            return await make()

        return asyncio.run_coroutine_threadsafe(started(), self.loop)

    # The interface

    def options(self, options: dict[str, Any]) -> dict[str, Any]:
        options = super().options(options)
        options["on_connect"] = _wrap_on_connect(self.events, options.get("on_connect"), True)
        if self.variant.frontend == "inline":
            options.setdefault("on_message", self.messages.put)
        return options

    def construct(self, url: str, **options: Any) -> Any:
        return wsfast.connect(url, **self.options(options))

    def open(self, url: str, **options: Any) -> None:
        options = self.options(options)
        timeout = max(WAIT, float(options.get("open_timeout") or 0) + 1.0)

        async def open_() -> Any:
            return await wsfast.connect(url, **options)

        self.ws = self.run(open_, timeout)

    def _current(self) -> Any:
        assert self.ws is not None, "open() first"
        return self.ws

    def recv(self, timeout: float = WAIT) -> Any:
        if not self.has_recv:
            return super().recv(timeout)
        ws = self._current()
        return self.run(lambda: ws.recv(), timeout)

    def recv_later(self) -> concurrent.futures.Future[Any]:
        """A ``recv()`` started now and left waiting (its result later, from the future)."""
        ws = self._current()
        return self.start(lambda: ws.recv())

    def iterate(self, count: int | None = None, timeout: float = WAIT) -> list[Any]:
        """``[m async for m in ws]``, stopping after *count* messages (``None``: until it ends)."""
        ws = self._current()

        async def collect() -> list[Any]:
            got: list[Any] = []
            async for message in ws:
                got.append(message)
                if count is not None and len(got) >= count:
                    break
            return got

        return self.run(collect, timeout)  # type: ignore[no-any-return]

    def next_message(self) -> Any:
        """One step of ``async for``: ``await ws.__anext__()``."""
        ws = self._current()
        return self.run(lambda: ws.__anext__())

    def recv_together(self, count: int) -> list[Any]:
        """*count* ``recv()`` calls at once (``asyncio.gather``); their results."""
        ws = self._current()

        async def together() -> list[Any]:
            return list(await asyncio.gather(*(ws.recv() for _ in range(count))))

        return self.run(together)  # type: ignore[no-any-return]

    def consume(self, handle: Callable[[Any], Any], timeout: float = WAIT) -> None:
        """Iterate, calling *handle(message)*: ``True`` stops, a float is a pause of that many seconds
        (``asyncio.sleep``: a slow consumer), anything else reads on."""
        ws = self._current()

        async def collect() -> None:
            async for message in ws:
                verdict = handle(message)
                if verdict is True:
                    break
                if isinstance(verdict, float):
                    await asyncio.sleep(verdict)

        self.run(collect, timeout)

    def echo_all(self, timeout: float = WAIT) -> None:
        """``async for message in ws: await ws.send(message)``, to its end (or its error)."""
        ws = self._current()

        async def echo_all() -> None:
            async for message in ws:
                await ws.send(message)

        self.run(echo_all, timeout)

    def send(self, data: str | bytes) -> None:
        ws = self._current()
        self.run(lambda: ws.send(data))

    def ping(self, timeout: float = WAIT, payload: str | bytes | None = None) -> Any:
        ws = self._current()
        return self.run(lambda: ws.ping(payload), timeout)

    def close(self, code: int = 1000, reason: str = "") -> None:
        ws = self._current()
        self.run(lambda: ws.close(code, reason), CLOSE_TIMEOUT + WAIT)

    def stats(self) -> Any:
        ws = self._current()
        return self.call(ws.stats)

    @property
    def url(self) -> Any:
        ws = self._current()
        return self.call(lambda: ws.url)

    @property
    def close_code(self) -> int | None:
        ws = self._current()
        return self.call(lambda: ws.close_code)  # type: ignore[no-any-return]

    @property
    def raw(self) -> Any:
        return self._current()

    def send_frame(self, data: str | bytes, opcode: int, fin: bool = True) -> None:
        ws = self._current()
        self.run(lambda: ws.send_frame(data, opcode, fin))

    def pong(self, data: str | bytes = b"") -> None:
        ws = self._current()
        self.run(lambda: ws.pong(data))

    def send_from_callback(self, data: str | bytes) -> None:
        self._current().send_nowait(data)  # the inline callback runs on the loop's thread

    def pong_from_callback(self, data: bytes) -> None:
        task = asyncio.ensure_future(self._current().pong(data))  # on_ping runs on the loop's thread
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def reconnect(self) -> None:
        ws = self._current()
        self.run(lambda: ws.reconnect())

    @property
    def protocol(self) -> Any:
        return self._current()._protocol

    def wait_closed(self, timeout: float = WAIT) -> None:
        ws = self._current()
        self.run(lambda: ws.wait_closed(), timeout)

    def stop_loop(self) -> None:
        """Stop and close the event loop (the client's objects stay, their loop gone)."""
        if self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(WAIT)
        if not self._thread.is_alive():
            self.loop.close()

    def shutdown(self) -> None:
        ws = self.ws
        if ws is not None and not self.loop.is_closed():
            with contextlib.suppress(Exception):  # teardown: the test has its verdict already
                self.run(lambda: ws.close(), CLOSE_TIMEOUT + 1.0)
        if not self.loop.is_closed():
            self.stop_loop()


class SyncClient(Client):
    """:mod:`wsfast.sync`: ``ws.recv()`` in the test's thread; calls that may block long run in a
    thread of their own, bounded by WAIT, so that a hang fails the test instead of blocking the suite."""

    has_recv = True

    def __init__(self, variant: Variant) -> None:
        super().__init__(variant)
        self.ws: Any = None

    def options(self, options: dict[str, Any]) -> dict[str, Any]:
        options = super().options(options)
        options["on_connect"] = _wrap_on_connect(self.events, options.get("on_connect"), False)
        options.setdefault("timeout", WAIT)
        return options

    def construct(self, url: str, **options: Any) -> Any:
        return wsfast.sync.connect(url, **self.options(options))  # type: ignore[attr-defined]

    def open(self, url: str, **options: Any) -> None:
        self.ws = self.construct(url, **options).open()

    def _current(self) -> Any:
        assert self.ws is not None, "open() first"
        return self.ws

    def bounded(self, function: Callable[[], Any], timeout: float = WAIT) -> Any:
        """*function()* in a thread; its result or exception here, an AssertionError after *timeout*."""
        future = self.start(function)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            if future.done():  # the client's own TimeoutError
                raise
            raise AssertionError(f"no result within {timeout} s (hang?)") from None

    def start(self, function: Callable[[], Any]) -> concurrent.futures.Future[Any]:
        """*function()* started now in a thread of its own (a pending recv(), say)."""
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()

        def run() -> None:
            try:
                future.set_result(function())
            except BaseException as exc:
                future.set_exception(exc)

        threading.Thread(target=run, daemon=True).start()
        return future

    def recv(self, timeout: float = WAIT) -> Any:
        ws = self._current()
        try:
            return ws.recv(timeout=timeout)
        except TimeoutError:
            if isinstance(ws.close_exception, TimeoutError):  # KeepaliveTimeout, IdleTimeout: the verdict
                raise
            raise AssertionError(f"no message within {timeout} s; events: {self.events.seen!r}") from None

    def recv_later(self) -> concurrent.futures.Future[Any]:
        ws = self._current()
        return self.start(ws.recv)

    def iterate(self, count: int | None = None, timeout: float = WAIT) -> list[Any]:
        """``list(ws)``, stopping after *count* messages (``None``: until it ends)."""
        ws = self._current()

        def collect() -> list[Any]:
            got: list[Any] = []
            for message in ws:
                got.append(message)
                if count is not None and len(got) >= count:
                    break
            return got

        return self.bounded(collect, timeout)  # type: ignore[no-any-return]

    def call(self, function: Callable[[], Any], timeout: float = WAIT) -> Any:
        """*function()*, bounded by *timeout* (the asyncio adapter's runs it on the loop)."""
        return self.bounded(function, timeout)

    def next_message(self) -> Any:
        """One step of the iteration: ``next(ws)``."""
        return next(self._current())

    def recv_together(self, count: int) -> list[Any]:
        """*count* ``recv()`` calls at once, each in a thread; their results."""
        ws = self._current()
        futures = [self.start(ws.recv) for _ in range(count)]
        return [future.result(WAIT) for future in futures]

    def consume(self, handle: Callable[[Any], Any], timeout: float = WAIT) -> None:
        """Iterate, calling *handle(message)*: ``True`` stops, a float is a pause of that many seconds
        (``time.sleep``: a slow consumer), anything else reads on."""
        ws = self._current()

        def collect() -> None:
            for message in ws:
                verdict = handle(message)
                if verdict is True:
                    break
                if isinstance(verdict, float):
                    time.sleep(verdict)

        self.bounded(collect, timeout)

    def echo_all(self, timeout: float = WAIT) -> None:
        """``for message in ws: ws.send(message)``, to its end (or its error)."""
        ws = self._current()

        def echo_all() -> None:
            for message in ws:
                ws.send(message)

        self.bounded(echo_all, timeout)

    def send(self, data: str | bytes) -> None:
        self._current().send(data)

    def ping(self, timeout: float = WAIT, payload: str | bytes | None = None) -> Any:
        return self._current().ping(payload, timeout=timeout)

    def close(self, code: int = 1000, reason: str = "") -> None:
        ws = self._current()
        self.bounded(lambda: ws.close(code, reason), CLOSE_TIMEOUT + WAIT)

    def stats(self) -> Any:
        return self._current().stats()

    @property
    def url(self) -> Any:
        return self._current().url

    @property
    def close_code(self) -> int | None:
        return self._current().close_code  # type: ignore[no-any-return]

    @property
    def raw(self) -> Any:
        return self._current()

    def send_frame(self, data: str | bytes, opcode: int, fin: bool = True) -> None:
        self._current().send_frame(data, opcode, fin=fin)

    def pong(self, data: str | bytes = b"") -> None:
        self._current().pong(data)

    def send_from_callback(self, data: str | bytes) -> None:
        self._current().send(data)

    def pong_from_callback(self, data: bytes) -> None:
        self._current().pong(data)

    def reconnect(self) -> None:
        ws = self._current()
        self.bounded(ws.reconnect)

    @property
    def protocol(self) -> Any:
        return self._current()._client._protocol

    def wait_closed(self, timeout: float = WAIT) -> None:
        assert self._current().wait_closed(timeout), f"still open after {timeout} s"

    def shutdown(self) -> None:
        ws = self.ws
        if ws is None:
            return
        closer = threading.Thread(target=ws.close, daemon=True)
        closer.start()
        closer.join(CLOSE_TIMEOUT + 1.0)


def make_client(variant: Variant) -> Client:
    if variant.frontend == "threaded":
        return ThreadedClient(variant)
    if variant.frontend == "sync":
        return SyncClient(variant)
    return AsyncioClient(variant)
