"""permessage-deflate (RFC 7692): negotiation, inflation in both codec twins, the bomb guard, RSV1 rules,
and both clients against real servers (websockets, aiohttp) with compression."""

from __future__ import annotations

import asyncio
import threading
import types
import zlib
from typing import Any

import pytest

import wsfast
from helpers import BINARY, CONT, PING, TEXT, decode_variants, frame, outcome
from wsfast import (
    Deflate,
    InvalidCompressedDataError,
    InvalidHeader,
    InvalidUTF8Error,
    MessageTooBigError,
    ProtocolError,
)
from wsfast.deflate import Compressor, Negotiated, NegotiationError, parse_extensions
from wsfast.handshake import ClientHandshake, accept_key
from wsfast.http11 import Headers, Response

pytest_plugins = ["conftest_client"]

TAIL = b"\x00\x00\xff\xff"
ORDER_BOOK = ('{"bids":[' + ",".join(f'["{60000 - i * 0.5:.2f}","1.25"]' for i in range(400)) + "]}").encode()


def deflate(payload: bytes, compressor: Any = None, wbits: int = 15) -> bytes:
    """What a server sends: raw DEFLATE, sync-flushed, tail removed (RFC 7692 §7.2.1).

    (zlib compresses with 9 bits when asked for 8, as real servers built on zlib do.)
    """
    compressor = compressor or zlib.compressobj(6, zlib.DEFLATED, -max(wbits, 9))
    data = compressor.compress(payload) + compressor.flush(zlib.Z_SYNC_FLUSH)
    assert data.endswith(TAIL)
    return data[:-4]


def rsv1_frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    return frame(opcode, payload, fin=fin, rsv=0b100)


class TestNegotiation:
    def test_offers_list_alternatives_most_preferred_first(self) -> None:
        assert Deflate().offers() == [
            "permessage-deflate; client_no_context_takeover; client_max_window_bits",
            "permessage-deflate",
        ]
        offers = Deflate(server_max_window_bits=10, server_no_context_takeover=True).offers()
        assert offers[0].startswith(
            "permessage-deflate; server_no_context_takeover; server_max_window_bits=10"
        )
        assert offers[-1] == "permessage-deflate"

    @pytest.mark.parametrize(
        ("answer", "expected"),
        [
            ("permessage-deflate", Negotiated(client_no_context_takeover=True)),
            (
                "permessage-deflate; server_no_context_takeover; server_max_window_bits=9",
                Negotiated(True, True, 9, 15),
            ),
            ("permessage-deflate; client_max_window_bits=10", Negotiated(False, True, 15, 10)),
            ('permessage-deflate; client_max_window_bits="12"', Negotiated(False, True, 15, 12)),
        ],
    )
    def test_valid_answers(self, answer: str, expected: Negotiated) -> None:
        assert Deflate().negotiate([answer]) == expected

    @pytest.mark.parametrize(
        "answer",
        [
            "permessage-deflate; unknown_param",
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
            "permessage-deflate; server_max_window_bits=7",
            "permessage-deflate; server_max_window_bits=16",
            "permessage-deflate; server_max_window_bits=010",
            "permessage-deflate; server_max_window_bits",
            "permessage-deflate; client_max_window_bits",
            "permessage-deflate; server_no_context_takeover=1",
            "permessage-deflate, permessage-deflate",
            "permessage-deflate; =x",
        ],
    )
    def test_invalid_answers_are_rejected(self, answer: str) -> None:
        with pytest.raises(NegotiationError):
            Deflate().negotiate([answer])

    def test_client_window_larger_than_offered_or_not_offered(self) -> None:
        with pytest.raises(NegotiationError):
            Deflate(client_max_window_bits=10).negotiate(["permessage-deflate; client_max_window_bits=12"])
        with pytest.raises(NegotiationError):
            Deflate(client_max_window_bits=False).negotiate(["permessage-deflate; client_max_window_bits=12"])

    def test_no_deflate_in_the_answer(self) -> None:
        assert Deflate().negotiate([]) is None

    def test_options_are_checked(self) -> None:
        with pytest.raises(ValueError, match="client_max_window_bits"):
            Deflate(client_max_window_bits=8)
        with pytest.raises(ValueError, match="server_max_window_bits"):
            Deflate(server_max_window_bits=16)
        with pytest.raises(TypeError):
            Deflate(zlib_backend=types)  # type: ignore[arg-type]

    def test_parse_extensions(self) -> None:
        assert parse_extensions(["a; b=1, c", "d"]) == [("a", [("b", "1")]), ("c", []), ("d", [])]

    def test_handshake_fails_with_a_clear_error(self) -> None:
        handshake = ClientHandshake("ws://h/", compression="deflate")
        assert "permessage-deflate; client_no_context_takeover" in handshake.request().decode()
        headers = Headers(
            {
                "Upgrade": "websocket",
                "Connection": "Upgrade",
                "Sec-WebSocket-Accept": accept_key(handshake.key),
                "Sec-WebSocket-Extensions": "permessage-deflate; server_max_window_bits=20",
            }
        )
        with pytest.raises(InvalidHeader, match="server_max_window_bits"):
            handshake._check(Response(101, "Switching Protocols", headers))

    def test_unknown_compression_option(self) -> None:
        with pytest.raises(ValueError, match="compression"):
            ClientHandshake("ws://h/", compression="brotli")


