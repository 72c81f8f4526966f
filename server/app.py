"""Assemble and run the gRPC server: services, health, TLS, bearer-token auth, limits, graceful stop.

Usage::

    repo = ModelRepository.load("models/")
    running = start_server(repo, ServerOptions(port=0))       # port 0: any free port (running.port)
    ...
    running.stop()                                           # drain, then stop

``serve_forever`` is what ``speechtao serve`` runs: it starts the server, marks it SERVING, and on SIGTERM or
SIGINT drains: health answers NOT_SERVING (still reachable, so load balancers see it), new recognition and NLP
RPCs get UNAVAILABLE, running ones may finish for up to ``drain_seconds``; then the server stops, cancelling
what still runs.

A request whose bytes protobuf cannot parse (text that is not UTF-8, a truncated message) gets INVALID_ARGUMENT
naming the RPC, not gRPC's INTERNAL "Exception deserializing request!".
"""

from __future__ import annotations

import hmac
import logging
import signal
import threading
import time
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from google.protobuf.message import DecodeError
from riva.client.proto import health_pb2_grpc, riva_asr_pb2_grpc, riva_nlp_pb2_grpc

from speechtao.errors import InputError
from speechtao.serve.batching import BatchOptions
from speechtao.serve.repository import ModelRepository
from speechtao.serve.transcript import InverseNormalizer, TranscriptPipeline, load_profanity

from .asr_service import ASRService
from .health import NOT_SERVING, SERVING, HealthService
from .limits import Admission, Limits
from .nlp_service import NLPService

log = logging.getLogger("speechtao.server")

ASR_SERVICE = "nvidia.riva.asr.RivaSpeechRecognition"
NLP_SERVICE = "nvidia.riva.nlp.RivaLanguageUnderstanding"
HEALTH_PREFIX = "/grpc.health.v1.Health/"
LOOPBACK = ("127.0.0.1", "::1", "localhost")


@dataclass(frozen=True)
class ServerOptions:
    host: str = "127.0.0.1"  # loopback by default; 0.0.0.0 / [::] to listen on every interface
    port: int = 50051  # 0: any free port
    tls_cert: str | None = None  # PEM certificate chain; with tls_key, the server speaks TLS only
    tls_key: str | None = None
    token: str | None = None  # bearer token every RPC but health must carry ("authorization: Bearer TOKEN")
    limits: Limits = field(default_factory=Limits)
    batch: BatchOptions = field(default_factory=BatchOptions)
    itn: bool = True  # load the inverse text normalization grammars (verbatim_transcripts=false needs them)
    itn_cache: str | None = None  # where the compiled grammars are kept (default ~/.cache/speechtao/itn)

    def __post_init__(self) -> None:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("give both --tls-cert and --tls-key, or neither")
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be in [0, 65535], got {self.port}")
        if self.token is not None and len(self.token) < 8:
            raise ValueError("--token must be at least 8 characters (use a random secret)")


class _TokenAuth(grpc.ServerInterceptor):
    """Every RPC except health must carry ``authorization: Bearer <token>`` (the scheme in any case, as HTTP
    says); others get UNAUTHENTICATED."""

    def __init__(self, token: str):
        self._expected = token.encode()

        def deny(request, context):
            context.abort(
                grpc.StatusCode.UNAUTHENTICATED,
                "missing or wrong bearer token (send metadata "
                "'authorization: Bearer <token>', e.g. riva.client.Auth(metadata_args=[['authorization', "
                "'Bearer <token>']]))",
            )

        self._deny_unary = grpc.unary_unary_rpc_method_handler(deny)
        self._deny_stream = grpc.stream_stream_rpc_method_handler(lambda it, ctx: deny(None, ctx))

    def intercept_service(self, continuation, details):
        if details.method.startswith(HEALTH_PREFIX):
            return continuation(details)
        scheme, _, got = dict(details.invocation_metadata or ()).get("authorization", "").strip().partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(got.strip().encode(), self._expected):
            return continuation(details)
        return self._deny_stream if details.method.endswith("/StreamingRecognize") else self._deny_unary


class _Undecodable:
    """Stands for a request message protobuf could not parse; the handler answers INVALID_ARGUMENT."""

    def __init__(self, error: str):
        self.error = error


class _RefuseUndecodable(grpc.ServerInterceptor):
    """Parse requests leniently, so that bytes protobuf refuses become INVALID_ARGUMENT naming the RPC."""

    def intercept_service(self, continuation, details):
        handler = continuation(details)
        if handler is None or handler.request_deserializer is None:
            return handler
        parse, rpc = handler.request_deserializer, details.method.rsplit("/", 1)[-1]

        def lenient(data: bytes):
            try:
                return parse(data)
            except (DecodeError, UnicodeDecodeError, ValueError) as exc:
                return _Undecodable(str(exc) or type(exc).__name__)

        def refuse(request, context):
            context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"{rpc}: the request cannot be parsed ({request.error}); text fields must be UTF-8 "
                "(decode the text as UTF-8 before sending it)",
            )

        def checked(request, context):
            if isinstance(request, _Undecodable):
                refuse(request, context)
            return request

        def checked_stream(requests, context):
            for r in requests:
                yield checked(r, context)

        if handler.request_streaming:
            name = "stream_stream" if handler.response_streaming else "stream_unary"
            inner = getattr(handler, name)
            return handler._replace(
                request_deserializer=lenient, **{name: lambda it, ctx: inner(checked_stream(it, ctx), ctx)}
            )
        name = "unary_stream" if handler.response_streaming else "unary_unary"
        inner = getattr(handler, name)
        return handler._replace(request_deserializer=lenient, **{name: lambda r, ctx: inner(checked(r, ctx), ctx)})


