"""The ``wsfast`` command, run as a real process: lines written to its stdin (a pipe, or a pseudo-terminal
as a person types) are sent, and what it prints on stdout is read back as it arrives, against real servers
on 127.0.0.1 (tests/servers.py, wsfast.feed). Also ``wsfast feed --rate``'s pacing, with an injected clock
and measured on a live feed.

Every wait is bounded (``TIMEOUT``): a hung command fails its test, and is killed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import itertools
import json
import math
import os
import queue
import random
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

import pytest

import wsfast
from servers import AiohttpServer, ConnectProxy, WebsocketsServer, echo, tls_certs
from wsfast import cli
from wsfast.feed import FeedServer, Pacer

TIMEOUT = 20.0  # seconds, for every wait on the command
SOURCE = str(Path(wsfast.__file__).resolve().parent.parent)  # this checkout's wsfast, for the child


def command_environment() -> dict[str, str]:
    environment = dict(os.environ)
    environment["PYTHONPATH"] = os.pathsep.join(filter(None, [SOURCE, environment.get("PYTHONPATH")]))
    environment.pop("PYTHONUNBUFFERED", None)  # the command must flush stdout itself, as into any pipe
    return environment


def _pump(stream: IO[bytes], lines: queue.Queue[str | None], seen: list[str]) -> None:
    for raw in iter(stream.readline, b""):
        line = raw.decode("utf-8", "replace").rstrip("\n")
        seen.append(line)
        lines.put(line)
    lines.put(None)


class Wsfast:
    """``python -m wsfast ARGS`` with pipes for stdout and stderr; *stdin* a pipe by default.

    :meth:`read_line` returns the next stdout line as soon as the command prints it (or fails after
    *timeout*); :meth:`finish` waits for the exit status.
    """

    def __init__(self, *args: str, stdin: Any = subprocess.PIPE) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "wsfast", *args],
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=command_environment(),
        )
        assert self.process.stdout is not None
        assert self.process.stderr is not None
        self.stdout: queue.Queue[str | None] = queue.Queue()
        self.stderr: queue.Queue[str | None] = queue.Queue()
        self.out_lines: list[str] = []
        self.err_lines: list[str] = []
        self._pumps = [
            threading.Thread(
                target=_pump, args=(self.process.stdout, self.stdout, self.out_lines), daemon=True
            ),
            threading.Thread(
                target=_pump, args=(self.process.stderr, self.stderr, self.err_lines), daemon=True
            ),
        ]
        for pump in self._pumps:
            pump.start()

    def write(self, *lines: str | bytes) -> None:
        assert self.process.stdin is not None
        for line in lines:
            self.process.stdin.write(line.encode() + b"\n" if isinstance(line, str) else line)
        self.process.stdin.flush()

    def close_stdin(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()

    def read_line(self, timeout: float = TIMEOUT) -> str:
        try:
            line = self.stdout.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no output within {timeout} s; stderr: {self.err_lines}") from None
        assert line is not None, f"stdout ended; stderr: {self.err_lines}"
        return line

    def wait_stderr(self, text: str, timeout: float = TIMEOUT) -> str:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            with contextlib.suppress(queue.Empty):
                line = self.stderr.get(timeout=left)
                assert line is not None, f"stderr ended without {text!r}: {self.err_lines}"
                if text in line:
                    return line
        raise AssertionError(f"no {text!r} on stderr within {timeout} s: {self.err_lines}")

    def finish(self, timeout: float = TIMEOUT) -> tuple[int, list[str], str]:
        """The exit status, every stdout line, and stderr."""
        if self.process.stdin is not None and not self.process.stdin.closed:
            self.process.stdin.close()
        try:
            status = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(TIMEOUT)
            raise AssertionError(
                f"wsfast still running after {timeout} s; stderr: {self.err_lines}"
            ) from None
        for pump in self._pumps:
            pump.join(TIMEOUT)
        return status, list(self.out_lines), "\n".join(self.err_lines)

    def __enter__(self) -> Wsfast:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(TIMEOUT)
        for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()


@dataclasses.dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


def run(*args: str, input: bytes | None = b"", timeout: float = TIMEOUT) -> Result:
    """Run the command to its end with *input* (bytes) on stdin (``None``: /dev/null)."""
    done = subprocess.run(
        [sys.executable, "-m", "wsfast", *args],
        input=input,
        stdin=subprocess.DEVNULL if input is None else None,
        capture_output=True,
        timeout=timeout,
        env=command_environment(),
        check=False,
    )
    return Result(
        done.returncode, done.stdout.decode("utf-8", "replace"), done.stderr.decode("utf-8", "replace")
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def later(delay: float, messages: list[str], code: int = 1000, reason: str = "") -> Any:
    """A server handler: wait *delay* seconds (the client is listening by then), send, close."""

    async def handler(ws: Any) -> None:
        await asyncio.sleep(delay)
        for message in messages:
            await ws.send(message)
        await ws.close(code, reason)

    return handler


# --------------------------------------------------------------------------------------------------


class TestInteractive:
    def test_each_line_is_sent_and_each_echo_printed_as_it_arrives(self) -> None:
        with WebsocketsServer(echo) as server, Wsfast(server.url()) as command:
            command.write("hello")
            assert command.read_line() == "hello"  # before the next line is even written
            command.write("second line", "")
            assert command.read_line() == "second line"
            assert command.read_line() == ""  # an empty line is an empty message
            command.close_stdin()
            status, _, err = command.finish()
            assert server.wait_closes(1) == [(1000, "")]  # the end of stdin closed with 1000
        assert status == 0, err
        assert f"connected to {server.url()} (HTTP 101, {wsfast.implementation})" in err
        assert "closed 1000; 3 messages in" in err

    def test_lines_piped_at_once_are_all_sent_before_the_close(self) -> None:
        lines = [f"line {i}" for i in range(200)]
        with WebsocketsServer(echo) as server:
            result = run(server.url(), input="".join(f"{line}\r\n" for line in lines).encode())
            assert server.wait_closes(1) == [(1000, "")]
        assert result.returncode == 0, result.stderr
        assert result.stdout.splitlines() == lines  # CRLF line ends are line ends too
        assert "Traceback" not in result.stderr

    @pytest.mark.skipif(sys.platform == "win32", reason="a pseudo-terminal needs POSIX (pty)")
    def test_a_terminal_as_stdin(self) -> None:
        import pty

        primary, secondary = pty.openpty()
        try:
            with WebsocketsServer(echo) as server, Wsfast(server.url(), stdin=secondary) as command:
                os.close(secondary)
                secondary = -1
                command.wait_stderr("Ctrl-D or Ctrl-C closes")  # the prompt only a terminal gets
                os.write(primary, b"typed by hand\n")
                assert command.read_line() == "typed by hand"
                os.write(primary, b"\x04")  # Ctrl-D at the start of a line: the end of input
                status, _, err = command.finish()
                assert server.wait_closes(1) == [(1000, "")]
        finally:
            os.close(primary)
            if secondary >= 0:
                os.close(secondary)
        assert status == 0, err
        assert "msg/s" not in err.split("closed 1000")[0]  # no live rate line over what is typed

    @pytest.mark.skipif(sys.platform == "win32", reason="SIGINT cannot be sent to a process on Windows")
    def test_ctrl_c_closes_with_1000(self) -> None:
        with WebsocketsServer(echo) as server, Wsfast(server.url()) as command:
            command.write("ready?")
            assert command.read_line() == "ready?"
            command.process.send_signal(signal.SIGINT)
            status, _, err = command.finish()
            assert server.wait_closes(1) == [(1000, "")]
        assert status == 0, err
        assert "Traceback" not in err

    def test_an_empty_stdin_that_is_not_a_terminal_just_listens(self) -> None:
        handler = later(0.5, ["first", "second"])
        with WebsocketsServer(handler) as server:
            result = run(server.url(), input=None)  # < /dev/null: cron, a service, nohup
        assert result.returncode == 0, result.stderr
        assert result.stdout.splitlines() == ["first", "second"]
        assert "closed 1000" in result.stderr

    def test_no_stdin_listens_even_with_stdin_open(self) -> None:
        with (
            WebsocketsServer(later(0.3, ["only listening"])) as server,
            Wsfast(server.url(), "--no-stdin") as command,
        ):
            assert command.read_line() == "only listening"
            status, _, err = command.finish()  # closes stdin only after the command ended
        assert status == 0, err

    def test_count_keeps_listening_after_stdin_ends(self) -> None:
        with FeedServer(messages=None, rate=500, wait_for_subscribe=True) as feed:
            result = run(feed.url, "--count", "5", input=b"subscribe\n")
        assert result.returncode == 0, result.stderr
        lines = result.stdout.splitlines()
        assert lines[0] == '{"ack": "subscribe"}'
        assert len(lines) == 5
        assert all(line.startswith('{"e":"trade"') for line in lines[1:])

    def test_send_goes_before_stdin(self) -> None:
        with WebsocketsServer(echo) as server:
            result = run(server.url(), "--send", "from --send", input=b"from stdin\n")
        assert result.returncode == 0, result.stderr
        assert result.stdout.splitlines() == ["from --send", "from stdin"]


class TestStdinLines:
    def test_lines_split_across_reads(self) -> None:
        """Lines cut anywhere by the reads (as from a pipe), a long one, and a last one without a line end."""
        long_line = b"x" * 200_000
        data = b"one\ntwo\r\n\n" + long_line + b"\nlast"
        read, write = os.pipe()
        writer = threading.Thread(target=lambda: (os.write(write, data), os.close(write)), daemon=True)
        writer.start()
        try:
            assert list(cli._lines(read)) == [b"one", b"two\r", b"", long_line, b"last"]
        finally:
            writer.join(TIMEOUT)
            os.close(read)


class TestMessageFormats:
    def test_json_is_pretty_printed(self) -> None:
        document = {"op": "trade", "args": [1, 2], "price": "60000.5"}
        with WebsocketsServer(echo) as server:
            result = run(server.url(), "--json", input=f"{json.dumps(document)}\nnot json\n".encode())
        assert result.returncode == 0, result.stderr
        pretty = json.dumps(document, indent=2)
        assert result.stdout == pretty + "\nnot json\n"

    def test_binary_sends_the_line_bytes(self) -> None:
        with WebsocketsServer(echo) as server:
            result = run(server.url(), "--binary", input=b"hello\n\xff\xfe not utf-8\n")
        assert result.returncode == 0, result.stderr
        assert result.stdout.splitlines() == [
            "<binary 5 bytes> " + b"hello".hex(),
            "<binary 12 bytes> " + b"\xff\xfe not utf-8".hex(),
        ]

    def test_hex_sends_the_bytes_it_spells(self) -> None:
        with WebsocketsServer(echo) as server:
            result = run(server.url(), "--hex", input=b"00ff 10\nnot hex\n0a\n")
        assert result.returncode == 1  # a line was not sent
        assert result.stdout.splitlines() == ["<binary 3 bytes> 00ff10", "<binary 1 bytes> 0a"]
        assert "line 2 not sent: not hex" in result.stderr

    def test_a_line_that_is_not_utf8_is_not_sent_as_text(self) -> None:
        with WebsocketsServer(echo) as server:
            result = run(server.url(), input=b"ok\n\xff\n")
        assert result.returncode == 1
        assert result.stdout.splitlines() == ["ok"]
        assert "line 2 not sent: not UTF-8" in result.stderr
        assert "--binary" in result.stderr

    def test_received_binary_is_printed_in_full_hex(self) -> None:
        payload = bytes(range(256))
        with WebsocketsServer(_send_then_close([payload])) as server:
            result = run(server.url(), input=None)
        assert result.returncode == 0, result.stderr
        assert result.stdout == f"<binary 256 bytes> {payload.hex()}\n"


def _send_then_close(messages: list[str | bytes]) -> Any:
    async def handler(ws: Any) -> None:
        for message in messages:
            await ws.send(message)
        await ws.close()

    return handler


class TestConnectionOptions:
    def test_headers_reach_the_server(self) -> None:
        with WebsocketsServer(echo) as server:
            result = run(server.url(), "-H", "X-Api-Key: abc 123", "--header", "X-Trace:  t1 ", input=b"x\n")
            request = server.requests[0]
        assert result.returncode == 0, result.stderr
        assert request["X-Api-Key"] == "abc 123"
        assert request["X-Trace"] == "t1"

    @pytest.mark.parametrize(
        ("header", "message"),
        [("no colon", "a header must be 'Name: value'"), ("Bad Name: x", "not an RFC 9110 token")],
    )
    def test_a_bad_header_is_a_usage_error(self, header: str, message: str) -> None:
        with WebsocketsServer(echo) as server:
            result = run(server.url(), "-H", header)
            assert server.requests == []  # refused before connecting
        assert result.returncode == 2
        assert f"-H {header!r}" in result.stderr
        assert message in result.stderr
        assert "Traceback" not in result.stderr

    def test_cafile_trusts_a_private_ca(self, tmp_path: Path) -> None:
        certs = tls_certs()
        cafile = tmp_path / "ca.pem"
        certs.ca.cert_pem.write_to_path(str(cafile))
        with WebsocketsServer(echo, ssl_context=certs.server_context) as server:
            trusted = run(server.url(), "--cafile", str(cafile), input=b"over tls\n")
            untrusted = run(server.url(), input=b"over tls\n")
        assert trusted.returncode == 0, trusted.stderr
        assert trusted.stdout == "over tls\n"
        assert untrusted.returncode == 1
        (error,) = [line for line in untrusted.stderr.splitlines() if line.startswith("wsfast:")]
        assert "cannot connect to wss://127.0.0.1" in error
        assert "--cafile PATH" in error
        assert "--insecure" in error

    def test_insecure_skips_verification_and_says_so(self) -> None:
        with WebsocketsServer(echo, ssl_context=tls_certs().server_context) as server:
            result = run(server.url(), "--insecure", input=b"unverified\n")
        assert result.returncode == 0, result.stderr
        assert result.stdout == "unverified\n"
        assert "warning: --insecure" in result.stderr

    def test_a_cafile_that_cannot_be_read(self, tmp_path: Path) -> None:
        result = run("wss://127.0.0.1:1/", "--cafile", str(tmp_path / "missing.pem"))
        assert result.returncode == 2
        assert "--cafile" in result.stderr
        assert "cannot load CA certificates" in result.stderr

    @pytest.mark.parametrize("flag", [["--cafile", __file__], ["--insecure"]])
    def test_tls_flags_need_a_wss_url(self, flag: list[str]) -> None:
        result = run("ws://127.0.0.1:1/", *flag)
        assert result.returncode == 2
        assert (
            result.stderr
            == f"wsfast: {flag[0]} applies to wss:// URLs only: use a wss:// URL, or leave {flag[0]} out\n"
        )

    def test_cafile_and_insecure_exclude_each_other(self, tmp_path: Path) -> None:
        result = run("wss://127.0.0.1:1/", "--cafile", "x.pem", "--insecure")
        assert result.returncode == 2
        assert "not allowed with argument" in result.stderr

    def test_a_flag_and_the_same_option_through_o(self) -> None:
        result = run("wss://127.0.0.1:1/", "--insecure", "-o", "ssl=true")
        assert result.returncode == 2
        assert "--cafile/--insecure both set option 'ssl'" in result.stderr

    def test_compression_negotiates_permessage_deflate(self) -> None:
        text = "compress me " * 100
        with WebsocketsServer(echo, compression="deflate") as server:
            result = run(server.url(), "--compression", input=f"{text}\n".encode())
            offer = server.requests[0]["Sec-WebSocket-Extensions"]
        assert result.returncode == 0, result.stderr
        assert result.stdout == text + "\n"
        assert offer.startswith("permessage-deflate")

    def test_proxy_tunnels_through_http_connect(self) -> None:
        with WebsocketsServer(echo) as server, ConnectProxy() as proxy:
            result = run(server.url(), "--proxy", proxy.url(), input=b"through the proxy\n")
            assert server.wait_closes(1) == [(1000, "")]
        assert result.returncode == 0, result.stderr
        assert result.stdout == "through the proxy\n"
        assert proxy.tunnels == 1
        assert proxy.targets == [f"127.0.0.1:{server.port}"]

    def test_a_proxy_that_wants_credentials(self) -> None:
        with WebsocketsServer(echo) as server, ConnectProxy(auth=("user", "secret")) as proxy:
            result = run(server.url(), "--proxy", proxy.url(with_auth=False), input=b"x\n")
        assert result.returncode == 1
        assert "--proxy http://USER:PASSWORD@HOST:PORT" in result.stderr


class TestExitStatus:
    def test_a_refused_connection(self) -> None:
        port = free_port()
        result = run(f"ws://127.0.0.1:{port}/", input=b"never sent\n")
        assert result.returncode == 1
        assert result.stdout == ""
        (line,) = result.stderr.splitlines()  # one line, no traceback
        start = (
            f"wsfast: cannot connect to ws://127.0.0.1:{port}/: "
            f"connecting to the server at 127.0.0.1:{port} failed:"
        )
        assert line.startswith(start), line
        assert "refused" in line.lower()  # [Errno 111] on Linux, 61 on macOS, WinError 10061
        assert line.endswith("; is the server running, and are the host and port right?"), line

    def test_a_refused_upgrade_shows_the_status_and_body(self) -> None:
        with AiohttpServer() as server:
            result = run(server.url("/forbidden"), input=None)
        assert result.returncode == 1
        assert "403" in result.stderr
        assert "credentials" in result.stderr
        assert AiohttpServer.FORBIDDEN_BODY.decode() in result.stderr

    def test_an_abnormal_close_is_an_error(self) -> None:
        with WebsocketsServer(later(0.0, ["bye"], code=1011, reason="internal error")) as server:
            result = run(server.url(), input=None)
        assert result.returncode == 1
        assert result.stdout == "bye\n"
        assert "closed 1011 internal error" in result.stderr

    def test_going_away_is_a_normal_close(self) -> None:
        with WebsocketsServer(later(0.0, [], code=1001)) as server:
            result = run(server.url(), input=None)
        assert result.returncode == 0, result.stderr

    def test_stdout_closed_early(self) -> None:
        with FeedServer(messages=None) as feed:
            command = subprocess.Popen(
                [sys.executable, "-m", "wsfast", feed.url, "--no-stdin"],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=command_environment(),
            )
            assert command.stdout is not None
            head = [command.stdout.readline() for _ in range(3)]  # wsfast URL | head -3
            command.stdout.close()
            try:
                _, err = command.communicate(timeout=TIMEOUT)
            finally:
                command.kill()
        assert all(line.startswith(b'{"e":"trade"') for line in head)
        assert command.returncode == 0, err
        assert b"Traceback" not in err
        assert b"BrokenPipe" not in err


class TestHelp:
    def test_every_option_shows_its_default(self) -> None:
        parsers = {"wsfast URL": cli._client_parser()}
        commands = cli._command_parser()
        for action in commands._actions:
            if isinstance(action, argparse._SubParsersAction):
                parsers.update({f"wsfast {name}": parser for name, parser in action.choices.items()})
        assert set(parsers) == {"wsfast URL", *(f"wsfast {name}" for name in cli.COMMANDS)}
        for title, parser in parsers.items():
            text = parser.format_help()
            options = [
                action
                for action in parser._actions
                if action.option_strings and action.default is not argparse.SUPPRESS
            ]
            assert text.count("(default") == len(options), (title, text)

    def test_help_as_a_user_sees_it(self) -> None:
        client, feed = run("--help"), run("feed", "--help")
        assert client.returncode == feed.returncode == 0
        client_text, feed_text = " ".join(client.stdout.split()), " ".join(feed.stdout.split())  # unwrapped
        for expected in [
            "--timeout SECONDS Seconds for each blocking socket operation (the handshake, each send). "
            "(default: 15.0)",
            "--compression offer permessage-deflate (RFC 7692) (default: off)",
            "ALL_PROXY (default: direct)",
            "-H 'NAME: VALUE', --header 'NAME: VALUE' an extra handshake header (repeatable) (default: none)",
        ]:
            assert expected in client_text, expected
        assert "--port PORT TCP port (0: any free port) (default: 8765)" in feed_text
        assert "(default: as fast as the socket takes them)" in feed_text


# --------------------------------------------------------------------------------------------------
# wsfast feed --rate
# --------------------------------------------------------------------------------------------------


class TestPacer:
    def test_one_message_per_period_without_drift(self) -> None:
        """A sender that wakes up late by random amounts, on an injected clock: every message goes out at
        or after its deadline, late ones are made up at once, and after 10,000 periods the count is exact."""
        rate, start = 1000.0, 50.0
        pacer = Pacer(rate, start)
        rng = random.Random(3)
        now = start
        sent_at: list[float] = []
        while len(sent_at) < 10_000:
            count = pacer.due(now)
            sent_at += [now] * count
            pacer.advance(count)
            assert pacer.due(now) == 0
            now = max(now, pacer.next_at()) + rng.choice([0.0, 0.0, 0.0, 0.0002, 0.003])  # late wake-ups
        for index, when in enumerate(sent_at[:10_000]):
            assert when >= start + index / rate - 1e-9, index  # never early
            assert when <= start + index / rate + 0.003 + 1e-9, index  # late by at most one late wake-up
        assert math.floor((now - start) * rate) + 1 >= len(sent_at)

    def test_deadlines_are_from_the_start(self) -> None:
        pacer = Pacer(4.0, 10.0)
        assert pacer.due(9.0) == 0
        assert pacer.due(10.0) == 1  # message 0 is due at the start
        pacer.advance(1)
        assert pacer.next_at() == 10.25
        assert pacer.due(10.2499) == 0
        assert pacer.due(10.25) == 1
        assert pacer.due(11.0) == 4  # 1, 2, 3, 4 by now: made up at once, no drift
        pacer.advance(4)
        assert pacer.next_at() == 11.25

    @pytest.mark.parametrize("rate", [0.0, -1.0, math.inf, math.nan])
    def test_a_rate_must_be_positive(self, rate: float) -> None:
        with pytest.raises(ValueError, match="positive"):
            Pacer(rate, 0.0)


def arrival_times(url: str, timeout: float = TIMEOUT) -> list[float]:
    times: list[float] = []
    client = wsfast.WebSocketClient(lambda message: times.append(time.monotonic()), url)
    client.connect()
    assert client.wait(timeout), "the feed did not finish"
    return times


class TestFeedRate:
    def test_messages_are_spread_evenly_not_sent_in_a_burst(self) -> None:
        """The server never sends message i before start + i / rate, so the spread of arrivals has a lower
        bound that load cannot break (a late start only shrinks it by the first message's delay); the
        spacing statistics are reported, not held to wall-clock limits a loaded machine could miss."""
        rate, count = 200.0, 60
        with FeedServer(messages=count, rate=rate) as feed:
            times = arrival_times(feed.url)
        assert len(times) == count
        ideal = (count - 1) / rate
        spread = times[-1] - times[0]
        gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
        report = (
            f"spread {spread:.3f} s (ideal {ideal:.3f}), gap median {statistics.median(gaps) * 1e3:.2f} ms "
            f"(ideal {1e3 / rate:.2f}), stdev {statistics.pstdev(gaps) * 1e3:.2f} ms"
        )
        assert spread >= ideal * 0.5, report  # bursts of 1,000 arrived within a millisecond
        print(report)

    def test_feed_command_paces_what_the_client_command_prints(self) -> None:
        feed = subprocess.Popen(
            [sys.executable, "-m", "wsfast", "feed", "--port", "0", "--rate", "40", "--count", "12"],
            stdout=subprocess.PIPE,
            text=True,
            env=command_environment(),
        )
        try:
            assert feed.stdout is not None
            url = feed.stdout.readline().strip()
            assert url.startswith("ws://127.0.0.1:")
            with Wsfast(url, "--no-stdin") as command:
                arrivals = []
                for _ in range(12):
                    assert command.read_line().startswith('{"e":"trade"')
                    arrivals.append(time.monotonic())
                status, _, err = command.finish()
        finally:
            feed.terminate()
            feed.wait(TIMEOUT)
        assert status == 0, err
        assert "closed 1000 feed complete" in err
        assert arrivals[-1] - arrivals[0] >= 0.5 * 11 / 40

    @pytest.mark.parametrize("rate", ["0", "-5", "fast"])
    def test_a_bad_rate(self, rate: str) -> None:
        result = run("feed", "--rate", rate)
        assert result.returncode == 2
        assert "--rate" in result.stderr