class TestInflation:
    """The decoder inflates compressed messages; both twins, every split of the stream."""

    def test_messages_fragments_and_context_takeover(self, impl: Any) -> None:
        compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
        first, second = deflate(ORDER_BOOK, compressor), deflate(ORDER_BOOK, compressor)
        assert len(second) < len(first) / 4  # the second message refers back to the first
        stream = (
            rsv1_frame(TEXT, first)
            + frame(PING, b"p")
            + rsv1_frame(TEXT, second[:10], fin=False)
            + frame(CONT, second[10:20], fin=False)
            + frame(PING, b"q")
            + frame(CONT, second[20:])
            + frame(BINARY, b"plain")
            + rsv1_frame(BINARY, deflate(b"", compressor))
        )
        messages, error = decode_variants(lambda: impl.Decoder(compression=Negotiated()), stream)
        assert error is None
        assert messages == [
            ORDER_BOOK.decode(),
            wsfast.Ping(b"p"),
            wsfast.Ping(b"q"),
            ORDER_BOOK.decode(),
            b"plain",
            b"",
        ]

    def test_no_context_takeover_resets_the_inflater(self, impl: Any) -> None:
        stream = b"".join(rsv1_frame(BINARY, deflate(ORDER_BOOK)) for _ in range(3))
        negotiated = Negotiated(server_no_context_takeover=True)
        messages, error = decode_variants(lambda: impl.Decoder(compression=negotiated), stream)
        assert (messages, error) == ([ORDER_BOOK] * 3, None)

    @pytest.mark.parametrize("wbits", [8, 9, 12, 15])
    def test_server_window_sizes(self, impl: Any, wbits: int) -> None:
        data = deflate(ORDER_BOOK, wbits=wbits)
        decoder = impl.Decoder(compression=Negotiated(server_max_window_bits=wbits))
        assert decoder.feed(rsv1_frame(BINARY, data)) == [ORDER_BOOK]

    def test_text_and_loads_options_apply_to_inflated_text(self, impl: Any) -> None:
        decoder = impl.Decoder(compression=Negotiated(), loads=lambda data: (type(data), len(data)))
        assert decoder.feed(rsv1_frame(TEXT, deflate(ORDER_BOOK))) == [(bytes, len(ORDER_BOOK))]

    def test_invalid_utf8_inside_compressed_text_fails_fast(self, impl: Any) -> None:
        data = deflate(b"\xff" + b"x" * 10_000)
        decoder = impl.Decoder(compression=Negotiated())
        with pytest.raises(wsfast.InvalidUTF8Error):
            decoder.feed(rsv1_frame(TEXT, data)[:20])  # the message has not fully arrived

    def test_corrupt_data_fails_with_1007(self, impl: Any) -> None:
        messages, error = decode_variants(
            lambda: impl.Decoder(compression=Negotiated()), rsv1_frame(BINARY, b"\xff\xff\xff\xff")
        )
        assert (messages, error) == ([], (InvalidCompressedDataError, 1007))


class TestBombGuard:
    def test_a_few_kib_inflating_past_the_limit_fail_with_1009(self, impl: Any) -> None:
        bomb = deflate(b"\x00" * (64 * 2**20))
        assert len(bomb) < 100 * 1024
        decoder = impl.Decoder(max_message_size=2**20, compression=Negotiated())
        with pytest.raises(MessageTooBigError) as info:
            decoder.feed(rsv1_frame(BINARY, bomb))
        assert info.value.close_code == 1009
        assert "inflates" in str(info.value)

    def test_exactly_at_the_limit_is_accepted(self, impl: Any) -> None:
        payload = b"a" * 10_000
        decoder = impl.Decoder(max_message_size=10_000, compression=Negotiated())
        assert decoder.feed(rsv1_frame(BINARY, deflate(payload))) == [payload]
        decoder = impl.Decoder(max_message_size=9_999, compression=Negotiated())
        with pytest.raises(MessageTooBigError):
            decoder.feed(rsv1_frame(BINARY, deflate(payload)))


