"""Serving an encoder-decoder model (Whisper): offline and streaming recognition by re-decoding.

A Whisper model reads a whole window of audio and writes text; it has no frames to commit as a CTC model has. A
stream is therefore served by decoding its growing utterance again and again:

- **interims**: after every ``redecode_ms`` of new audio (once speech has started), the utterance so far is
  decoded with ``interim_beam`` (1: greedy). The words on which this decode and the previous one agree (compared
  without case and punctuation) are sent as an interim result of stability 0.9, the rest as a second interim
  result of stability 0.1 that starts with a space, in the same response: a client that joins a response's
  interim results (as ``riva.client``'s printer does) reads the whole hypothesis. A decode of ``d`` seconds
  makes the stream wait for ``d / max_interim_share`` seconds of new audio before the next one, so interims
  cost at most that share of real time per stream however slow the CPU is;
- **precision**: where the CPU computes bfloat16 natively (avx512_bf16 / AMX), interim decodes run the encoder
  in bf16 (``bf16_encoder="interims"``): about half the CPU of a float32 greedy decode, the same text on all 18
  Debian real recordings for tiny.en and base; ``"all"`` does so for finals too, ``"off"`` nowhere;
- **finals**: with the model reference's beam (``whisper:base:beam=5``) over the utterance's audio, exactly as
  ``speechtao asr infer`` decodes that audio (unless ``bf16_encoder="all"``), at an endpoint, when the utterance reaches ``max_utterance_s``
  (30 s: Whisper's window), and at the end of the stream. Word times come from the decode's segments
  (timestamps with ``:timestamps``, else the utterance), in ms from the start of the stream;
- **endpoints**: Whisper emits no blank frames, so the endpointer (:mod:`speechtao.serve.endpointing`, Riva's
  ``EndpointingConfig``) runs on the frames of an energy voice-activity detector (:class:`EnergyVAD`): a 20 ms
  frame is "blank" when its energy is below ``vad_floor_dbfs`` or within ``vad_margin_db`` of the background
  (the 10th percentile of the last 3 s of frame energies). An utterance starts at the previous endpoint (leading silence is kept: a stream of one
  utterance decodes exactly as the file it came from). ``stop_history_eou`` is not used.

Offline ``recognize`` decodes the whole recording in 30 s windows (:func:`speechtao.asr.whisper_seq.transcribe`):
one final result per segment, their texts joined are ``speechtao asr infer``'s transcript.

:class:`SeqRecognizer` has the methods :class:`speechtao.serve.recognizer.Recognizer` offers the session, batcher
and gRPC layer (``create_stream``, ``is_ready``, ``finalizing``, ``decode_streams``, ``recognize``, ...)::

    rec = SeqRecognizer(WhisperSeqBackend("whisper:tiny.en"), SeqStreamingOptions(redecode_ms=1000))
    s = rec.create_stream()
    s.accept_waveform(16000, samples)
    while rec.is_ready(s):
        rec.decode_stream(s)
    print([(r.is_final, r.stability, r.text) for r in s.pop_results()])
"""

from __future__ import annotations

import math
import string
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from ..asr.ctc import Word
from ..errors import AudioError, InputError
from .audio_input import StreamInput
from .decoding import RequestDecoding
from .endpointing import EndpointConfig, Endpointer
from .recognizer import INTERIM_STABILITY, Result, StreamBuffer

UNSTABLE = 0.1  # the stability of an interim's words the last two decodes do not agree on
VAD_FRAME_MS = 20
MIN_DECODE_S = 0.1  # shorter audio is not decoded (no result)


