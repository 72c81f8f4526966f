"""Decode many streams together: a queue, a maximum batch size and a maximum wait, finals first.

Each connection's thread hands its stream to :meth:`Batcher.decode` when the stream is ready and blocks until
the step is done. A worker thread forms batches and decodes each with one :meth:`Recognizer.decode_streams`
call, in which model windows of similar length share a forward pass.

Steps that produce a final result (the stream's input has ended, or an endpoint's final pass is queued: see
:meth:`Recognizer.finalizing`) are *urgent*: they go ahead of every interim step, are batched only with other
urgent steps and never wait for company. An interim step waits up to ``max_wait_ms`` for others (or until
``max_batch_size`` are waiting); if an urgent step arrives meanwhile, the urgent batch runs first and the interim
steps keep their place. With ``final_lane`` (the default) a second worker takes only urgent batches, so a final
starts at once even while an interim batch runs, and a burst of finals (many streams ending together) uses two
cores; without it a final waits at most for the batch already running, which ``max_batch_size`` bounds.

Usage::

    batcher = Batcher(recognizer, BatchOptions(max_batch_size=16, max_wait_ms=10))
    while recognizer.is_ready(stream):
        batcher.decode(stream)          # raises what decode_streams raised, in the caller's thread
    batcher.close()
    batcher.stats["urgent"]             # steps, batches, queue wait and compute seconds per class
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass

from ..errors import SpeechtaoError

URGENT, INTERIM = 0, 1  # queue priorities (lower first)
CLASS_NAMES = {URGENT: "urgent", INTERIM: "interim"}


@dataclass(frozen=True)
class BatchOptions:
    max_batch_size: int = 16  # streams decoded in one step at most
    max_wait_ms: float = 10.0  # how long the first waiting interim step waits for others
    final_lane: bool = True  # a second worker that runs only urgent steps, beside a running interim batch

    def __post_init__(self) -> None:
        if self.max_batch_size < 1:
            raise ValueError(f"max_batch_size must be >= 1, got {self.max_batch_size}")
        if not 0 <= self.max_wait_ms <= 1000:
            raise ValueError(f"max_wait_ms must be in [0, 1000], got {self.max_wait_ms}")


class BatcherClosed(SpeechtaoError):
    """The batcher was closed (the server is stopping)."""


def _closed_error() -> BatcherClosed:
    return BatcherClosed("the recognizer is shutting down (retry on another server)")


class Batcher:
    """Worker threads decoding the streams queued by any number of caller threads."""

    def __init__(self, recognizer, options: BatchOptions = BatchOptions()):
        self.recognizer = recognizer
        self.options = options
        self._heap: list = []  # (priority, arrival number, enqueue time, stream, future)
        self._order = itertools.count()
        self._cv = threading.Condition()
        self._closed = False
        self.batches = 0  # decode steps run
        self.streams_decoded = 0  # stream steps run (streams_decoded / batches = mean batch size)
        # per class: steps, batches, seconds queued (summed over steps, and the longest), seconds decoding batches
        self.stats = {
            name: {"steps": 0, "batches": 0, "wait_s": 0.0, "max_wait_s": 0.0, "compute_s": 0.0}
            for name in CLASS_NAMES.values()
        }
        self._threads = [
            threading.Thread(target=self._loop, args=(False,), name=f"batcher-{recognizer.name}", daemon=True)
        ]
        if options.final_lane:
            self._threads.append(
                threading.Thread(target=self._loop, args=(True,), daemon=True, name=f"batcher-{recognizer.name}-finals")
            )
        for t in self._threads:
            t.start()

    def decode(self, stream, timeout: float | None = None) -> None:
        """Run one decoding step of ``stream`` in the next batch of its class; returns when it is done."""
        priority = URGENT if self.recognizer.finalizing(stream) else INTERIM
        fut: Future = Future()
        with self._cv:
            if self._closed:
                raise _closed_error()
            heapq.heappush(self._heap, (priority, next(self._order), time.monotonic(), stream, fut))
            self._cv.notify_all()
        fut.result(timeout=timeout)

    def queued(self) -> int:
        """Steps waiting for a batch."""
        with self._cv:
            return len(self._heap)

    def _pop(self, n: int, priority: int | None = None) -> list:
        items = []
        while self._heap and len(items) < n and (priority is None or self._heap[0][0] == priority):
            items.append(heapq.heappop(self._heap))
        return items

    def _gather(self, urgent_only: bool) -> list:
        """The next batch (all of one class), or [] once closed. Called without the lock."""
        with self._cv:
            while True:
                while not self._closed and (not self._heap or (urgent_only and self._heap[0][0] != URGENT)):
                    self._cv.wait()
                if self._closed:
                    return []
                if self._heap[0][0] == URGENT:
                    return self._pop(self.options.max_batch_size, URGENT)
                deadline = self._heap[0][2] + self.options.max_wait_ms / 1000  # the oldest interim step's
                while (
                    not self._closed and self._heap[0][0] == INTERIM and len(self._heap) < self.options.max_batch_size
                ):
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._cv.wait(left)
                if not self._closed and self._heap[0][0] == INTERIM:
                    return self._pop(self.options.max_batch_size)
                # closed (loop top returns) or an urgent step arrived (loop top takes it first)

    def _loop(self, urgent_only: bool) -> None:
        while True:
            items = self._gather(urgent_only)
            if not items:
                break
            live = [(s, f) for _, _, _, s, f in items if f.set_running_or_notify_cancel()]
            if not live:
                continue
            t0 = time.monotonic()
            try:  # the two workers decode disjoint streams (a stream is queued once at a time)
                self.recognizer.decode_streams([s for s, _ in live])
            except BaseException as exc:  # hand every error to the waiting callers
                for _, f in live:
                    f.set_exception(exc)
            else:
                for _, f in live:
                    f.set_result(None)
            with self._cv:
                stats = self.stats[CLASS_NAMES[items[0][0]]]
                stats["steps"] += len(live)
                stats["batches"] += 1
                stats["compute_s"] += time.monotonic() - t0
                for _, _, queued, _, _ in items:
                    stats["wait_s"] += t0 - queued
                    stats["max_wait_s"] = max(stats["max_wait_s"], t0 - queued)
                self.batches += 1
                self.streams_decoded += len(live)
        with self._cv:  # closed: fail whatever is still queued
            left = self._pop(len(self._heap))
        for _, _, _, _, f in left:
            if f.set_running_or_notify_cancel():
                f.set_exception(_closed_error())

    def close(self, timeout: float = 5.0) -> None:
        """Finish the batch in progress, fail the queued steps, stop the worker."""
        with self._cv:
            if self._closed:
                return
            self._closed = True
            self._cv.notify_all()
        for t in self._threads:
            t.join(timeout)
