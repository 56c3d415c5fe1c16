"""The ``wsfast`` command.

``wsfast URL`` connects, sends each line read from stdin as a message (TEXT; ``--binary`` sends the line's
bytes, ``--hex`` decodes hex first) and prints each message received as it arrives (text as is, binary as
``<binary N bytes> HEX``, ``--json`` pretty-prints JSON). The end of stdin closes the connection with 1000
after the lines before it are sent, as does Ctrl-C. When stdin is not a terminal and is empty
(``< /dev/null``, cron, a service) the command just listens, as with ``--no-stdin``; ``--count N`` keeps
listening until N messages. The exit status is 0 after a normal close (1000, 1001, 1005), 1 when the
connection failed or ended otherwise (or a line could not be sent), 2 for a bad command line.

``--cafile``, ``--insecure``, ``-H 'Name: value'``, ``--compression`` and ``--proxy`` set client options
(:mod:`wsfast.options`), as ``-o NAME=VALUE`` sets any other; ``wsfast --help`` lists them. docs/cli.md is
the guide.

``wsfast demo`` (also plain ``wsfast``) starts the embedded market-data feed (:mod:`wsfast.feed`) in a
child process on 127.0.0.1 and consumes it, so it works offline and shows what the client sustains.
``wsfast feed`` runs that feed alone (``--rate N`` paces it evenly), ``wsfast codec`` measures the frame
decoder of both implementations on an in-memory feed, and ``wsfast options`` describes every client
option.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import ssl
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import IO, Any

from . import __version__, implementation
from . import options as client_options
from .client import WebSocketClient
from .exceptions import (
    ConnectionClosed,
    HandshakeError,
    InvalidStatus,
    OpeningError,
    OpenTimeout,
    OptionError,
    ProxyError,
    TLSError,
    WebSocketError,
)
from .uri import redact

__all__ = ["main"]

COMMANDS = ("demo", "feed", "codec", "options")

# Close codes after which the command exits 0: RFC 6455 §7.4.1 normal closure, going away, and no code.
NORMAL_CLOSE_CODES = frozenset({1000, 1001, 1005})
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class RateMeter:
    """Counts messages and bytes and shows a live rate line on a stream (a TTY gets it in place)."""

    def __init__(self, stream: IO[str], interval: float = 0.5) -> None:
        self.messages = 0
        self.bytes = 0
        self.started = time.monotonic()
        self._stream = stream
        self._interval = interval
        self._tty = stream.isatty()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self, live: bool = True) -> None:
        """Start counting; *live* also shows the rate line every *interval* (a TTY) or 2 s (a file)."""
        self.started = time.monotonic()
        if live:
            self._thread.start()

    def _line(self) -> str:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        return (
            f"{self.messages:,} messages in {elapsed:.1f} s: {self.messages / elapsed:,.0f} msg/s, "
            f"{self.bytes / elapsed / 2**20:,.1f} MiB/s"
        )

    def _run(self) -> None:
        while not self._stop.wait(self._interval if self._tty else 2.0):
            self._stream.write(("\r" + self._line() + "  ") if self._tty else self._line() + "\n")
            self._stream.flush()

    def stop(self) -> str:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
            if self._tty:
                self._stream.write("\r" + " " * 78 + "\r")
        return self._line()


def _format(message: str | bytes, pretty_json: bool) -> str:
    """A received message as printed: text as is (JSON pretty-printed with *pretty_json*), binary as
    ``<binary N bytes> HEX``."""
    if isinstance(message, bytes):
        return f"<binary {len(message)} bytes> {message.hex()}"
    if pretty_json:
        try:
            return json.dumps(json.loads(message), indent=2, ensure_ascii=False)
        except ValueError:
            return message
    return message


def _error(text: str) -> None:
    print(f"wsfast: {text}", file=sys.stderr, flush=True)


def _encode_line(line: bytes, mode: str) -> str | bytes:
    """One stdin line, without its line end, as the message to send.

    *mode* ``"text"``: a TEXT message, the line decoded as UTF-8; ``"binary"``: a BINARY message of the
    line's bytes; ``"hex"``: a BINARY message of the bytes the line spells in hex (``"00ff 10"``,
    whitespace ignored).

    Raises:
        ValueError: the line is not UTF-8 (text) or not hex (hex); the message says what to do.
    """
    if mode == "binary":
        return line
    if mode == "hex":
        try:
            return bytes.fromhex(line.decode("ascii"))
        except ValueError:
            raise ValueError("not hex: give pairs of hex digits, spaces allowed (0a ff 10)") from None
    try:
        return line.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("not UTF-8, so not a TEXT message: send bytes with --binary") from None


@dataclass
class _Input:
    """What the stdin reader tells the main thread."""

    ended: threading.Event
    lines: int = 0
    rejected: int = 0


def _lines(fd: int) -> Iterator[bytes]:
    """The lines read from file descriptor *fd*, without their ``\n``, until its end.

    It reads the descriptor with ``os.read`` rather than ``sys.stdin.buffer``: a daemon thread blocked
    in the buffered reader holds its lock, and Python's shutdown then aborts ("could not acquire lock
    for <_io.BufferedReader name='<stdin>'>") when the connection ends before stdin does.
    """
    buffer = bytearray()
    while chunk := os.read(fd, 65536):
        scanned = len(buffer)  # a long line is searched once, not again for each chunk
        buffer += chunk
        start = 0
        while (end := buffer.find(b"\n", max(start, scanned))) >= 0:
            yield bytes(buffer[start:end])
            start = end + 1
        del buffer[:start]
    if buffer:
        yield bytes(buffer)  # a last line without its line end


def _read_lines(fd: int, mode: str, send: Any, state: _Input) -> None:
    """Send each line read from *fd* until its end (the stdin reader's thread)."""
    try:
        for raw in _lines(fd):
            state.lines += 1
            line = raw[:-1] if raw.endswith(b"\r") else raw
            try:
                message = _encode_line(line, mode)
            except ValueError as exc:
                state.rejected += 1
                _error(f"line {state.lines} not sent: {exc}")
                continue
            send(message)
    except ConnectionClosed:
        pass  # the connection ended: the main thread reports how
    except OSError:
        pass  # stdin closed or unreadable: nothing more to send
    finally:
        state.ended.set()


def _stdin() -> tuple[int | None, bool]:
    """The standard input's file descriptor, and whether it is a terminal (``None``: there is none, or
    a stream without a descriptor stands in for it)."""
    stdin = sys.stdin
    if stdin is None:
        return None, False
    try:
        fd = stdin.fileno()
        return fd, os.isatty(fd)
    except (OSError, ValueError, AttributeError):
        return None, False


def _hint(exc: BaseException) -> str:
    """What to do about a connection that could not be opened."""
    if isinstance(exc, OpenTimeout):
        return "check the host, the port and --proxy, or wait longer with -o open_timeout=SECONDS"
    if isinstance(exc, ProxyError):
        if exc.status == 407:
            return "the proxy wants credentials: --proxy http://USER:PASSWORD@HOST:PORT"
        return "check the --proxy URL and that the proxy allows this destination"
    if isinstance(exc, TLSError):
        cause = exc.__cause__
        if isinstance(cause, ssl.SSLCertVerificationError) or "certificate verify failed" in str(exc):
            return (
                "the server's certificate did not verify: trust its CA with --cafile PATH, "
                "or skip the check with --insecure (tests only)"
            )
        return "is this port TLS? a plain server takes a ws:// URL, not wss://"
    if isinstance(exc, OpeningError):
        if exc.hop == "proxy":
            return "is the proxy running, and is the --proxy URL right?"
        return "is the server running, and are the host and port right?"
    if isinstance(exc, InvalidStatus):
        if exc.status in (401, 403):
            return "does it need credentials? -H 'Authorization: ...' or user:password@ in the URL"
        if exc.status == 404:
            return "no WebSocket endpoint at this path: check the URL's path"
        return "the server refused the upgrade: check the URL and the headers it needs (-H)"
    if isinstance(exc, HandshakeError):
        return "is this a WebSocket endpoint? check the URL"
    return "check the URL"


def run_client(args: argparse.Namespace) -> int:
    """``wsfast URL``: connect, send stdin's lines, print each message until closed, --count or Ctrl-C."""
    try:
        settings = _option_values(args)
    except OptionError as exc:
        _error(str(exc))
        return EXIT_USAGE
    stdin_fd, interactive = (None, False) if args.no_stdin else _stdin()
    mode = "hex" if args.hex else "binary" if args.binary else "text"
    meter = RateMeter(sys.stderr)
    out = sys.stdout
    done = threading.Event()
    broken_pipe = False
    client: WebSocketClient

    def on_message(message: Any) -> None:
        nonlocal broken_pipe
        if args.count and meter.messages >= args.count:
            return  # messages already in flight after the CLOSE we sent
        meter.messages += 1
        meter.bytes += len(message)
        if not args.quiet and not broken_pipe:
            try:
                out.write(_format(message, args.json) + "\n")
                out.flush()  # as it arrives, also into a pipe
            except BrokenPipeError:  # wsfast URL | head -3
                broken_pipe = True
                client.disconnect()
        if args.count and meter.messages >= args.count:
            client.disconnect()

    def on_close(code: int, reason: str) -> None:
        done.set()

    try:
        client = WebSocketClient(on_message, args.url, on_close=on_close, **settings)
    except OptionError as exc:
        _error(str(exc))
        return EXIT_USAGE
    except WebSocketError as exc:
        _error(f"cannot connect to {redact(args.url)}: {exc}")
        return EXIT_FAILED
    if settings.get("ssl") is False:
        _error(
            "warning: --insecure: the server's certificate is not verified; anyone on the way can read "
            "and change this connection"
        )
    try:
        response = client.connect()
    except (WebSocketError, OSError) as exc:
        _error(f"cannot connect to {redact(args.url)}: {exc}; {_hint(exc)}")
        body = getattr(exc, "body", b"")
        if body:
            print(body.decode("utf-8", "replace")[:2000], file=sys.stderr)
        return EXIT_FAILED
    print(f"connected to {redact(args.url)} (HTTP {response.status}, {implementation})", file=sys.stderr)
    if interactive:
        print("type a message and Enter to send it; Ctrl-D or Ctrl-C closes", file=sys.stderr, flush=True)
    meter.start(live=not interactive)  # a live line would overwrite what is being typed
    state = _Input(threading.Event())
    try:
        for text in args.send:
            client.send(text)
        if stdin_fd is not None:
            reader = threading.Thread(
                target=_read_lines,
                args=(stdin_fd, mode, client.send, state),
                name="wsfast-stdin",
                daemon=True,
            )
            reader.start()
        while not done.wait(0.1):
            # The end of stdin closes, unless stdin had nothing to say (not a terminal, no line: listen)
            # or --count decides when to stop.
            if state.ended.is_set() and not args.count and (state.lines or interactive):
                client.disconnect(1000)
                break
    except ConnectionClosed:
        pass  # a --send after the server closed: reported below
    except KeyboardInterrupt:
        try:
            client.disconnect(1000)
        except KeyboardInterrupt:
            _error("interrupted again: connection dropped without a closing handshake")
            return EXIT_INTERRUPTED
    with contextlib.suppress(KeyboardInterrupt):
        client.wait(5)
    with contextlib.suppress(BrokenPipeError):
        out.flush()
    if broken_pipe:
        _silence_stdout()
    summary = meter.stop()
    code = client.close_code
    print(f"closed {code} {client.close_reason or ''}".rstrip() + f"; {summary}", file=sys.stderr)
    if state.rejected:
        _error(f"{state.rejected} line(s) of stdin were not sent")
        return EXIT_FAILED
    return EXIT_OK if code in NORMAL_CLOSE_CODES else EXIT_FAILED


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so that flushing it at exit after the reader left (a broken pipe)
    prints no error (the advice of Python's signal module documentation)."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


def run_demo(args: argparse.Namespace) -> int:
    """``wsfast demo``: consume the embedded feed from a child process and report the rate."""
    command = [
        sys.executable,
        "-m",
        "wsfast",
        "feed",
        "--port",
        "0",
        "--count",
        str(args.count),
        "--wait-subscribe",
    ]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        url = server.stdout.readline().strip()
        if not url.startswith("ws://"):
            print("wsfast: the embedded feed did not start", file=sys.stderr)
            return 1
        samples: list[str] = []
        meter = RateMeter(sys.stderr)

        def on_message(message: Any) -> None:
            meter.messages += 1
            meter.bytes += len(message)
            if len(samples) < 3:
                samples.append(message)

        closed: list[tuple[int, str]] = []
        client = WebSocketClient(on_message, url, on_close=lambda code, reason: closed.append((code, reason)))
        print(f"wsfast {__version__} ({implementation} implementation) <- embedded feed at {url}")
        client.connect()
        meter.start()
        client.send('{"method":"SUBSCRIBE","params":["btcusdt@trade"],"id":1}')
        try:
            while not client.wait(0.2):
                pass
        except KeyboardInterrupt:
            client.disconnect()
            client.wait(5)
        summary = meter.stop()
        for sample in samples:
            print(f"  {sample}")
        code, reason = closed[0] if closed else (None, "")
        print(f"{summary}\nclosed by the feed: {code} {reason}")
        return 0 if code == 1000 else 1
    finally:
        server.terminate()
        server.wait(10)


def run_feed(args: argparse.Namespace) -> int:
    """``wsfast feed``: serve the embedded market-data feed until interrupted."""
    from .feed import FeedServer

    with FeedServer(
        messages=args.count or None, rate=args.rate, port=args.port, wait_for_subscribe=args.wait_subscribe
    ) as feed:
        print(feed.url, flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()
    return 0


def run_codec(args: argparse.Namespace) -> int:
    from ._codec_bench import codec_demo

    return codec_demo(args.count)


def run_options(args: argparse.Namespace) -> int:
    """``wsfast options``: the client options, as text or as ``docs/options.md``."""
    if args.markdown or args.write or args.check:
        return client_options.write_docs(args.write, args.check)
    client = None if args.client == "all" else args.client
    print(client_options.render_text(client))
    return 0


# Options the command sets itself (or takes through a dedicated flag), not through -o.
_RESERVED = frozenset({"callback", "on_close"})

# The client options the dedicated flags set, and the flags: -o cannot set them a second time.
_FLAGS = {
    "ssl": "--cafile/--insecure",
    "headers": "-H/--header",
    "compression": "--compression",
    "proxy": "--proxy",
}


def _ca_context(path: str) -> ssl.SSLContext:
    """A verifying client context that trusts the CA certificates in *path* (PEM) instead of the
    system's."""
    try:
        return ssl.create_default_context(cafile=path)
    except (OSError, ssl.SSLError) as exc:
        raise OptionError(f"--cafile {path}: cannot load CA certificates (PEM) from it: {exc}") from None


def _option_values(args: argparse.Namespace) -> dict[str, Any]:
    """The client options from the dedicated flags and ``-o NAME=VALUE``, validated by wsfast.options."""
    raw: dict[str, Any] = {"timeout": args.timeout, "max_message_size": args.max_message_size}
    flagged: dict[str, Any] = {}
    for line in args.header:
        try:  # one at a time, so the message names the bad one
            client_options.validate({"headers": [line]}, client_options.THREADED, from_text=True)
        except OptionError as exc:
            raise OptionError(f"-H {line!r}: {exc}") from None
    if args.header:
        flagged["headers"] = list(args.header)
    if (args.cafile or args.insecure) and not args.url.lower().startswith("wss://"):
        flag = "--cafile" if args.cafile else "--insecure"
        raise OptionError(f"{flag} applies to wss:// URLs only: use a wss:// URL, or leave {flag} out")
    if args.cafile:
        flagged["ssl"] = _ca_context(args.cafile)
    if args.insecure:
        flagged["ssl"] = False
    if args.compression:
        flagged["compression"] = args.compression
    if args.proxy:
        flagged["proxy"] = args.proxy
    raw.update(flagged)
    for item in args.option:
        name, sep, value = item.partition("=")
        name = name.strip().replace("-", "_")
        if not sep or not name:
            raise OptionError(f"-o takes NAME=VALUE, not {item!r}")
        if name in _RESERVED:
            raise OptionError(f"option {name!r} cannot be set from the command line")
        if name in flagged:
            raise OptionError(f"-o {name}=... and {_FLAGS[name]} both set option {name!r}: give one of them")
        raw[name] = value
    values = client_options.validate(raw, client_options.THREADED, from_text=True)
    for name, value in values.items():
        if name not in flagged and not client_options.get_option(name).serialisable:
            raise OptionError(f"option {name!r} ({type(value).__name__}) cannot be set from the command line")
    return values


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Every option's help ends with its default: the value argparse holds, "off" for a flag, or the
    words the help text already gives (for defaults such as "as fast as the socket takes them")."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if not action.option_strings or action.default is argparse.SUPPRESS or "(default" in text:
            return text
        if action.nargs == 0:
            return f"{text} (default: off)" if action.default in (None, False) else text
        if action.default in (None, []):
            return f"{text} (default: none)"
        return f"{text} (default: %(default)s)"


def _client_parser() -> argparse.ArgumentParser:
    timeout = client_options.get_option("timeout", client_options.THREADED)
    max_size = client_options.get_option("max_message_size", client_options.THREADED)
    parser = argparse.ArgumentParser(
        prog="wsfast",
        description=textwrap.dedent(
            """\
            Connect to a WebSocket URL, send each line of stdin as a message and print each message
            received as it arrives. The end of stdin or Ctrl-C closes with 1000; a stdin that is not
            a terminal and is empty (< /dev/null) just listens, as --no-stdin does.
            Exit status: 0 after a normal close, 1 when the connection failed or ended otherwise,
            2 for a bad command line.

            Other commands: 'wsfast demo' (the default), 'wsfast feed', 'wsfast codec',
            'wsfast options'. Guide: docs/cli.md."""
        ),
        formatter_class=_HelpFormatter,
        epilog="client options for -o NAME=VALUE (wsfast.WebSocketClient):\n"
        + client_options.render_text(client_options.THREADED, settable=True),
    )
    parser.add_argument("--version", action="version", version=f"wsfast {__version__} ({implementation})")
    parser.add_argument("url", help="ws:// or wss:// URL")
    sending = parser.add_argument_group("sending")
    sending.add_argument(
        "--send",
        action="append",
        default=[],
        metavar="TEXT",
        help="send after connecting, before stdin's lines (repeatable)",
    )
    sending.add_argument(
        "--binary",
        action="store_true",
        help="send each line as a BINARY message of its bytes (without the line end)",
    )
    sending.add_argument(
        "--hex",
        action="store_true",
        help="send each line as a BINARY message of the bytes it spells in hex ('00ff 10')",
    )
    sending.add_argument(
        "--no-stdin",
        action="store_true",
        help="do not read stdin: just listen until the server closes, --count or Ctrl-C",
    )
    receiving = parser.add_argument_group("receiving")
    receiving.add_argument(
        "--count",
        type=int,
        default=0,
        metavar="N",
        help="close after N messages; with N, the end of stdin does not close (0: no limit)",
    )
    receiving.add_argument("--json", action="store_true", help="pretty-print JSON text messages")
    receiving.add_argument("--quiet", action="store_true", help="print only the rate, not the messages")
    connection = parser.add_argument_group("connection")
    connection.add_argument(
        "-H",
        "--header",
        action="append",
        default=[],
        metavar="'NAME: VALUE'",
        help="an extra handshake header (repeatable)",
    )
    tls = connection.add_mutually_exclusive_group()
    tls.add_argument(
        "--cafile",
        metavar="PATH",
        help="trust the CA certificates in this PEM file instead of the system's (default: the system's)",
    )
    tls.add_argument(
        "--insecure",
        action="store_true",
        help="do not verify the server's TLS certificate (ssl=false; tests only)",
    )
    connection.add_argument(
        "--compression", action="store_const", const="deflate", help="offer permessage-deflate (RFC 7692)"
    )
    connection.add_argument(
        "--proxy",
        metavar="URL",
        help="http://, https://, socks5://, socks5h://, socks4:// or socks4a:// "
        "proxy, [user:password@]host:port; 'true' reads HTTPS_PROXY/HTTP_PROXY/ALL_PROXY "
        "(default: direct)",
    )
    connection.add_argument("--timeout", default=timeout.default, metavar="SECONDS", help=timeout.description)
    connection.add_argument(
        "--max-message-size",
        default=max_size.default,
        metavar="BYTES",
        help=f"{max_size.description} (default: {max_size.default} = 64 MiB)",
    )
    connection.add_argument(
        "-o",
        "--option",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="any client option below (repeatable); strings are coerced to the option's type",
    )
    return parser


def _positive_rate(text: str) -> float:
    try:
        rate = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 < rate < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of messages per second, not {text}")
    return rate


def _command_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="wsfast", formatter_class=_HelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)

    def add(name: str, description: str) -> argparse.ArgumentParser:
        return commands.add_parser(
            name, help=description, description=description, formatter_class=_HelpFormatter
        )

    demo = add("demo", "consume the embedded local feed and show the rate")
    demo.add_argument("--count", type=int, default=500_000, help="messages")
    feed = add("feed", "serve the embedded market-data feed on 127.0.0.1")
    feed.add_argument("--port", type=int, default=8765, help="TCP port (0: any free port)")
    feed.add_argument("--count", type=int, default=0, help="messages per connection (0: endless)")
    feed.add_argument(
        "--rate",
        type=_positive_rate,
        default=None,
        metavar="N",
        help="messages per second, evenly paced: one every 1/N s on a schedule that does not drift "
        "(default: as fast as the socket takes them)",
    )
    feed.add_argument(
        "--wait-subscribe", action="store_true", help="stream after the client's first text message"
    )
    codec = add("codec", "decode an in-memory feed with both implementations")
    codec.add_argument("--count", type=int, default=200_000, help="messages")
    listing = add("options", "describe every client option (wsfast.options)")
    listing.add_argument("--client", choices=("all", *client_options.CLIENTS), default="all", help="client")
    output = listing.add_mutually_exclusive_group()
    output.add_argument("--markdown", action="store_true", help="print docs/options.md")
    output.add_argument("--write", metavar="PATH", help="write docs/options.md to PATH")
    output.add_argument("--check", metavar="PATH", help="exit 1 if PATH is not up to date")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if not arguments:
        arguments = ["demo"]
    if arguments[0] in COMMANDS:
        args = _command_parser().parse_args(arguments)
        runner = {"demo": run_demo, "feed": run_feed, "codec": run_codec, "options": run_options}[
            args.command
        ]
        return runner(args)
    return run_client(_client_parser().parse_args(arguments))
