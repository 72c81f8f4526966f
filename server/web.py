"""The browser demo of ``speechtao serve --web PORT``: one page (no build step, no CDN) and a WebSocket bridge.

The page (``server/web/index.html``) captures the microphone (or decodes a dropped file), resamples it to 16 kHz
16-bit PCM in the browser and streams it over a WebSocket; it shows interim and final transcripts and asks
questions about a pasted text. The bridge is a *client* of the gRPC server running in the same process: each
socket becomes one ``StreamingRecognize`` call (and ``NaturalQuery`` for questions) on the loopback port, so the
page gets exactly what a Riva client gets (same models, punctuation, inverse text normalization, limits). The
gRPC API stays the primary interface.

Socket messages (JSON text frames, audio as binary frames)::

    page -> bridge   {"type": "start", "punctuation": true}   then PCM16 mono 16 kHz binary frames
                     {"type": "stop"}                          end of audio: the last final follows
                     {"type": "qa", "question": "...", "context": "..."}
    bridge -> page   {"type": "interim" | "final", "transcript": "...", "words": [{"word", "start_ms", "end_ms"}]}
                     {"type": "answer", "answer": "...", "score": 0.93}
                     {"type": "error", "message": "..."}       (then the socket closes on bad input)
                     {"type": "done"}                          after the last final of a stream
"""

from __future__ import annotations

import asyncio
import json
import logging
import queue
import threading
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path

import grpc
from riva.client.proto import riva_asr_pb2 as rasr
from riva.client.proto import riva_asr_pb2_grpc as rasr_grpc
from riva.client.proto import riva_audio_pb2 as raudio
from riva.client.proto import riva_nlp_pb2 as rnlp
from riva.client.proto import riva_nlp_pb2_grpc as rnlp_grpc

log = logging.getLogger(__name__)

PAGE = Path(__file__).with_name("web") / "index.html"
SAMPLE_RATE = 16000
MAX_SOCKET_SECONDS = 600  # audio one socket may stream (the gRPC server's own limits apply as well)


@dataclass
class WebBridge:
    """A running bridge: ``port`` it listens on, ``finals`` every final transcript it relayed (newest last)."""

    grpc_target: str
    host: str
    port: int
    token: str | None = None
    finals: list[str] = field(default_factory=list)
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    _stop: asyncio.Event | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    def _metadata(self):
        return [("authorization", f"Bearer {self.token}")] if self.token else None

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(timeout=5)


def _page_response(connection, request):
    """Plain HTTP for everything but the socket path: the page at ``/``, 404 elsewhere."""
    if request.path.startswith("/ws"):
        return None  # the WebSocket handshake
    if request.path.split("?")[0] in ("/", "/index.html"):
        from websockets.datastructures import Headers
        from websockets.http11 import Response

        body = PAGE.read_bytes()
        headers = Headers([("Content-Type", "text/html; charset=utf-8"), ("Content-Length", str(len(body)))])
        return Response(HTTPStatus.OK.value, "OK", headers, body)
    return connection.respond(HTTPStatus.NOT_FOUND, "not found\n")


def _words(alt) -> list[dict]:
    return [{"word": w.word, "start_ms": int(w.start_time), "end_ms": int(w.end_time)} for w in alt.words]