class TestRsv1:
    @pytest.mark.parametrize(
        "data",
        [
            frame(TEXT, b"x", fin=False) + rsv1_frame(CONT, b"x"),  # RSV1 on a continuation frame
            rsv1_frame(PING, b""),  # RSV1 on a control frame
            frame(TEXT, b"x", rsv=0b010),  # RSV2 is never negotiated
            frame(TEXT, b"x", rsv=0b001),  # nor RSV3
        ],
    )
    def test_misuse_is_a_protocol_error(self, impl: Any, data: bytes) -> None:
        _, error = decode_variants(lambda: impl.Decoder(compression=Negotiated()), data)
        assert error == (ProtocolError, 1002)

    def test_rsv1_without_negotiation(self, impl: Any) -> None:
        _, error = decode_variants(impl.Decoder, rsv1_frame(TEXT, deflate(b"hi")))
        assert error == (ProtocolError, 1002)


class TestCompressor:
    def test_round_trip_threshold_and_context(self) -> None:
        compressor = Compressor(Negotiated(client_no_context_takeover=False, compress_threshold=64))
        assert compressor.compress(b"short") is None
        first, second = compressor.compress(ORDER_BOOK), compressor.compress(ORDER_BOOK)
        assert first is not None
        assert second is not None
        assert len(second) < len(first)  # context takeover
        inflater = zlib.decompressobj(-15)
        assert inflater.decompress(first + TAIL) == ORDER_BOOK
        assert inflater.decompress(second + TAIL) == ORDER_BOOK

    def test_encoder_sets_rsv1(self, impl: Any) -> None:
        data = impl.Encoder().encode(b"x", 2, True, True)
        assert data[0] == 0x80 | 0x40 | 2
        with pytest.raises(ValueError, match="RSV1"):
            impl.Encoder().encode(b"x", 0, True, True)


# Clients against real servers with compression


def _run(coroutine: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coroutine, 20))


SERVER_VARIANTS = {
    "default": {},
    "no-context-takeover": {"server_no_context_takeover": True, "client_no_context_takeover": True},
    "window-9": {"server_max_window_bits": 9, "client_max_window_bits": 9},
    "window-12": {"server_max_window_bits": 12},
}


@pytest.mark.parametrize("variant", list(SERVER_VARIANTS))
def test_both_clients_against_websockets_with_compression(
    codec_impl: types.SimpleNamespace, variant: str
) -> None:
    from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory

    from servers import WebsocketsServer

    factory = ServerPerMessageDeflateFactory(**SERVER_VARIANTS[variant])
    with WebsocketsServer(extensions=[factory], max_size=None) as server:

        async def main() -> str:
            async with wsfast.connect(
                server.url(), compression="deflate", implementation=codec_impl.name
            ) as ws:
                assert ws._protocol.compression is not None
                for _ in range(3):
                    await ws.send(ORDER_BOOK.decode())
                    assert await ws.recv() == ORDER_BOOK.decode()
                    await ws.send(ORDER_BOOK)
                    assert await ws.recv() == ORDER_BOOK
                return ws._protocol.compression.agreed

        agreed = _run(main())
        if variant == "no-context-takeover":
            assert "server_no_context_takeover" in agreed

        received: list[Any] = []
        all_back = threading.Event()

        def on_message(message: Any) -> None:
            received.append(message)
            if len(received) == 3:
                all_back.set()

        client = wsfast.WebSocketClient(
            on_message, server.url(), compression="deflate", implementation=codec_impl.name
        )
        client.connect()
        for _ in range(3):
            client.send(ORDER_BOOK.decode())
        assert all_back.wait(10)
        client.disconnect()
        assert client.wait(10)
        assert received == [ORDER_BOOK.decode()] * 3