@dataclass
class RunningServer:
    server: grpc.Server
    port: int
    health: HealthService
    asr: ASRService
    nlp: NLPService
    admission: Admission
    options: ServerOptions

    def attach(self, repo: ModelRepository) -> None:
        """Serve ``repo``'s models and report SERVING (the ITN grammars load first, unless turned off)."""
        itn = InverseNormalizer.maybe_load(self.options.itn_cache) if self.options.itn else None
        self.asr.attach(repo, TranscriptPipeline(itn, load_profanity(repo.profanity_list)))
        self.nlp.attach(repo)
        self.health.set_all(SERVING)

    @property
    def active(self) -> int:
        """Recognition and NLP RPCs running now."""
        return self.admission.active + self.nlp.active

    def stop(self, grace: float | None = None) -> None:
        """Drain: NOT_SERVING (health stays reachable), refuse new RPCs with UNAVAILABLE, wait up to ``grace``
        seconds for the running ones; then stop the server, cancelling what still runs."""
        grace = self.options.limits.drain_seconds if grace is None else grace
        self.health.set_all(NOT_SERVING)
        self.admission.draining = True
        self.nlp.draining = True
        deadline = time.monotonic() + grace
        while self.active and time.monotonic() < deadline:
            time.sleep(0.02)
        if self.active:
            log.warning("%d RPCs still running after the %.0f s drain: cancelled", self.active, grace)
        self.health.stop_watches()
        self.server.stop(0).wait()
        self.asr.close()
        self.admission.close()


def start_server(repo: ModelRepository | None, options: ServerOptions = ServerOptions()) -> RunningServer:
    """Bind and start. With ``repo`` the server is SERVING at once; without, it is NOT_SERVING (recognition
    RPCs answer UNAVAILABLE) until :meth:`RunningServer.attach`. Raises :class:`InputError` when the address
    cannot be bound."""
    limits = options.limits
    workers = limits.max_streams + 8  # every admitted stream holds a thread; 8 more for unary RPCs and health
    # gRPC's own cap sits above ours, so that the handlers refuse a large request with a message naming the
    # flag; only messages past twice the limit meet gRPC's generic "Received message larger than max".
    hard_cap = min(2 * limits.max_message_bytes + (1 << 20), (1 << 31) - 1)
    grpc_opts = [
        ("grpc.max_receive_message_length", hard_cap),
        ("grpc.max_send_message_length", hard_cap),
        ("grpc.so_reuseport", 0),
    ]
    interceptors = ([_TokenAuth(options.token)] if options.token else []) + [_RefuseUndecodable()]
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="rpc"),
        interceptors=interceptors,
        options=grpc_opts,
        maximum_concurrent_rpcs=workers,
    )
    health = HealthService(("", ASR_SERVICE, NLP_SERVICE))
    admission = Admission(limits)
    asr = ASRService(admission, options.batch)
    nlp = NLPService(limits)
    riva_asr_pb2_grpc.add_RivaSpeechRecognitionServicer_to_server(asr, server)
    riva_nlp_pb2_grpc.add_RivaLanguageUnderstandingServicer_to_server(nlp, server)
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    host = options.host if ":" not in options.host or options.host.startswith("[") else f"[{options.host}]"
    address = f"{host}:{options.port}"
    try:
        if options.tls_cert:
            key, cert = Path(options.tls_key).read_bytes(), Path(options.tls_cert).read_bytes()
            port = server.add_secure_port(address, grpc.ssl_server_credentials([(key, cert)]))
        else:
            port = server.add_insecure_port(address)
    except OSError as exc:
        raise InputError(f"--tls-cert/--tls-key: cannot read ({exc}); give PEM files") from None
    except RuntimeError as exc:
        raise InputError(
            f"cannot listen on {address} ({exc}); is the port in use? (pick another with --port)"
        ) from None
    if port == 0:
        raise InputError(
            f"cannot listen on {address} (the port is in use or the address is not local; pick "
            "another with --port, or --host 127.0.0.1)"
        )
    server.start()
    running = RunningServer(server, port, health, asr, nlp, admission, options)
    if repo is not None:
        running.attach(repo)
    return running


def serve_forever(
    load_repo: Callable[[], ModelRepository],
    options: ServerOptions,
    on_event: Callable[[str, dict], None] = lambda event, info: None,
) -> int:
    """Bind (NOT_SERVING), load the models, serve (SERVING) until SIGTERM or SIGINT, then drain and stop.

    ``on_event(event, info)`` reports "listening" ({"port"}), "serving" ({"repo"}) and "stopped" ({}). Returns
    the number of RPCs still computing after the drain (their threads cannot be interrupted: a caller that
    wants to exit at once must not wait for them; ``speechtao serve`` exits the process).
    """
    running = start_server(None, options)
    stop = threading.Event()

    def on_signal(signum, frame):
        log.warning("signal %d: draining for up to %.0f s", signum, options.limits.drain_seconds)
        stop.set()

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        on_event("listening", {"port": running.port})
        repo = load_repo()
        running.attach(repo)
        on_event("serving", {"repo": repo})
        while not stop.wait(0.5):
            pass
    finally:
        running.stop()
        for s, h in old.items():
            signal.signal(s, h)
        on_event("stopped", {})
    return running.active
