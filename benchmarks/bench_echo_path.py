"""The client's own work per echo round trip, in memory: what a latency benchmark cannot resolve.

Over loopback (``bench_e2e.py``, ``e2e-latency``) a round trip costs 80-100 us, nearly all of it in the
kernel and the event loop, and a shared machine moves it by several percent between rounds. This
benchmark times only what the WebSocket library adds: one small TEXT message sent, and its echo (one
unmasked frame, as one read) handed to the inline callback, through the same entry points asyncio's
selector loop calls (``get_buffer()``, ``buffer_updated()``) and the same sending API the latency
benchmark uses (``send_nowait()`` / picows' ``WSTransport.send()``). No socket, no loop turn.

Contenders (group ``echo-path``), each timed over 1,000 echoes per round:

* ``wsfast`` -- a connected ``wsfast.asyncio.WebSocket`` (compiled codec) on a stand-in transport;
* ``wsfast-pure`` -- the same with the pure-Python codec twin (what ``WSFAST_NO_EXTENSIONS=1`` loads);
* ``picows`` -- picows' compiled ``WSProtocol`` and ``WSTransport`` after a real (in-memory) upgrade
  (``peers.PicowsAdapter``); its listener decodes text with ``get_payload_as_utf8_text()``.

Both stand-in transports copy what is written (``bytes(data)``), as ``peers.py``'s does for picows.
Each round checks that every echo arrived, in order.
"""

from __future__ import annotations

import struct
from typing import Any

import pytest

import peers

ECHOES = 1_000
PAYLOADS = [f'{{"op":"ping","id":{i},"ts":1732000000000}}' for i in range(ECHOES)]
FRAMES = [struct.pack("!BB", 0x81, len(p)) + p.encode() for p in PAYLOADS]  # server -> client, unmasked


def _wsfast_connection(on_message: Any, pure: bool) -> tuple[Any, Any]:
    # The codec seam picks the twin: "python", or wsfast's own choice (compiled when built).
    _, connection = peers.offline_connection(on_message, implementation="python" if pure else None)
    return connection, connection.transport


@pytest.mark.parametrize("contender", ["wsfast", "wsfast-pure", "picows"])
def test_echo_path(benchmark: Any, contender: str) -> None:
    benchmark.group = "echo-path"
    benchmark.extra_info["echoes_per_round"] = ECHOES
    received: list[str] = []

    if contender == "picows":
        peers.importorskip("picows.picows")
        from picows import picows as pw

        adapter = peers.PicowsAdapter()
        protocol, transport = adapter._proto, adapter._tr
        received = adapter._listener.out = []
        send = protocol.transport.send
        text = pw.WSMsgType.TEXT

        def send_one(payload: str) -> None:
            send(text, payload.encode())

    else:
        peers.importorskip("wsfast.asyncio")
        protocol, transport = _wsfast_connection(received.append, pure=contender == "wsfast-pure")
        send_one = protocol._ws.send_nowait

    get_buffer, buffer_updated = protocol.get_buffer, protocol.buffer_updated

    def echoes() -> int:
        received.clear()
        transport.written.clear()
        for payload, frame in zip(PAYLOADS, FRAMES, strict=True):
            send_one(payload)
            view = get_buffer(-1)
            n = len(frame)
            view[:n] = frame  # the recv_into()
            buffer_updated(n)
        return len(received)

    try:
        assert benchmark(echoes) == ECHOES
    finally:
        if contender == "picows":
            adapter.close()
    assert received == PAYLOADS
    assert len(transport.written) == ECHOES  # one frame written per send
    if not benchmark.disabled:
        benchmark.extra_info["ns_per_echo"] = benchmark.stats.stats.median / ECHOES * 1e9
