"""Server limits and admission: concurrent streams in total and per peer, message and text sizes, idle streams,
draining.

The defaults fit ordinary traffic: an offline request of 15 minutes of 16-bit 16 kHz audio (28.8 MB) fits
``max_message_bytes`` (64 MiB: 34 minutes); an application server is one peer carrying many users' streams, so
there is no per-peer cap unless ``max_streams_per_peer`` asks for one. Every cap answers RESOURCE_EXHAUSTED with a
message naming the ``speechtao serve`` flag that sets it. (A message more than twice ``max_message_bytes`` is
refused by gRPC itself before it is read, with gRPC's own message.)

Every recognition RPC enters through :meth:`Admission.enter` (RESOURCE_EXHAUSTED when a cap is reached,
UNAVAILABLE while the server drains) and leaves through the ticket's ``close()``, which the RPC handler calls in
a ``finally`` block, so a cancelled or expired RPC frees its slot at once. A reaper thread cancels streams that
have been silent longer than ``idle_timeout_s`` (a client that opens a stream and stops sending holds a slot).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import grpc


@dataclass(frozen=True)
class Limits:
    max_streams: int = 64  # concurrent recognition RPCs in total
    max_streams_per_peer: int = 0  # concurrent recognition RPCs from one client address; 0: only max_streams
    max_message_bytes: int = 64 << 20  # largest audio in one request message (--max-message-mb)
    max_stream_seconds: float = 3600.0  # longest audio in one request
    idle_timeout_s: float = 30.0  # a stream with no request for this long is cancelled
    drain_seconds: float = 10.0  # on SIGTERM: how long running RPCs may finish
    max_text_chars: int = 20_000  # characters of text in one NLP request (all its texts together)
    max_qa_context_chars: int = 20_000  # characters of a NaturalQuery context

    def __post_init__(self) -> None:
        if self.max_streams < 1 or self.max_streams_per_peer < 0:
            raise ValueError(
                f"max_streams ({self.max_streams}) must be >= 1 and max_streams_per_peer "
                f"({self.max_streams_per_peer}) >= 0 (0: no per-peer cap)"
            )
        if self.max_message_bytes < 1024:
            raise ValueError(f"max_message_bytes must be >= 1024, got {self.max_message_bytes}")
        if self.max_text_chars < 1 or self.max_qa_context_chars < 1:
            raise ValueError(
                f"max_text_chars ({self.max_text_chars}) and max_qa_context_chars ({self.max_qa_context_chars}) "
                "must be >= 1"
            )
        if self.max_stream_seconds <= 0 or self.idle_timeout_s <= 0 or self.drain_seconds < 0:
            raise ValueError("max_stream_seconds and idle_timeout_s must be > 0, drain_seconds >= 0")


def cancel_with_message(context, details: str) -> None:
    """End an RPC from another thread with status CANCELLED and ``details``. ``context.cancel()`` alone sends
    no message; the status is sent through the call object gRPC's server gives the context (grpcio's
    ``Call.cancel(code, details)``); where that is missing, the plain cancel."""
    call = getattr(getattr(context, "_rpc_event", None), "call", None)
    try:
        call.cancel(grpc.StatusCode.CANCELLED.value[0], details)
    except Exception:  # another grpcio: no status detail, but the stream still ends
        context.cancel()


def peer_host(peer: str) -> str:
    """``ipv4:127.0.0.1:5123`` -> ``ipv4:127.0.0.1``; ``ipv6:[::1]:5123`` -> ``ipv6:[::1]``."""
    return peer.rsplit(":", 1)[0] if peer.count(":") >= 2 else peer


class Ticket:
    def __init__(self, admission: Admission, host: str, context):
        self._admission = admission
        self.host = host
        self.context = context
        self.last_activity = time.monotonic()
        self._closed = False

    def touch(self) -> None:
        self.last_activity = time.monotonic()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._admission._leave(self)


class Admission:
    def __init__(self, limits: Limits):
        self.limits = limits
        self._lock = threading.Lock()
        self._tickets: set[Ticket] = set()
        self._per_host: dict[str, int] = {}
        self.draining = False
        self.rejected = 0
        self._stop = threading.Event()
        self._reaper = threading.Thread(target=self._reap, name="idle-reaper", daemon=True)
        self._reaper.start()

    @property
    def active(self) -> int:
        return len(self._tickets)

    def enter(self, context) -> Ticket:
        host = peer_host(context.peer())
        with self._lock:
            if self.draining:
                context.abort(grpc.StatusCode.UNAVAILABLE, "the server is shutting down (retry on another server)")
            if len(self._tickets) >= self.limits.max_streams:
                self.rejected += 1
                context.abort(
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    f"{len(self._tickets)} streams are active, the server's limit (--max-streams "
                    f"{self.limits.max_streams}); retry later",
                )
            per_peer = self.limits.max_streams_per_peer
            if per_peer and self._per_host.get(host, 0) >= per_peer:
                self.rejected += 1
                context.abort(
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    f"{self._per_host[host]} streams are active from {host}, the per-client limit "
                    f"(--max-streams-per-peer {self.limits.max_streams_per_peer}); close one first",
                )
            ticket = Ticket(self, host, context)
            self._tickets.add(ticket)
            self._per_host[host] = self._per_host.get(host, 0) + 1
        return ticket

    def _leave(self, ticket: Ticket) -> None:
        with self._lock:
            self._tickets.discard(ticket)
            n = self._per_host.get(ticket.host, 0) - 1
            if n > 0:
                self._per_host[ticket.host] = n
            else:
                self._per_host.pop(ticket.host, None)

    def _reap(self) -> None:
        while not self._stop.wait(min(1.0, self.limits.idle_timeout_s / 4)):
            now = time.monotonic()
            with self._lock:
                idle = [t for t in self._tickets if now - t.last_activity > self.limits.idle_timeout_s]
            for t in idle:
                # the handler's request iterator raises; its finally closes the ticket
                cancel_with_message(
                    t.context,
                    f"no request on this stream for {self.limits.idle_timeout_s:g} s (the server's --idle-timeout); "
                    "the stream was closed: send audio continuously, or open a new stream",
                )

    def close(self) -> None:
        self._stop.set()
