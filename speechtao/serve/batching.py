"""Decode many streams together: a queue, a maximum batch size and a maximum wait.

Each connection's thread hands its stream to :meth:`Batcher.decode` when the stream is ready and blocks until
the step is done. One worker thread takes the first waiting stream, waits up to ``max_wait_ms`` for more (or
until ``max_batch_size`` are waiting), and decodes them with one :meth:`Recognizer.decode_streams` call, in
which model windows of similar length share a forward pass. A lone stream is decoded after at most
``max_wait_ms``; under load the batches fill without waiting.

Usage::

    batcher = Batcher(recognizer, BatchOptions(max_batch_size=16, max_wait_ms=10))
    while recognizer.is_ready(stream):
        batcher.decode(stream)          # raises what decode_streams raised, in the caller's thread
    batcher.close()
"""

from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass

from ..errors import SpeechtaoError


@dataclass(frozen=True)
class BatchOptions:
    max_batch_size: int = 16  # streams decoded in one step at most
    max_wait_ms: float = 10.0  # how long the first waiting stream waits for others

    def __post_init__(self) -> None:
        if self.max_batch_size < 1:
            raise ValueError(f"max_batch_size must be >= 1, got {self.max_batch_size}")
        if not 0 <= self.max_wait_ms <= 1000:
            raise ValueError(f"max_wait_ms must be in [0, 1000], got {self.max_wait_ms}")


class BatcherClosed(SpeechtaoError):
    """The batcher was closed (the server is stopping)."""


class Batcher:
    """One worker thread decoding the streams queued by any number of caller threads."""

    def __init__(self, recognizer, options: BatchOptions = BatchOptions()):
        self.recognizer = recognizer
        self.options = options
        self._queue: queue.Queue = queue.Queue()
        self._closed = False
        self.batches = 0  # decode steps run
        self.streams_decoded = 0  # stream steps run (streams_decoded / batches = mean batch size)
        self._thread = threading.Thread(target=self._loop, name=f"batcher-{recognizer.name}", daemon=True)
        self._thread.start()

    def decode(self, stream, timeout: float | None = None) -> None:
        """Run one decoding step of ``stream`` in the next batch; returns when it is done."""
        if self._closed:
            raise BatcherClosed("the recognizer is shutting down (retry on another server)")
        fut: Future = Future()
        self._queue.put((stream, fut))
        fut.result(timeout=timeout)

    def _gather(self) -> list:
        first = self._queue.get()
        if first is None:
            return []
        items = [first]
        deadline = time.monotonic() + self.options.max_wait_ms / 1000
        while len(items) < self.options.max_batch_size:
            left = deadline - time.monotonic()
            try:
                item = self._queue.get(timeout=left) if left > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if item is None:
                self._queue.put(None)  # let the loop see it after this batch
                break
            items.append(item)
        return items

    def _loop(self) -> None:
        while True:
            items = self._gather()
            if not items:
                break
            live = [(s, f) for s, f in items if f.set_running_or_notify_cancel()]
            if not live:
                continue
            try:
                with self.recognizer.lock:
                    self.recognizer.decode_streams([s for s, _ in live])
            except BaseException as exc:  # hand every error to the waiting callers
                for _, f in live:
                    f.set_exception(exc)
            else:
                for _, f in live:
                    f.set_result(None)
            self.batches += 1
            self.streams_decoded += len(live)
        # Closed: fail whatever is still queued.
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not None and item[1].set_running_or_notify_cancel():
                item[1].set_exception(BatcherClosed("the recognizer is shutting down (retry on another server)"))

    def close(self, timeout: float = 5.0) -> None:
        """Finish the batch in progress, fail the queued steps, stop the worker."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(None)
        self._thread.join(timeout)