@dataclass(frozen=True)
class SeqStreamingOptions:
    """How streams of an encoder-decoder model are re-decoded and finalized (see the module docstring)."""

    redecode_ms: int = 1000  # new audio between interim decodes, at least
    interim_beam: int = 1  # beam of interim decodes (finals use the model reference's beam)
    max_interim_share: float = 0.5  # interim decoding takes at most this share of a stream's real time
    max_utterance_s: float = 30.0  # an utterance this long is finalized (Whisper's window)
    interim_results: bool = True
    # where the encoder computes in bfloat16 when the CPU has it natively (avx512_bf16 / AMX; else float32
    # everywhere): "interims" (finals stay float32, exactly asr infer's), "all" (finals and offline too), "off"
    bf16_encoder: Literal["off", "interims", "all"] = "interims"
    vad_margin_db: float = 10.0  # a frame within this many dB of the background is silence
    vad_floor_dbfs: float = -60.0  # a frame below this level is silence
    endpoint: EndpointConfig = field(default_factory=EndpointConfig)

    def __post_init__(self) -> None:
        if self.redecode_ms < 100:
            raise ValueError(f"redecode_ms must be >= 100, got {self.redecode_ms}")
        if self.interim_beam < 1:
            raise ValueError(f"interim_beam must be >= 1, got {self.interim_beam}")
        if not 0 < self.max_interim_share <= 4:
            raise ValueError(f"max_interim_share must be in (0, 4], got {self.max_interim_share}")
        if not 1 <= self.max_utterance_s <= 30:
            raise ValueError(f"max_utterance_s must be in [1, 30] (Whisper's window), got {self.max_utterance_s}")
        if self.bf16_encoder not in ("off", "interims", "all"):
            raise ValueError(f"bf16_encoder must be off, interims or all, got {self.bf16_encoder!r}")
        if self.vad_margin_db <= 0:
            raise ValueError(f"vad_margin_db must be > 0, got {self.vad_margin_db}")


class EnergyVAD:
    """One bool per 20 ms frame: True for silence (see the module docstring). ``push(frame (N,))``; the
    background level is the 10th percentile of the last ``memory_s`` of frame energies."""

    def __init__(self, margin_db: float, floor_dbfs: float, frame_ms: float = VAD_FRAME_MS, memory_s: float = 3.0):
        self.margin_db = margin_db
        self.floor_dbfs = floor_dbfs
        self._recent: deque[float] = deque(maxlen=max(1, int(memory_s * 1000 / frame_ms)))

    def push(self, frame: np.ndarray) -> bool:
        energy = 10 * math.log10(float(np.mean(np.square(frame, dtype=np.float64))) + 1e-12)
        self._recent.append(energy)
        floor = float(np.percentile(self._recent, 10))  # the background: quieter than 90% of recent frames
        return energy < max(floor + self.margin_db, self.floor_dbfs)


def _key(word: str) -> str:
    return word.strip(string.punctuation).lower()


def agreed_words(previous: Sequence[str], current: Sequence[str]) -> int:
    """How many leading words of ``current`` the ``previous`` hypothesis has too (case and punctuation ignored)."""
    n = 0
    for a, b in zip(previous, current):
        if _key(a) != _key(b):
            break
        n += 1
    return n


class SeqStream(StreamBuffer):
    """The state of one audio stream of a :class:`SeqRecognizer` (one thread at a time). ``decoding`` is not
    used: Whisper decoding has no boosts or N-best here; ``interim_results`` False skips interim decodes."""

    def __init__(self, rec: SeqRecognizer, endpoint: EndpointConfig, channel: int = 0):
        super().__init__(rec, channel)
        self._done = False
        self._utt_start = 0  # absolute sample where the current utterance starts
        self._finals: deque[tuple[int, int]] = deque()  # utterances [start, end) waiting for their final decode
        self._frame = rec.sample_rate * VAD_FRAME_MS // 1000
        self._vad_pos = 0  # absolute sample of the next VAD frame
        o = rec.options
        self._vad = EnergyVAD(o.vad_margin_db, o.vad_floor_dbfs)
        self._endpointer = Endpointer(endpoint, VAD_FRAME_MS)
        self._decoded_at = 0  # num_samples at the last interim decode of this utterance
        self._wait = rec.redecode  # samples of new audio the next interim decode waits for
        self._words: list[str] = []  # the last interim decode's words
        self._last_text = ""
        self._endpoint_seen = False

    def _append(self, x: np.ndarray) -> None:
        super()._append(x)  # then run the voice detector over the new whole frames
        while self._vad_pos + self._frame <= self.num_samples:
            end = self._vad_pos + self._frame
            event = self._endpointer.push(self._vad.push(self._slice(self._vad_pos, end)))
            self._vad_pos = end
            if event == "end" or end - self._utt_start >= self._rec.max_utt:
                self._end_utterance(end)

    def _end_utterance(self, pos: int) -> None:
        self._finals.append((self._utt_start, pos))
        self._utt_start = pos
        self._endpointer.reset()
        self._words, self._last_text = [], ""
        self._decoded_at, self._wait = pos, self._rec.redecode

    def _trim(self) -> None:
        self._drop_before(min([self._utt_start, self._vad_pos] + [a for a, _ in self._finals]))


