"""The threaded client's TLS (:class:`wsfast._opening_sync.TLSStream`) against ``openssl s_server``.

The client's event thread reads while other threads send. OpenSSL forbids using one ``SSL`` object from two
threads at once; with an ``ssl.SSLSocket`` a TLS 1.3 KeyUpdate (RFC 8446 §4.6.3), which the read path
answers, arriving while another thread writes ends the connection with "bad record mac" at the first
one. ``s_server`` sends one whenever a line ``K`` is typed on its standard input (a command line must
come alone: the rest of a read is dropped), and prints what the client sends, so the test checks every
byte on the server's side.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import wsfast
from servers import WebsocketsServer, echo, tls_certs
from wsfast._opening_sync import TLSStream

WAIT = 30.0  # the bound on every wait; the exchanges take well under a second

needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")


@pytest.fixture(scope="module")
def certs() -> Any:
    return tls_certs("localhost")


class SServer:
    """``openssl s_server`` for one TLS 1.3 connection; ``command(line)`` types on its standard input,
    ``received()`` is what the client sent so far."""

    def __init__(self, certs: Any, directory: Path) -> None:
        pem = directory / "server.pem"
        certs.ca.issue_cert("localhost").private_key_and_cert_chain_pem.write_to_path(pem)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.output = directory / "received"
        with self.output.open("wb") as output:
            address = f"127.0.0.1:{self.port}"
            self.process = subprocess.Popen(  # not -quiet: it turns the commands off
                ["openssl", "s_server", "-accept", address, "-cert", str(pem), "-tls1_3", "-naccept", "1"],
                stdin=subprocess.PIPE,
                stdout=output,
                stderr=subprocess.PIPE,
            )

    def connect(self) -> socket.socket:
        deadline = time.monotonic() + WAIT
        while True:
            try:
                return socket.create_connection(("127.0.0.1", self.port), timeout=WAIT)
            except ConnectionRefusedError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise
                time.sleep(0.05)

    def command(self, line: bytes) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line + b"\n")
        self.process.stdin.flush()

    def received(self) -> bytes:
        return self.output.read_bytes()

    def stop(self) -> None:
        self.process.kill()
        self.process.wait(WAIT)


@pytest.fixture
def s_server(certs: Any, tmp_path: Path) -> Iterator[SServer]:
    server = SServer(certs, tmp_path)
    yield server
    server.stop()


def _thread(target: Callable[[], None], errors: list[BaseException]) -> threading.Thread:
    def run() -> None:
        try:
            target()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


@needs_openssl
def test_key_updates_while_other_threads_write(s_server: SServer, certs: Any) -> None:
    stream = TLSStream(s_server.connect(), certs.client_context, "localhost")
    stream.do_handshake()
    errors: list[BaseException] = []
    received = bytearray()

    def read() -> None:
        buffer = bytearray(65536)
        while size := stream.recv_into(buffer):
            received.extend(buffer[:size])

    lock = threading.Lock()  # the client's write lock: writers take turns, the reader never waits

    lines = 4000

    def write(writer: int) -> Callable[[], None]:
        def run() -> None:
            for line in range(lines):
                with lock:
                    stream.sendall(b"w%d %06d %s\n" % (writer, line, b"x" * 100))

        return run

    reader = _thread(read, errors)
    writers = [_thread(write(writer), errors) for writer in range(2)]
    updates = 40
    for _ in range(updates):  # KeyUpdate, answer requested (RFC 8446 §4.6.3)
        s_server.command(b"K")
        time.sleep(0.005)
    for writer_thread in writers:
        writer_thread.join(WAIT)
    deadline = time.monotonic() + WAIT
    while s_server.received().count(b"\n") < 2 * lines and time.monotonic() < deadline:
        time.sleep(0.02)
    s_server.command(b"Q")  # close_notify, then exit: the reader sees the end of the stream
    reader.join(WAIT)

    assert errors == []
    assert not reader.is_alive()
    output = s_server.received().splitlines()
    assert output.count(b"SSL_do_handshake -> 1") == updates  # each KeyUpdate went through
    for writer in range(2):
        assert [line[3:9] for line in output if line.startswith(b"w%d " % writer)] == [
            b"%06d" % line for line in range(lines)
        ]
    assert received == b""


@pytest.mark.parametrize("ending", ["close_notify", "tcp"])
def test_the_end_of_the_stream_reads_as_zero(certs: Any, ending: str) -> None:
    """After the peer's close_notify (RFC 8446 §6.1) the stream has ended though TCP stays open (the
    server waits for ours); a TCP close without one is a ragged end, read the same way."""
    client_sock, server_sock = socket.socketpair()
    client_sock.settimeout(WAIT)  # a read that waits for more instead of ending fails, never hangs
    errors: list[BaseException] = []

    def serve() -> None:
        tls = certs.server_context.wrap_socket(server_sock, server_side=True)
        tls.sendall(b"hello")
        if ending == "tcp":
            tls.close()
        else:
            tls.settimeout(WAIT)
            tls.unwrap()  # sends close_notify, then waits for the client's

    server = _thread(serve, errors)
    stream = TLSStream(client_sock, certs.client_context, "localhost")
    stream.do_handshake()
    assert stream.cipher() is not None
    buffer = bytearray(100)
    assert bytes(buffer[: stream.recv_into(buffer)]) == b"hello"
    assert stream.recv_into(buffer) == 0
    assert stream.recv_into(buffer) == 0
    assert stream.pending() == 0
    stream.close()
    server.join(WAIT)
    assert not server.is_alive()


def test_the_threaded_client_reads_wss_through_a_tls_stream() -> None:
    certs = tls_certs()
    received: list[Any] = []
    with WebsocketsServer(echo, ssl_context=certs.server_context) as server:
        client = wsfast.WebSocketClient(received.append, server.url(), ssl=certs.client_context)
        with client:
            assert isinstance(client._sock, TLSStream)
            client.send("over TLS")
            deadline = time.monotonic() + WAIT
            while not received and time.monotonic() < deadline:
                time.sleep(0.01)
    assert received == ["over TLS"]