async def _recognize(bridge: WebBridge, ws, start: dict, channel: grpc.Channel) -> None:
    """One streaming recognition: binary frames from ``ws`` into StreamingRecognize, results back as JSON."""
    stub = rasr_grpc.RivaSpeechRecognitionStub(channel)
    config = rasr.StreamingRecognitionConfig(
        config=rasr.RecognitionConfig(
            encoding=raudio.AudioEncoding.LINEAR_PCM,
            sample_rate_hertz=SAMPLE_RATE,
            language_code="en-US",
            max_alternatives=1,
            enable_automatic_punctuation=bool(start.get("punctuation", True)),
            enable_word_time_offsets=True,
        ),
        interim_results=True,
    )
    audio: queue.Queue[bytes | None] = queue.Queue()

    def requests():
        yield rasr.StreamingRecognizeRequest(streaming_config=config)
        while (chunk := audio.get()) is not None:
            yield rasr.StreamingRecognizeRequest(audio_content=chunk)

    loop = asyncio.get_running_loop()
    out: asyncio.Queue = asyncio.Queue()

    def pump() -> None:  # gRPC's blocking iterator, in a thread; results go back to the event loop
        try:
            for resp in stub.StreamingRecognize(requests(), metadata=bridge._metadata()):
                # a response's interim results are consecutive parts of one hypothesis (stable part first); a
                # final supersedes the interims before it
                interim = ""
                for r in resp.results:
                    if r.alternatives and r.is_final:
                        msg = {"type": "final", "transcript": r.alternatives[0].transcript}
                        loop.call_soon_threadsafe(out.put_nowait, {**msg, "words": _words(r.alternatives[0])})
                        interim = ""
                    elif r.alternatives:
                        interim += r.alternatives[0].transcript
                if interim:
                    msg = {"type": "interim", "transcript": interim, "words": []}
                    loop.call_soon_threadsafe(out.put_nowait, msg)
            loop.call_soon_threadsafe(out.put_nowait, {"type": "done"})
        except grpc.RpcError as exc:
            loop.call_soon_threadsafe(out.put_nowait, {"type": "error", "message": exc.details() or str(exc.code())})

    worker = threading.Thread(target=pump, daemon=True)
    worker.start()

    async def send_results() -> None:
        while True:
            msg = await out.get()
            if msg["type"] == "final" and msg["transcript"].strip():
                bridge.finals.append(msg["transcript"])
            await ws.send(json.dumps(msg))
            if msg["type"] in ("done", "error"):
                return

    sender = asyncio.create_task(send_results())
    received = 0
    async for frame in ws:
        if isinstance(frame, bytes):
            received += len(frame)
            if received > MAX_SOCKET_SECONDS * SAMPLE_RATE * 2:
                await ws.send(json.dumps({"type": "error", "message": f"over {MAX_SOCKET_SECONDS} s of audio"}))
                break
            audio.put(frame)
            continue
        msg = json.loads(frame)
        if msg.get("type") == "stop":
            break
    audio.put(None)
    await sender


async def _answer(bridge: WebBridge, ws, msg: dict, channel: grpc.Channel) -> None:
    stub = rnlp_grpc.RivaLanguageUnderstandingStub(channel)
    request = rnlp.NaturalQueryRequest(query=str(msg.get("question", "")), context=str(msg.get("context", "")))
    try:
        resp = await asyncio.to_thread(stub.NaturalQuery, request, metadata=bridge._metadata())
    except grpc.RpcError as exc:
        await ws.send(json.dumps({"type": "error", "message": exc.details() or str(exc.code())}))
        return
    best = resp.results[0] if resp.results else None
    await ws.send(
        json.dumps({"type": "answer", "answer": best.answer if best else "", "score": best.score if best else 0.0})
    )


async def _handle(bridge: WebBridge, ws) -> None:
    channel = grpc.insecure_channel(bridge.grpc_target)
    try:
        async for frame in ws:
            if isinstance(frame, bytes):
                await ws.send(json.dumps({"type": "error", "message": 'send {"type": "start"} before audio'}))
                continue
            try:
                msg = json.loads(frame)
            except json.JSONDecodeError:
                await ws.send(json.dumps({"type": "error", "message": "messages are JSON objects"}))
                continue
            kind = msg.get("type")
            if kind == "start":
                await _recognize(bridge, ws, msg, channel)
            elif kind == "qa":
                await _answer(bridge, ws, msg, channel)
            else:
                await ws.send(json.dumps({"type": "error", "message": f"unknown message type {kind!r}"}))
    except Exception as exc:  # a closed socket ends the session; anything else is logged, not raised
        if type(exc).__name__ not in ("ConnectionClosedOK", "ConnectionClosedError"):
            log.exception("web bridge session failed")
    finally:
        channel.close()


def start_web(grpc_port: int, host: str = "127.0.0.1", port: int = 8080, token: str | None = None) -> WebBridge:
    """Serve the page and the bridge on ``host:port`` (0: a free port) in a background thread."""
    from websockets.asyncio.server import serve

    bridge = WebBridge(f"127.0.0.1:{grpc_port}", host, port, token)
    ready = threading.Event()
    errors: list[BaseException] = []

    async def main() -> None:
        bridge._stop = asyncio.Event()
        try:
            server = await serve(
                lambda ws: _handle(bridge, ws), host, port, process_request=_page_response, max_size=1 << 20
            )
        except OSError as exc:
            errors.append(exc)
            ready.set()
            return
        bridge.port = server.sockets[0].getsockname()[1]
        ready.set()
        async with server:
            await bridge._stop.wait()

    def run() -> None:
        bridge._loop = asyncio.new_event_loop()
        bridge._loop.run_until_complete(main())

    bridge._thread = threading.Thread(target=run, name="speechtao-web", daemon=True)
    bridge._thread.start()
    ready.wait(timeout=10)
    if errors:
        from speechtao.errors import InputError

        raise InputError(f"--web: cannot listen on {host}:{port} ({errors[0]}); pick another port") from None
    return bridge