class SeqRecognizer:
    """An encoder-decoder model (:class:`speechtao.serve.backends.SequenceBackend`) behind streaming and offline
    recognition (see the module docstring).

    Args:
        backend: a :class:`~speechtao.serve.backends.WhisperSeqBackend` (or any :class:`SequenceBackend`).
        options: re-decoding, finalization and endpointing.
        name: the model's name in a model repository.
    """

    def __init__(self, backend, options: SeqStreamingOptions = SeqStreamingOptions(), name: str = "default"):
        missing = [m for m in ("sample_rate", "window_s", "beam_size", "written_form", "transcribe", "info")]
        missing = [m for m in missing if not hasattr(backend, m)]
        if missing:
            raise InputError(
                f"{type(backend).__name__} is not a sequence backend: it lacks {', '.join(missing)} "
                "(see speechtao.serve.backends.SequenceBackend)"
            )
        self.backend = backend
        self.options = options
        self.name = name
        self.sample_rate = int(backend.sample_rate)
        self.written_form = bool(backend.written_form)
        self.redecode = int(options.redecode_ms * self.sample_rate / 1000)
        self.max_utt = int(min(options.max_utterance_s, backend.window_s) * self.sample_rate)
        self.seconds_in_model = 0.0  # wall seconds in backend calls (for RTF figures)
        self._time_lock = threading.Lock()
        from ..train.precision import cpu_has_native_bf16

        self.bf16 = options.bf16_encoder if cpu_has_native_bf16() else "off"  # what runs here

    def streaming_parameters(self) -> dict[str, str]:
        """What GetRivaSpeechRecognitionConfig lists for the streaming ("online") model."""
        o = self.options
        return {
            "redecode_ms": str(o.redecode_ms),
            "interim_beam": str(o.interim_beam),
            "final_beam": str(self.backend.beam_size),
            "max_utterance_s": f"{self.max_utt / self.sample_rate:g}",
            "endpointing": "energy_vad",
            "bf16_encoder": self.bf16,
        }

    # -- the sherpa-onnx style API, as Recognizer's -------------------------------------------------------

    def create_stream(self, endpoint: EndpointConfig | None = None, channel: int = 0) -> SeqStream:
        return SeqStream(self, endpoint or self.options.endpoint, channel)

    def _next_job(self, s: SeqStream) -> tuple[str, int, int] | None:
        if s._done:
            return None
        if s._finals:
            return ("final", *s._finals[0])
        if s.finished:
            return ("last", s._utt_start, s.num_samples)
        if (
            self.options.interim_results
            and s.interim_results
            and s._endpointer.started
            and s.num_samples - max(s._decoded_at, s._utt_start) >= s._wait
        ):
            return ("interim", s._utt_start, s.num_samples)
        return None

    def is_ready(self, s: SeqStream) -> bool:
        return self._next_job(s) is not None

    def finalizing(self, s: SeqStream) -> bool:
        """True when the stream's next step produces a final result (the batcher runs those first)."""
        return not s._done and (s.finished or bool(s._finals))

    def is_endpoint(self, s: SeqStream) -> bool:
        seen, s._endpoint_seen = s._endpoint_seen, False
        return seen

    def get_result(self, s: SeqStream) -> Result:
        return s._last or Result("", (), False, 0.0, 0.0, 0, 0.0, s.channel)

    def decode_stream(self, s: SeqStream) -> None:
        self.decode_streams([s])

    def decode_streams(self, streams: Sequence[SeqStream]) -> None:
        """One step for each ready stream (one decode each, one stream after another)."""
        for s in streams:
            job = self._next_job(s)
            if job is None:
                continue
            kind, start, end = job
            if kind == "interim":
                self._interim(s, start, end)
                continue
            if kind == "final":
                s._finals.popleft()
            else:
                s._done = True
            r = self._final(s.channel, s._slice(start, end), start)
            if r is not None:
                s._emit(r)
                s._endpoint_seen = True
            s._trim()

    # -- decoding ----------------------------------------------------------------------------------------

    def _transcribe(self, audio: np.ndarray, beam_size: int, interim: bool = False):
        bf16 = self.bf16 == "all" or (self.bf16 == "interims" and interim)
        t0 = time.perf_counter()
        res = self.backend.transcribe(audio, beam_size, bf16=bf16)
        with self._time_lock:
            self.seconds_in_model += time.perf_counter() - t0
        return res, time.perf_counter() - t0

    def _interim(self, s: SeqStream, start: int, end: int) -> None:
        res, seconds = self._transcribe(s._slice(start, end), self.options.interim_beam, interim=True)
        s._decoded_at = end
        s._wait = max(self.redecode, int(seconds / self.options.max_interim_share * self.sample_rate))
        words = res.text.split()
        n = agreed_words(s._words, words)
        s._words = words
        text = " ".join(words)
        if not text or text == s._last_text:
            return
        s._last_text = text
        stable, rest = " ".join(words[:n]), " ".join(words[n:])
        conf = math.exp(res.avg_logprob) if res.segments else 0.0
        start_ms, seconds_in = int(round(start * 1000 / self.sample_rate)), end / self.sample_rate
        if stable:
            s._emit(Result(stable, (), False, INTERIM_STABILITY, conf, start_ms, seconds_in, s.channel))
        if rest:
            rest = " " + rest if stable else rest
            s._emit(Result(rest, (), False, UNSTABLE, conf, start_ms, seconds_in, s.channel))

    def _results(self, channel: int, res, shift: int, end: int, per_segment: bool) -> list[Result]:
        """Final results of one decode of the audio [shift, end) (absolute samples): one per segment, or one."""
        conf = math.exp(res.avg_logprob) if res.segments else 0.0
        shift_s, end_s = shift / self.sample_rate, end / self.sample_rate

        def ms(t: float) -> int:
            return int(round((shift_s + t) * 1000))

        words = [Word(w, ms(a), max(ms(b), ms(a) + 1), conf) for w, a, b in res.words]
        if per_segment:
            groups = [(seg.text, len(seg.text.split()), seg.start, seg.end) for seg in res.segments]
        else:
            groups = [(res.text, len(words), 0.0, end_s - shift_s)]
        out, k = [], 0
        for text, n, seg_start, seg_end in groups:
            if text.strip():
                processed = min(shift_s + seg_end, end_s)
                out.append(
                    Result(text.strip(), tuple(words[k : k + n]), True, 1.0, conf, ms(seg_start), processed, channel)
                )
            k += n
        return out

    def _final(self, channel: int, audio: np.ndarray, start: int) -> Result | None:
        if len(audio) < MIN_DECODE_S * self.sample_rate:
            return None
        res, _ = self._transcribe(audio, self.backend.beam_size)
        found = self._results(channel, res, start, start + len(audio), per_segment=False)
        return found[0] if found else None

    # -- offline -----------------------------------------------------------------------------------------

    def recognize(
        self, samples: np.ndarray, sample_rate: int, channel: int = 0, decoding: RequestDecoding | None = None
    ) -> list[Result]:
        """Final results for a whole recording (T,): one per decoded segment (30 s windows, or timestamp
        segments with ``:timestamps``), as ``speechtao asr infer`` decodes the file. ``decoding`` is not used."""
        x = np.asarray(samples, dtype=np.float32)
        if x.ndim != 1 or len(x) == 0:
            raise AudioError(f"recognize: expected non-empty 1-D samples, got shape {x.shape}")
        inp = StreamInput(self.sample_rate)
        x = np.concatenate([inp.push(sample_rate, x), inp.finish()])
        res, _ = self._transcribe(x, self.backend.beam_size)
        return self._results(channel, res, 0, len(x), per_segment=True)
