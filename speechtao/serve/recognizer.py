"""The serving API: streaming and offline recognition with a CTC model, usable without gRPC.

Usage (the shape of sherpa-onnx's API)::

    rec = Recognizer.from_path("model.onnx")                  # or a speechtao checkpoint
    s = rec.create_stream()
    for piece in microphone():                                # float32 samples at any rate
        s.accept_waveform(48000, piece)
        while rec.is_ready(s):
            rec.decode_stream(s)                              # or rec.decode_streams([s1, s2, ...]): one batch
        for r in s.pop_results():                             # interim (is_final False) and final results
            print(r.is_final, r.stability, r.text, [(w.word, w.start_ms, w.end_ms) for w in r.words])
    s.input_finished()
    while rec.is_ready(s):
        rec.decode_stream(s)
    print(rec.get_result(s).text)

    rec.recognize(samples, 16000)                             # offline: a list of final results

How a stream is decoded (``StreamingOptions``)::

    audio  |---- left context ----|== chunk ==|-- right context --|
    model     runs on the whole window (features normalized over it), batched with other streams' windows
    frames    of the chunk are committed (greedy CTC best symbol + probability per output frame),
              frames of the right context are a tentative look-ahead for the interim transcript

Feature normalization: with ``normalization="stream"`` (the default) a chunk window is normalized with the
statistics of all the utterance's frames received so far (:mod:`speechtao.serve.stream_norm`), which come closer
to the utterance's than those of one short window (``"window"``); final passes normalize over the utterance
exactly as offline decoding does.

Chunk and context sizes are rounded to whole output frames (hop x subsampling: 20 ms for QuartzNet, 80 ms for
CitriNet). Committed frames drive the endpointer (:mod:`speechtao.serve.endpointing`); at an endpoint, or at the
end of the stream, the utterance gets its final result. With ``final_pass="utterance"`` (the default) the final
result comes from one more pass over the utterance's audio, exactly as ``speechtao asr infer`` would decode it
(utterances longer than ``max_final_pass_s`` use their committed frames); with ``"chunks"`` the committed frames
are the final result (no extra pass: lower latency, the accuracy of the chunked decoding).

Interim results carry ``stability``: 0.9 times the share of the transcript's characters decoded from committed
frames (the rest comes from the look-ahead and may change). An early end-of-utterance interim (EndpointingConfig
``stop_history_eou``) has stability 1.0; finals have 1.0.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np

from ..asr.ctc import CTCHypothesis, Word, decode_best_path, word_times
from ..errors import AudioError
from .audio_input import StreamInput
from .backends import check_backend
from .decoding import FrameDecoder, GreedyDecoder, RequestDecoding, decode_alternatives
from .endpointing import EndpointConfig, Endpointer
from .stream_norm import FeatureStats, forward_stream_normalized, supports_stream_normalization

INTERIM_STABILITY = 0.9  # the stability of an interim decoded entirely from committed frames


@dataclass(frozen=True)
class StreamingOptions:
    """How streams are cut into windows and finalized."""

    chunk_ms: int = 160  # audio committed per decoding step (rounded up to whole output frames)
    left_context_ms: int = 1200  # audio before the chunk that the model sees (rounded up to whole frames)
    right_context_ms: int = 480  # audio after the chunk (look-ahead); the stream waits for it before decoding
    final_pass: Literal["utterance", "chunks"] = "utterance"  # where final transcripts come from (see above)
    max_final_pass_s: float = 30.0  # longer utterances are finalized from their committed frames
    max_utterance_s: float = 60.0  # an utterance this long is finalized even without an endpoint
    interim_results: bool = True  # emit interim results after each decoding step (when the text changes)
    normalization: Literal["stream", "window"] = "stream"  # feature statistics of chunk windows (see above)
    endpoint: EndpointConfig = field(default_factory=EndpointConfig)

    def __post_init__(self) -> None:
        if self.chunk_ms < 10:
            raise ValueError(f"chunk_ms must be >= 10, got {self.chunk_ms}")
        if self.left_context_ms < 0 or self.right_context_ms < 0:
            raise ValueError(
                f"context sizes must be >= 0 ms, got left {self.left_context_ms}, right {self.right_context_ms}"
            )
        if self.normalization not in ("stream", "window"):
            raise ValueError(f"normalization must be 'stream' or 'window', got {self.normalization!r}")
        if self.final_pass not in ("utterance", "chunks"):
            raise ValueError(f"final_pass must be 'utterance' or 'chunks', got {self.final_pass!r}")
        if not 0 < self.max_final_pass_s <= 600 or not 1 <= self.max_utterance_s <= 3600:
            raise ValueError(
                f"max_final_pass_s ({self.max_final_pass_s}) must be in (0, 600] and max_utterance_s "
                f"({self.max_utterance_s}) in [1, 3600]"
            )


@dataclass(frozen=True)
class Result:
    """One transcript of a stream: interim (``is_final`` False) or final."""

    text: str
    words: tuple[Word, ...]  # times in ms from the start of the stream; finals only (interims: ())
    is_final: bool
    stability: float  # 1.0 for finals and early-EOU interims; else 0.9 x the share of the text from committed frames
    confidence: float  # mean probability of the best symbol over the utterance's frames
    start_ms: int  # where the utterance begins in the stream
    audio_processed_s: float  # seconds of the stream's audio decoded so far
    channel: int = 0
    alternatives: tuple[Result, ...] = ()  # finals: the runners-up, best first (RequestDecoding.alternatives)


@dataclass
class _Job:
    kind: str  # "chunk" | "final"
    start: int  # absolute sample where the window starts
    end: int  # absolute sample where it ends (exclusive)
    commit_from: int = 0  # chunk: absolute sample of the first committed frame
    commit_to: int = 0  # chunk: absolute sample where committed frames end (exclusive)
    final_from_frames: bool = False  # final: from committed frames, no model pass


class StreamBuffer:
    """What every stream kind shares: the request's settings, the audio received (resampled to the model's rate
    and kept from the absolute sample ``_audio_base`` on) and the results waiting for the caller. One thread at a
    time may use a stream."""

    def __init__(self, rec, channel: int = 0):
        self._rec = rec
        self.channel = channel
        self.decoding: RequestDecoding | None = None  # the request's boosts and alternatives (LM decoders)
        self.interim_results = True  # False: this stream's client wants finals only
        self.rate = rec.sample_rate
        self._input = StreamInput(self.rate)
        self._audio = np.zeros(0, np.float32)  # samples from absolute index _audio_base on
        self._audio_base = 0
        self.num_samples = 0  # samples received so far (at the model's rate)
        self.finished = False
        self._results: deque[Result] = deque()
        self._last: Result | None = None

    # -- input -------------------------------------------------------------------------------------------

    def accept_waveform(self, sample_rate: int, samples: np.ndarray) -> None:
        """Append float samples in [-1, 1] (shape (T,)) at ``sample_rate`` Hz (resampled to the model's rate)."""
        self._append(self._input.push(sample_rate, samples))

    def _append(self, x: np.ndarray) -> None:
        if len(x):
            self._audio = np.concatenate([self._audio, x]) if len(self._audio) else x.copy()
            self.num_samples += len(x)

    def input_finished(self) -> None:
        """No more audio: the rest of the stream is decoded and finalized."""
        if self.finished:
            return
        self._append(self._input.finish())
        self.finished = True

    def _slice(self, a: int, b: int) -> np.ndarray:
        return self._audio[a - self._audio_base : b - self._audio_base]

    def _drop_before(self, keep: int) -> None:
        """Forget the audio before absolute sample ``keep``."""
        if keep > self._audio_base:
            self._audio = self._audio[keep - self._audio_base :]
            self._audio_base = keep

    # -- results -----------------------------------------------------------------------------------------

    def pop_results(self) -> list[Result]:
        """Results produced since the last call, in order (interims and finals)."""
        out = list(self._results)
        self._results.clear()
        return out

    @property
    def seconds(self) -> float:
        return self.num_samples / self.rate

    def _emit(self, r: Result) -> None:
        self._results.append(r)
        self._last = r


class Stream(StreamBuffer):
    """The state of one audio stream of a :class:`Recognizer`. Create with :meth:`Recognizer.create_stream`;
    feed it, then decode it through its recognizer. One thread at a time may use a stream."""

    def __init__(self, rec: Recognizer, endpoint: EndpointConfig, channel: int = 0):
        super().__init__(rec, channel)
        self._spf = rec.samples_per_frame
        self._next_chunk = 0  # absolute sample where the next chunk to commit starts
        self._utt_start = 0  # absolute sample where the current utterance starts
        self._best: list[int] = []  # committed frames of the current utterance: best symbol ...
        self._prob: list[float] = []  # ... and its probability
        self._look_best = np.zeros(0, np.int64)  # tentative frames after the last chunk
        self._look_prob = np.zeros(0, np.float64)
        self._endpointer = Endpointer(endpoint, self._spf * 1000 / self.rate)
        self._finals: deque[_Job] = deque()  # utterances waiting for their final pass
        self._last_interim_text = ""
        self._endpoint_seen = False
        self._done = False  # the end of the stream has been finalized
        self.stats = FeatureStats()  # running log-mel statistics for "stream" normalization

    def _trim(self) -> None:
        """Drop audio that no later window or final pass needs."""
        self._drop_before(min([self._next_chunk - self._rec.left, self._utt_start] + [j.start for j in self._finals]))


class Recognizer:
    """A CTC model behind a batched streaming decoder.

    Args:
        backend: an :class:`speechtao.serve.backends.AcousticBackend` (:func:`~speechtao.serve.backends.load_backend`).
        options: chunking, context, finalization and endpointing.
        name: the model's name in a model repository.
        decoder: the decode step of final passes (:mod:`speechtao.serve.decoding`); greedy by default.
    """

    def __init__(
        self,
        backend,
        options: StreamingOptions = StreamingOptions(),
        name: str = "default",
        max_batch_size: int = 16,
        decoder: FrameDecoder | None = None,
    ):
        self.backend = check_backend(backend)
        self.decoder = decoder or GreedyDecoder(backend.tokenizer.blank_id)
        self.options = options
        self.name = name
        self.max_batch_size = max_batch_size
        self.tokenizer = backend.tokenizer
        self.blank_id = backend.tokenizer.blank_id
        self.sample_rate = backend.sample_rate
        self.samples_per_frame = backend.samples_per_frame
        self.frame_shift_s = self.samples_per_frame / self.sample_rate
        spf = self.samples_per_frame

        def frames(ms: int) -> int:  # ms -> samples, rounded up to whole output frames
            return int(math.ceil(ms * self.sample_rate / 1000 / spf)) * spf

        self.chunk = max(frames(options.chunk_ms), spf)
        self.left = frames(options.left_context_ms)
        self.right = frames(options.right_context_ms)
        self.max_final_samples = int(options.max_final_pass_s * self.sample_rate)
        self.max_utt_samples = int(options.max_utterance_s * self.sample_rate)
        self._stream_norm = options.normalization == "stream" and supports_stream_normalization(backend)
        self.seconds_in_model = 0.0  # wall seconds in backend calls (for RTF figures)
        self._time_lock = threading.Lock()  # decode_streams may run in several threads (on disjoint streams)
        self.written_form = False  # transcripts are spoken-form words: ITN and the punctuation model apply

    def streaming_parameters(self) -> dict[str, str]:
        """What GetRivaSpeechRecognitionConfig lists for the streaming ("online") model."""
        o = self.options
        return {
            "chunk_ms": str(o.chunk_ms),
            "left_context_ms": str(o.left_context_ms),
            "right_context_ms": str(o.right_context_ms),
            "final_pass": o.final_pass,
        }

    @classmethod
    def from_path(
        cls,
        model: str,
        options: StreamingOptions = StreamingOptions(),
        device: str = "cpu",
        threads: int = 1,
        name: str = "default",
        max_batch_size: int = 16,
    ) -> Recognizer:
        """An exported ONNX file (with speechtao metadata) or a speechtao checkpoint / ``.nemo`` / preset."""
        from .backends import load_backend

        return cls(
            load_backend(model, device=device, threads=threads), options, name=name, max_batch_size=max_batch_size
        )

    # -- the sherpa-onnx style API ------------------------------------------------------------------------

    def create_stream(self, endpoint: EndpointConfig | None = None, channel: int = 0) -> Stream:
        return Stream(self, endpoint or self.options.endpoint, channel)

    def _next_job(self, s: Stream) -> _Job | None:
        if s._done:
            return None
        if s._finals:
            return s._finals[0]
        if not s.finished:
            if s.num_samples >= s._next_chunk + self.chunk + self.right:
                a = s._next_chunk
                return _Job("chunk", max(a - self.left, 0), a + self.chunk + self.right, a, a + self.chunk)
            return None
        # End of input: finalize the last utterance, from one pass over it or from its committed frames
        # (then the frames not yet committed are decoded first, in one window).
        final = self._final_job(s, s.num_samples)
        if final.final_from_frames and s._next_chunk < s.num_samples:
            a = s._next_chunk
            return _Job("chunk", max(a - self.left, 0), s.num_samples, a, s.num_samples)
        return final

    def _final_job(self, s: Stream, end: int) -> _Job:
        by_frames = self.options.final_pass == "chunks" or end - s._utt_start > self.max_final_samples
        return _Job("final", s._utt_start, end, final_from_frames=by_frames)

    def is_ready(self, s: Stream) -> bool:
        """True when the stream has a window (or a final pass) to decode."""
        return self._next_job(s) is not None

    def finalizing(self, s: Stream) -> bool:
        """True when the stream's next step produces a final result: its input has ended, or an endpoint's
        final pass is queued. A batcher runs such steps before interim ones (:mod:`speechtao.serve.batching`)."""
        return not s._done and (s.finished or bool(s._finals))

    def is_endpoint(self, s: Stream) -> bool:
        """True when a final result was produced since the last call (sherpa-onnx's endpoint flag)."""
        seen, s._endpoint_seen = s._endpoint_seen, False
        return seen

    def get_result(self, s: Stream) -> Result:
        """The latest result of the stream (interim or final); empty before the first one."""
        return s._last or Result("", (), False, 0.0, 0.0, 0, s._next_chunk / self.sample_rate, s.channel)

    def decode_stream(self, s: Stream) -> None:
        self.decode_streams([s])

    def decode_streams(self, streams: Sequence[Stream]) -> None:
        """One decoding step for each ready stream: model windows run in batches of similar length. A chunk
        window that ends an utterance (an endpoint, or the last window of a finished stream) is followed by the
        utterance's final in the same call, so the final does not wait for another step."""
        jobs = [(s, j) for s in streams if (j := self._next_job(s)) is not None]
        self._run_jobs(jobs)
        follow = [
            (s, j)
            for s, done in jobs
            if done.kind == "chunk" and (j := self._next_job(s)) is not None and j.kind == "final"
        ]
        self._run_jobs(follow)

    def _run_jobs(self, jobs: list) -> None:
        """Finals from committed frames at once; model passes batched by kind, final passes first."""
        model_jobs = []
        for s, j in jobs:
            if j.kind == "final" and j.final_from_frames:
                self._finish_from_frames(s, j)
            else:
                model_jobs.append((s, j))
        for kind in ("final", "chunk"):  # chunk windows and final passes are normalized differently
            group = sorted((sj for sj in model_jobs if sj[1].kind == kind), key=lambda sj: sj[1].end - sj[1].start)
            batch: list = []
            for sj in group:
                n = sj[1].end - sj[1].start
                if batch and (len(batch) == self.max_batch_size or n > 1.5 * (batch[0][1].end - batch[0][1].start)):
                    self._run(batch)
                    batch = []
                batch.append(sj)
            if batch:
                self._run(batch)

    # -- decoding ----------------------------------------------------------------------------------------

    def _run(self, batch: list) -> None:
        import time

        windows = [s._slice(j.start, min(j.end, s.num_samples)) for s, j in batch]
        lengths = np.array([len(w) for w in windows], dtype=np.int64)
        audio = np.zeros((len(windows), max(int(lengths.max()), 1)), dtype=np.float32)  # (B, T)
        for i, w in enumerate(windows):
            audio[i, : len(w)] = w
        t0 = time.perf_counter()
        if batch[0][1].kind == "chunk" and self._stream_norm:
            windows = [(s.stats, j.start, s._utt_start) for s, j in batch]
            log_probs, out_lengths = forward_stream_normalized(self.backend, windows, audio, lengths)
        else:
            log_probs, out_lengths = self.backend(audio, lengths)  # (B, T', V+1), (B,)
        with self._time_lock:
            self.seconds_in_model += time.perf_counter() - t0
        best = log_probs.argmax(-1)  # (B, T')
        prob = np.exp(np.take_along_axis(log_probs, best[..., None], -1)[..., 0].astype(np.float64))  # (B, T')
        for i, (s, j) in enumerate(batch):
            n = int(out_lengths[i])
            if j.kind == "chunk":
                self._commit(s, j, best[i, :n], prob[i, :n])
            else:
                self._finalized(s, j, self._final_results(s, log_probs[i, :n], j.start, j.end))

    def _commit(self, s: Stream, j: _Job, best: np.ndarray, prob: np.ndarray) -> None:
        spf = self.samples_per_frame
        f0 = (j.commit_from - j.start) // spf
        f1 = min(-(-(j.commit_to - j.start) // spf), len(best))
        for k in range(f0, f1):
            b = int(best[k])
            s._best.append(b)
            s._prob.append(float(prob[k]))
            event = s._endpointer.push(b == self.blank_id)
            pos = j.commit_from + (k - f0 + 1) * spf  # absolute sample where this frame ends
            if event == "eou":
                self._eou(s)
            elif event == "end" or (pos - s._utt_start >= self.max_utt_samples):
                self._end_utterance(s, pos)
            elif not s._endpointer.started and len(s._best) > s._endpointer.n_stop:
                # No speech yet: keep only the recent silence, so the utterance starts close to its speech.
                drop = len(s._best) - s._endpointer.n_stop
                del s._best[:drop], s._prob[:drop]
                s._utt_start += drop * spf
        s._next_chunk = j.commit_to
        s._look_best, s._look_prob = best[f1:], prob[f1:]
        self._interim(s)
        s._trim()

    def _hyp(self, best: np.ndarray, prob: np.ndarray) -> CTCHypothesis:
        return decode_best_path(np.asarray(best, dtype=np.int64), np.asarray(prob, dtype=np.float64), self.blank_id)

    def _interim(self, s: Stream) -> None:
        if not (self.options.interim_results and s.interim_results) or not s._endpointer.started:
            return
        committed = self.tokenizer.decode(list(self._hyp(s._best, s._prob).token_ids))
        full_hyp = self._hyp(
            np.concatenate([np.asarray(s._best, np.int64), s._look_best]),
            np.concatenate([np.asarray(s._prob, np.float64), s._look_prob]),
        )
        text = self.tokenizer.decode(list(full_hyp.token_ids)).strip()
        if not text or text == s._last_interim_text:
            return
        s._last_interim_text = text
        stability = INTERIM_STABILITY * min(len(committed.strip()) / len(text), 1.0)
        s._emit(
            Result(
                text,
                (),
                False,
                round(stability, 3),
                full_hyp.confidence,
                int(round(s._utt_start * 1000 / self.sample_rate)),
                s._next_chunk / self.sample_rate,
                s.channel,
            )
        )

    def _eou(self, s: Stream) -> None:
        hyp = self._hyp(s._best, s._prob)
        text = self.tokenizer.decode(list(hyp.token_ids)).strip()
        if text:
            s._emit(
                Result(
                    text,
                    (),
                    False,
                    1.0,
                    hyp.confidence,
                    int(round(s._utt_start * 1000 / self.sample_rate)),
                    s._next_chunk / self.sample_rate,
                    s.channel,
                )
            )

    def _end_utterance(self, s: Stream, pos: int) -> None:
        """An endpoint at absolute sample ``pos``: queue the utterance's final, start a new one there."""
        if s._endpointer.started:
            job = self._final_job(s, pos)
            if job.final_from_frames:
                self._finish_from_frames(s, job, keep_stream=True)
            else:
                s._finals.append(job)
        s._best, s._prob = [], []
        s._utt_start = pos
        s._endpointer.reset()
        s._last_interim_text = ""

    def _final_results(self, s: Stream, log_probs: np.ndarray, start: int, end: int) -> Result | None:
        """The final of one utterance's log-probs, with the alternatives the stream's request asks for."""
        best, *others = decode_alternatives(self.decoder, log_probs, s.decoding)
        res = self._final_result(s.channel, best, start, end)
        alts = [r for r in (self._final_result(s.channel, h, start, end) for h in others) if r is not None]
        return replace(res, alternatives=tuple(alts)) if res is not None and alts else res

    def _final_result(self, channel: int, hyp: CTCHypothesis, start: int, end: int) -> Result | None:
        text = self.tokenizer.decode(list(hyp.token_ids)).strip()
        if not text:
            return None
        shift = int(round(start * 1000 / self.sample_rate))
        last_ms = int(end * 1000 // self.sample_rate)
        words = tuple(
            Word(w.word, shift + w.start_ms, max(min(shift + w.end_ms, last_ms), shift + w.start_ms + 1), w.confidence)
            for w in word_times(hyp, self.tokenizer, self.frame_shift_s)
        )
        return Result(text, words, True, 1.0, hyp.confidence, shift, end / self.sample_rate, channel)

    def _finalized(self, s: Stream, j: _Job, r: Result | None) -> None:
        if s._finals and s._finals[0] is j:
            s._finals.popleft()
        elif s.finished:
            s._done = True
            s._best, s._prob = [], []
        if r is not None:
            s._emit(r)
            s._endpoint_seen = True
        s._trim()

    def _finish_from_frames(self, s: Stream, j: _Job, keep_stream: bool = False) -> None:
        hyp = self._hyp(s._best, s._prob)
        r = self._final_result(s.channel, hyp, j.start, j.end)
        if keep_stream:  # an endpoint inside the stream, finalized at once
            if r is not None:
                s._emit(r)
                s._endpoint_seen = True
            return
        self._finalized(s, j, r)

    # -- offline -----------------------------------------------------------------------------------------

    def recognize(
        self, samples: np.ndarray, sample_rate: int, channel: int = 0, decoding: RequestDecoding | None = None
    ) -> list[Result]:
        """Final results for a whole recording (T,). Up to ``max_final_pass_s`` it is one pass, as
        ``speechtao asr infer`` decodes a file. Longer audio is run in overlapping windows
        (:func:`speechtao.asr.longform.windowed_log_probs`: 10 s, 4 s overlap, stitched mid-overlap, within a
        Whisper encoder's 30 s), its frames cut into utterances by the endpointer as a stream would be, and each
        utterance decoded with the decode step: a final result per utterance. ``decoding``: the request's
        boosts and alternatives."""
        x = np.asarray(samples, dtype=np.float32)
        if x.ndim != 1 or len(x) == 0:
            raise AudioError(f"recognize: expected non-empty 1-D samples, got shape {x.shape}")
        s = self.create_stream(channel=channel)
        s.decoding = decoding
        s.accept_waveform(sample_rate, x)
        s.input_finished()
        if s.num_samples <= self.max_final_samples:
            self._run([(s, _Job("final", 0, s.num_samples))])
            return [r for r in s.pop_results() if r.is_final]
        import time

        from ..asr.longform import DEFAULT_OVERLAP_S, DEFAULT_WINDOW_S, windowed_log_probs

        t0 = time.perf_counter()
        spf = self.samples_per_frame
        log_probs = windowed_log_probs(
            s._audio,
            self.backend,
            window=int(DEFAULT_WINDOW_S * self.sample_rate),
            overlap=int(DEFAULT_OVERLAP_S * self.sample_rate),
            samples_per_frame=spf,
        )  # (T', V+1)
        with self._time_lock:
            self.seconds_in_model += time.perf_counter() - t0
        blank = log_probs.argmax(-1) == self.blank_id
        spans = utterance_spans(
            blank, self.options.endpoint, spf * 1000 / self.sample_rate, self.max_utt_samples // spf
        )
        results = [self._final_results(s, log_probs[a:b], a * spf, min(b * spf, s.num_samples)) for a, b in spans]
        return [r for r in results if r is not None]


def utterance_spans(
    blank: np.ndarray, endpoint: EndpointConfig, frame_ms: float, max_frames: int
) -> list[tuple[int, int]]:
    """Frame spans ``[a, b)`` of the utterances in a recording's frames (``blank`` (T,) bool: the blank is the
    best symbol), cut as a stream's committed frames are: at endpoints and every ``max_frames``; silence
    before speech is trimmed to the endpointer's stop window. The last span runs to the end."""
    ep = Endpointer(endpoint, frame_ms)
    spans, start = [], 0
    for k, b in enumerate(blank.tolist()):
        event = ep.push(b)
        if event == "end" or k + 1 - start >= max_frames:
            if ep.started:
                spans.append((start, k + 1))
            start = k + 1
            ep.reset()
        elif not ep.started and k + 1 - start > ep.n_stop:
            start = k + 1 - ep.n_stop
    if start < len(blank):
        spans.append((start, len(blank)))
    return spans