def test_asyncio_client_against_aiohttp_with_compression(codec_impl: types.SimpleNamespace) -> None:
    import aiohttp
    from aiohttp import web

    async def main() -> None:
        async def handler(request: web.Request) -> web.WebSocketResponse:
            ws = web.WebSocketResponse(compress=True)
            await ws.prepare(request)
            async for message in ws:
                if message.type == aiohttp.WSMsgType.TEXT:
                    await ws.send_str(message.data)
            return ws

        app = web.Application()
        app.router.add_get("/ws", handler)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        try:
            async with wsfast.connect(
                f"ws://127.0.0.1:{port}/ws", compression="deflate", implementation=codec_impl.name
            ) as ws:
                assert ws._protocol.compression is not None
                for _ in range(3):
                    await ws.send(ORDER_BOOK.decode())
                    assert await ws.recv() == ORDER_BOOK.decode()
        finally:
            await runner.cleanup()

    _run(main())


class TestExchangePayloads:
    """wsfast.inflate: gzip / zlib / raw DEFLATE payloads inside binary messages (Huobi, OKX...)."""

    @pytest.mark.parametrize("fmt", ["gzip", "zlib", "raw"])
    def test_formats_explicit_and_detected(self, fmt: str) -> None:
        import gzip

        packed = {
            "gzip": gzip.compress(ORDER_BOOK),
            "zlib": zlib.compress(ORDER_BOOK),
            "raw": deflate(ORDER_BOOK) + TAIL,
        }[fmt]
        assert wsfast.inflate(packed, format=fmt) == ORDER_BOOK
        assert wsfast.inflate(packed) == ORDER_BOOK
        assert wsfast.inflate(memoryview(packed)) == ORDER_BOOK

    def test_bomb_guard_and_errors(self) -> None:
        bomb = zlib.compress(b"\x00" * (8 * 2**20))
        with pytest.raises(MessageTooBigError):
            wsfast.inflate(bomb, max_size=2**20)
        assert len(wsfast.inflate(bomb, max_size=None)) == 8 * 2**20
        with pytest.raises(ValueError, match="not valid"):
            wsfast.inflate(b"\x1f\x8bnot gzip")
        with pytest.raises(ValueError, match="format"):
            wsfast.inflate(b"", format="brotli")


