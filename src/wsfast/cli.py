"""The ``wsfast`` command.

``wsfast URL`` connects and prints each message (text as is, binary as a hex line), with a live
messages-per-second line on stderr; Ctrl-C closes cleanly with 1000. ``-o NAME=VALUE`` sets a client
option (:mod:`wsfast.options`, listed by ``wsfast --help`` and ``wsfast options``).

``wsfast demo`` (also plain ``wsfast``) starts the embedded market-data feed (:mod:`wsfast.feed`) in a
child process on 127.0.0.1 and consumes it, so it works offline and shows what the client sustains.
``wsfast feed`` runs that feed alone, ``wsfast codec`` measures the frame decoder of both implementations
on an in-memory feed, and ``wsfast options`` describes every client option.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from typing import IO, Any

from . import __version__, implementation
from . import options as client_options
from .client import WebSocketClient
from .exceptions import OptionError, WebSocketError
from .uri import redact

__all__ = ["main"]

COMMANDS = ("demo", "feed", "codec", "options")


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

    def start(self) -> None:
        self.started = time.monotonic()
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
    if isinstance(message, bytes):
        return f"<binary {len(message)} bytes> {message[:64].hex()}{'...' if len(message) > 64 else ''}"
    if pretty_json:
        try:
            return json.dumps(json.loads(message), indent=2, ensure_ascii=False)
        except ValueError:
            return message
    return message


def run_client(args: argparse.Namespace) -> int:
    """``wsfast URL``: connect, send, print each message until closed, --count or Ctrl-C."""
    meter = RateMeter(sys.stderr)
    out = sys.stdout
    done = threading.Event()
    client: WebSocketClient

    def on_message(message: Any) -> None:
        if args.count and meter.messages >= args.count:
            return  # messages already in flight after the CLOSE we sent
        meter.messages += 1
        meter.bytes += len(message)
        if not args.quiet:
            out.write(_format(message, args.json) + "\n")
        if args.count and meter.messages >= args.count:
            client.disconnect()

    def on_close(code: int, reason: str) -> None:
        done.set()

    try:
        settings = _option_values(args)
    except OptionError as exc:
        print(f"wsfast: {exc}", file=sys.stderr)
        return 2
    try:
        client = WebSocketClient(on_message, args.url, on_close=on_close, **settings)
        response = client.connect()
    except (WebSocketError, OSError) as exc:
        print(f"wsfast: cannot connect to {redact(args.url)}: {exc}", file=sys.stderr)
        body = getattr(exc, "body", b"")
        if body:
            print(body.decode("utf-8", "replace")[:2000], file=sys.stderr)
        return 1
    print(f"connected to {redact(args.url)} (HTTP {response.status}, {implementation})", file=sys.stderr)
    meter.start()
    try:
        for text in args.send:
            client.send(text)
        while not done.wait(0.2):
            pass
    except KeyboardInterrupt:
        client.disconnect(1000)
    finally:
        client.wait(5)
        out.flush()
        summary = meter.stop()
    print(
        f"closed {client.close_code} {client.close_reason or ''}".rstrip() + f"; {summary}", file=sys.stderr
    )
    return 0 if client.close_code in (1000, 1001, 1005) else 1


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


def _option_values(args: argparse.Namespace) -> dict[str, Any]:
    """The client options from the dedicated flags and ``-o NAME=VALUE``, validated by wsfast.options."""
    raw: dict[str, Any] = {"timeout": args.timeout, "max_message_size": args.max_message_size}
    if args.header:
        raw["headers"] = list(args.header)
    if args.insecure:
        raw["ssl"] = False
    for item in args.option:
        name, sep, value = item.partition("=")
        name = name.strip().replace("-", "_")
        if not sep or not name:
            raise OptionError(f"-o takes NAME=VALUE, not {item!r}")
        if name in _RESERVED:
            raise OptionError(f"option {name!r} cannot be set from the command line")
        raw[name] = value
    values = client_options.validate(raw, client_options.THREADED, from_text=True)
    for name, value in values.items():
        if not client_options.get_option(name).serialisable:
            raise OptionError(f"option {name!r} ({type(value).__name__}) cannot be set from the command line")
    return values


def _client_parser() -> argparse.ArgumentParser:
    timeout = client_options.get_option("timeout", client_options.THREADED)
    max_size = client_options.get_option("max_message_size", client_options.THREADED)
    parser = argparse.ArgumentParser(
        prog="wsfast",
        description="Connect to a WebSocket URL and print its messages. "
        "Other commands: 'wsfast demo' (the default), 'wsfast feed', 'wsfast codec', 'wsfast options'.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="client options for -o NAME=VALUE (wsfast.WebSocketClient):\n"
        + client_options.render_text(client_options.THREADED, settable=True),
    )
    parser.add_argument("--version", action="version", version=f"wsfast {__version__} ({implementation})")
    parser.add_argument("url", help="ws:// or wss:// URL")
    parser.add_argument("--send", action="append", default=[], metavar="TEXT", help="send after connecting")
    parser.add_argument("--count", type=int, default=0, metavar="N", help="close after N messages")
    parser.add_argument(
        "--header", action="append", default=[], metavar="'NAME: VALUE'", help="an extra handshake header"
    )
    parser.add_argument(
        "--insecure", action="store_true", help="do not verify the TLS certificate (ssl=false)"
    )
    parser.add_argument("--json", action="store_true", help="pretty-print JSON text messages")
    parser.add_argument("--quiet", action="store_true", help="print only the rate, not the messages")
    parser.add_argument(
        "--timeout",
        default=timeout.default,
        metavar="SECONDS",
        help=f"{timeout.description} ({timeout.default:g})",
    )
    parser.add_argument(
        "--max-message-size",
        default=max_size.default,
        metavar="BYTES",
        help=f"{max_size.description} (64 MiB)",
    )
    parser.add_argument(
        "-o",
        "--option",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="any client option below (repeatable); strings are coerced to the option's type",
    )
    return parser


def _command_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="wsfast")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="consume the embedded local feed and show the rate")
    demo.add_argument("--count", type=int, default=500_000, help="messages (default 500,000)")
    feed = commands.add_parser("feed", help="serve the embedded market-data feed on 127.0.0.1")
    feed.add_argument("--port", type=int, default=8765)
    feed.add_argument("--count", type=int, default=0, help="messages per connection (0: endless)")
    feed.add_argument("--rate", type=float, default=None, help="messages per second (default: max)")
    feed.add_argument(
        "--wait-subscribe", action="store_true", help="stream after the client's first text message"
    )
    codec = commands.add_parser("codec", help="decode an in-memory feed with both implementations")
    codec.add_argument("--count", type=int, default=200_000)
    listing = commands.add_parser("options", help="describe every client option (wsfast.options)")
    listing.add_argument("--client", choices=("all", *client_options.CLIENTS), default="all")
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
