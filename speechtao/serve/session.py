"""One recognition request's audio, from wire bytes to results, independent of the RPC framework.

A session owns an :class:`~speechtao.serve.audio_input.AudioDecoder` and one stream (channels mixed down) or
one stream per channel (``separate_channels``); each stream's results carry its channel index. The gRPC layer
(``server/asr_service.py``) only maps protobuf messages to and from these calls::

    session = AudioSession(recognizer, batcher.decode, SessionConfig(encoding="LINEAR_PCM", sample_rate=0))
    for chunk in chunks:                 # bytes; the first may start with a WAV header
        for r in session.feed(chunk):    # interim and final results, in order
            ...
    for r in session.finish():
        ...

    results = recognize_request(recognizer, wav_bytes, SessionConfig())   # a whole request (Recognize)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..errors import AudioError, InputError
from .audio_input import AudioDecoder, decode_request_audio
from .decoding import RequestDecoding
from .endpointing import EndpointConfig
from .recognizer import Recognizer, Result, Stream


@dataclass(frozen=True)
class SessionConfig:
    encoding: str = "ENCODING_UNSPECIFIED"  # Riva AudioEncoding name
    sample_rate: int = 0  # Hz; 0: from the WAV header
    channels: int = 0  # 0: from the WAV header, else 1
    separate_channels: bool = False  # one stream (and result set) per channel instead of a mixdown
    endpoint: EndpointConfig | None = None  # None: the recognizer's
    max_seconds: float = 3600.0  # longest audio accepted (per channel)
    decoding: RequestDecoding | None = None  # speech_contexts boosts and max_alternatives (LM decoders)
    interim_results: bool = True  # False: the client wants finals only (a re-decoding model skips interim decodes)


class StreamTooLong(InputError):
    """The audio of one request passed ``max_seconds``."""


class AudioSession:
    """Bytes in, :class:`Result` objects out, for one request."""

    def __init__(self, recognizer: Recognizer, decode: Callable[[Stream], None], config: SessionConfig):
        self.recognizer = recognizer
        self.decode = decode
        self.config = config
        self.decoder = AudioDecoder(config.encoding, config.sample_rate, config.channels)
        self.streams: list[Stream] = []
        self.rate = 0
        self.samples = 0  # per channel, at the input rate

    @property
    def seconds(self) -> float:
        return self.samples / self.rate if self.rate else 0.0

    def _open(self, channels: int) -> None:
        n = channels if self.config.separate_channels else 1
        self.streams = [self.recognizer.create_stream(self.config.endpoint, channel=c) for c in range(n)]
        for s in self.streams:
            s.decoding = self.config.decoding
            s.interim_results = self.config.interim_results

    def _push(self, frames: np.ndarray, rate: int) -> None:
        """frames (T, channels) float32."""
        if not self.streams:
            self.rate = rate
            self._open(frames.shape[1])
        self.samples += len(frames)
        if self.seconds > self.config.max_seconds:
            raise StreamTooLong(
                f"audio longer than {self.config.max_seconds:g} s in one request (the server's "
                "--max-stream-seconds); split it into several requests"
            )
        if len(self.streams) == 1:
            x = frames.mean(axis=1, dtype=np.float32) if frames.shape[1] > 1 else frames[:, 0]
            self.streams[0].accept_waveform(rate, x)
        else:
            for c, s in enumerate(self.streams):
                s.accept_waveform(rate, np.ascontiguousarray(frames[:, c]))

    def _drain(self) -> list[Result]:
        out: list[Result] = []
        for s in self.streams:
            while self.recognizer.is_ready(s):
                self.decode(s)
            out.extend(s.pop_results())
        return out

    def feed(self, data: bytes) -> list[Result]:
        """Add audio bytes; returns the results that are ready."""
        frames = self.decoder.feed(data)
        if frames is None or len(frames) == 0:
            return []
        self._push(frames, self.decoder.fmt.sample_rate)
        return self._drain()

    def finish(self) -> list[Result]:
        """End of audio: decode the rest; returns the remaining results (finals included). A buffered FLAC/Ogg
        file is recognized as Recognize would (the same transcript as offline)."""
        frames = self.decoder.finish()
        if frames is not None and len(frames) and self.decoder.fmt.encoding == "file":
            return recognize_frames(self.recognizer, frames, self.decoder.fmt.sample_rate, self.config)
        if frames is not None and len(frames):
            self._push(frames, self.decoder.fmt.sample_rate)
        if not self.streams:
            if self.decoder.bytes_in == 0:
                raise AudioError("the request held no audio (send audio_content after the streaming_config)")
            raise AudioError(
                f"the request's {self.decoder.bytes_in} audio bytes hold no samples (a WAV header "
                "without data?); send the audio itself"
            )
        for s in self.streams:
            s.input_finished()
        return self._drain()


def recognize_request(recognizer: Recognizer, data: bytes, config: SessionConfig) -> list[Result]:
    """Final results for a whole request's audio (Riva's Recognize): one pass per channel up to the
    recognizer's ``max_final_pass_s`` (as ``speechtao asr infer``), long-form decoding cut at endpoints beyond."""
    frames, rate = decode_request_audio(data, config.encoding, config.sample_rate, config.channels)
    return recognize_frames(recognizer, frames, rate, config)


def recognize_frames(recognizer: Recognizer, frames: np.ndarray, rate: int, config: SessionConfig) -> list[Result]:
    """Final results for decoded audio (T, channels) at ``rate`` Hz: see :func:`recognize_request`."""
    seconds = len(frames) / rate
    if seconds > config.max_seconds:
        raise StreamTooLong(
            f"audio of {seconds:.1f} s is longer than {config.max_seconds:g} s (the server's "
            "--max-stream-seconds); split it into several requests"
        )
    if config.separate_channels and frames.shape[1] > 1:
        channels = [(c, np.ascontiguousarray(frames[:, c])) for c in range(frames.shape[1])]
    else:
        channels = [(0, frames.mean(axis=1, dtype=np.float32) if frames.shape[1] > 1 else frames[:, 0])]
    return [r for c, x in channels for r in recognizer.recognize(x, rate, channel=c, decoding=config.decoding)]