class TestTwinsAgreeOnCompressedStreams:
    """Hypothesis: random compressed/uncompressed, fragmented streams, random cuts, both twins agree."""

    def test_random_streams(self, twins: types.SimpleNamespace) -> None:
        from hypothesis import given
        from hypothesis import strategies as st

        implementations = [twins.python, twins.cython]
        message = st.tuples(
            st.sampled_from([TEXT, BINARY]),
            st.one_of(st.text(max_size=300).map(str.encode), st.binary(max_size=300)),
            st.booleans(),  # compressed
            st.integers(min_value=1, max_value=4),  # fragments
        )

        @given(st.lists(message, max_size=8), st.booleans(), st.lists(st.integers(1, 4000), max_size=6))
        def check(messages: list[tuple[int, bytes, bool, int]], takeover: bool, cuts: list[int]) -> None:
            compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
            stream = b""
            for opcode, payload, compressed, pieces in messages:
                if compressed:
                    if not takeover:
                        compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
                    body = deflate(payload, compressor)
                else:
                    body = payload
                step = max(1, -(-len(body) // pieces))
                parts = [body[i : i + step] for i in range(0, len(body), step)] or [b""]
                for index, part in enumerate(parts):
                    last = index == len(parts) - 1
                    code = opcode if index == 0 else CONT
                    rsv = 0b100 if compressed and index == 0 else 0
                    stream += frame(code, part, fin=last, rsv=rsv)
            negotiated = Negotiated(server_no_context_takeover=not takeover)
            outcomes = []
            for twin in implementations:
                decoder = twin.Decoder(compression=negotiated)
                outcomes.append(outcome(decoder, stream, sorted(set(cuts))))
            assert outcomes[0] == outcomes[1]

        check()


class TestBackends:
    """The compiled twin inflates through zlib's C API with the standard zlib, and through the backend
    module's decompressobj() otherwise (isal, zlib-ng): both paths, same results."""

    PROXY = types.SimpleNamespace(
        decompressobj=zlib.decompressobj, compressobj=zlib.compressobj, DEFLATED=zlib.DEFLATED
    )

    @pytest.mark.parametrize("backend", ["zlib", "module-api"])
    def test_paths_agree(self, impl: Any, backend: str) -> None:
        zlib_backend: Any = zlib if backend == "zlib" else self.PROXY
        compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
        stream = b"".join(rsv1_frame(TEXT, deflate(ORDER_BOOK, compressor)) for _ in range(3))
        last = deflate(ORDER_BOOK, compressor)
        stream += rsv1_frame(BINARY, last[:7], fin=False) + frame(CONT, last[7:])
        negotiated = Negotiated(zlib_backend=zlib_backend)
        messages, error = decode_variants(lambda: impl.Decoder(compression=negotiated), stream)
        assert error is None
        assert messages == [ORDER_BOOK.decode()] * 3 + [ORDER_BOOK]
        bomb = deflate(b"\x00" * 2**22)
        with pytest.raises(MessageTooBigError):
            impl.Decoder(max_message_size=2**20, compression=negotiated).feed(rsv1_frame(BINARY, bomb))
        with pytest.raises(InvalidCompressedDataError):
            impl.Decoder(compression=negotiated).feed(rsv1_frame(BINARY, b"\xff\xff\xff\xff"))


class TestFinalBlocks:
    """RFC 7692 §7.2.3.3: a sender may flush with a DEFLATE block that has BFINAL set, followed by the
    header byte of an empty non-final block, so that the 00 00 ff ff tail completes it. What follows a
    final block starts a new DEFLATE stream, in every inflate path of both twins (the pure paths once
    ignored it, silently turning every later compressed message into an empty one)."""

    @staticmethod
    def final(payload: bytes) -> bytes:
        compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
        return compressor.compress(payload) + compressor.flush(zlib.Z_FINISH) + b"\x00"

    def test_rfc_example(self, impl: Any) -> None:
        # RFC 7692 §7.2.3.3: "Hello" in a final block, then the empty block's header byte.
        assert self.final(b"Hello") == bytes.fromhex("f348cdc9c90700") + b"\x00"
        stream = rsv1_frame(TEXT, bytes.fromhex("f348cdc9c9070000")) * 2
        messages, error = decode_variants(lambda: impl.Decoder(compression=Negotiated()), stream)
        assert (messages, error) == (["Hello", "Hello"], None)

    @pytest.mark.parametrize("backend", ["zlib", "module-api"])
    def test_final_blocks_then_more_messages(self, impl: Any, backend: str) -> None:
        zlib_backend: Any = zlib if backend == "zlib" else TestBackends.PROXY
        book = self.final(ORDER_BOOK)
        stream = (
            rsv1_frame(TEXT, self.final(b"Hello"))
            + rsv1_frame(BINARY, book[:9], fin=False)
            + frame(CONT, book[9:])
            + rsv1_frame(TEXT, deflate(b"sync-flushed"))
            + rsv1_frame(TEXT, self.final(b"again"))
        )
        negotiated = Negotiated(zlib_backend=zlib_backend)
        messages, error = decode_variants(lambda: impl.Decoder(compression=negotiated), stream)
        assert error is None
        assert messages == ["Hello", ORDER_BOOK, "sync-flushed", "again"]

    @pytest.mark.parametrize("backend", ["zlib", "module-api"])
    def test_garbage_after_a_final_block_is_1007(self, impl: Any, backend: str) -> None:
        zlib_backend: Any = zlib if backend == "zlib" else TestBackends.PROXY
        compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
        body = compressor.compress(b"Hello") + compressor.flush(zlib.Z_FINISH) + b"\xff\xff\xff"
        negotiated = Negotiated(zlib_backend=zlib_backend)
        _, error = decode_variants(lambda: impl.Decoder(compression=negotiated), rsv1_frame(TEXT, body))
        assert error == (InvalidCompressedDataError, 1007)


class TestErrorOrder:
    """A compressed text message that is invalid UTF-8 *and* inflates past the limit: the text within the
    limit is validated first, so the error does not depend on how the stream is split (found by the
    fuzzer: fed whole it was 1009, split it was 1007)."""

    @pytest.mark.parametrize("backend", ["zlib", "module-api"])
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            (b"ok" * 10 + b"\xff" + b"a" * 5000, (InvalidUTF8Error, 1007)),  # invalid within the limit
            (b"a" * 5000 + b"\xff", (MessageTooBigError, 1009)),  # invalid only past the limit
        ],
    )
    def test_split_does_not_change_the_error(
        self, impl: Any, backend: str, text: bytes, expected: tuple[type, int]
    ) -> None:
        zlib_backend: Any = zlib if backend == "zlib" else TestBackends.PROXY
        negotiated = Negotiated(zlib_backend=zlib_backend)
        stream = rsv1_frame(TEXT, deflate(text))
        _, error = decode_variants(lambda: impl.Decoder(1000, compression=negotiated), stream)
        assert error == expected
