"""Request audio as it arrives over the wire: encodings, WAV headers, channels, streaming resampling.

Riva clients send audio in three shapes, all handled here:

- raw samples (``LINEAR_PCM`` 16-bit little-endian, ``MULAW``, ``ALAW``) with ``sample_rate_hertz`` and
  ``audio_channel_count`` in the config;
- a WAV file's bytes: Riva's file client streams the file as it is, so the first chunk starts with the RIFF
  header (usually 44 bytes) and the config leaves encoding and sample rate unset. The header is parsed and
  its format wins;
- an encoded file (``FLAC``, ``OGGOPUS``, or either with the encoding unset, as Riva's file client streams any
  file: recognized by its ``fLaC`` / ``OggS`` magic). libsndfile cannot decode a truncated FLAC or Ogg stream,
  so in streaming such audio is buffered (at most ``MAX_FILE_BYTES``) and decoded once the client has sent all
  of it; the transcript is then exactly the offline one, and its results come when the stream ends.

:class:`AudioDecoder` turns byte chunks into float32 frames ``(T, channels)``; :class:`StreamResampler`
resamples a growing signal chunk by chunk and gives exactly the samples :func:`speechtao.audio.resample`
gives for the whole signal at once (so a stream decodes like the file it came from).
"""

from __future__ import annotations

import io
import math
import struct
from dataclasses import dataclass

import numpy as np

from ..audio import alaw_decode, mulaw_decode, pcm16_decode, resample, resample_half_width
from ..errors import AudioError, InputError

ENCODINGS = ("LINEAR_PCM", "FLAC", "MULAW", "ALAW", "OGGOPUS")
MAX_HEADER_BYTES = 1 << 16  # a WAV header (with LIST/fact chunks) longer than this is refused
MAX_FILE_BYTES = 64 << 20  # a streamed FLAC/OGG file is buffered until it ends: at most this much (~1 h of FLAC)
FILE_MAGIC = (b"fLaC", b"OggS")  # the first bytes of FLAC and Ogg (Opus, Vorbis, FLAC) files
MIN_RATE, MAX_RATE = 4000, 384000  # sample rates served (resampling cost and memory grow with the rate ratio)


def check_rate(rate: int, where: str) -> None:
    if not MIN_RATE <= rate <= MAX_RATE:
        raise AudioError(
            f"{where}: sample rate {rate} Hz is outside {MIN_RATE}-{MAX_RATE} Hz (send audio at a "
            "common rate such as 8000, 16000 or 48000 Hz)"
        )


_WAV_FORMATS = {1: "pcm", 3: "float", 6: "alaw", 7: "mulaw"}


@dataclass(frozen=True)
class AudioFormat:
    """How the sample bytes of a request are laid out."""

    encoding: str  # "pcm16" | "float32" | "mulaw" | "alaw" | "file" (FLAC/OGG: decoded whole)
    sample_rate: int  # Hz; 0 for "file" until decoded
    channels: int

    @property
    def bytes_per_frame(self) -> int:
        width = {"pcm16": 2, "float32": 4, "mulaw": 1, "alaw": 1}.get(self.encoding, 1)
        return width * self.channels


@dataclass(frozen=True)
class WavHeader:
    fmt: AudioFormat
    header_bytes: int  # bytes before the first sample
    data_bytes: int | None  # size of the data chunk; None when the header leaves it open (streamed WAV)


def is_riff(data: bytes) -> bool:
    return len(data) >= 4 and data[:4] in (b"RIFF", b"RIFX")


def parse_wav_header(data: bytes) -> WavHeader | None:
    """Parse a RIFF/WAVE header at the start of ``data``. None: more bytes are needed to reach the data chunk.

    Raises :class:`AudioError` for a header that cannot be a WAV file or holds a format not served here.
    """
    fix = (
        "send 16-bit PCM, 32-bit float, mu-law or A-law WAV (e.g. `ffmpeg -i IN -ac 1 -ar 16000 "
        "-c:a pcm_s16le OUT.wav`), or raw samples with encoding and sample_rate_hertz set"
    )
    if len(data) < 12:
        return None
    if data[:4] == b"RIFX":
        raise AudioError(f"WAV header: big-endian RIFX files are not supported ({fix})")
    if data[8:12] != b"WAVE":
        kind = data[8:12].decode("latin-1")
        raise AudioError(f"WAV header: RIFF type is {kind!r}, not 'WAVE' (the audio is not a WAV file; {fix})")
    pos, fmt = 12, None
    while True:
        if pos + 8 > len(data):
            if pos > MAX_HEADER_BYTES:
                raise AudioError(f"WAV header: no data chunk in the first {MAX_HEADER_BYTES} bytes ({fix})")
            return None
        cid, size = data[pos : pos + 4], struct.unpack("<I", data[pos + 4 : pos + 8])[0]
        body = pos + 8
        if cid == b"data":
            if fmt is None:
                raise AudioError(f"WAV header: data chunk before the fmt chunk at byte {pos} ({fix})")
            open_size = size in (0, 0xFFFFFFFF)
            return WavHeader(fmt, body, None if open_size else size)
        if body + size > len(data):
            if body + size > MAX_HEADER_BYTES:
                raise AudioError(
                    f"WAV header: chunk {cid.decode('latin-1')!r} of {size} bytes before the audio data is too large "
                    f"(limit {MAX_HEADER_BYTES}; {fix})"
                )
            return None
        if cid == b"fmt ":
            if size < 16:
                raise AudioError(f"WAV header: fmt chunk of {size} bytes is too short (16 or more; {fix})")
            tag, channels, rate, _, _, bits = struct.unpack("<HHIIHH", data[body : body + 16])
            if tag == 0xFFFE and size >= 26:  # WAVE_FORMAT_EXTENSIBLE: the real tag opens the sub-format GUID
                tag = struct.unpack("<H", data[body + 24 : body + 26])[0]
            kind = _WAV_FORMATS.get(tag)
            if kind is None:
                raise AudioError(f"WAV header: format tag {tag:#x} is not supported ({fix})")
            if not 1 <= channels <= 8 or rate < 1:
                raise AudioError(f"WAV header: {channels} channels at {rate} Hz is not served (1 to 8 channels; {fix})")
            if kind == "pcm" and bits != 16:
                raise AudioError(f"WAV header: {bits}-bit PCM is not supported, only 16-bit ({fix})")
            if kind == "float" and bits != 32:
                raise AudioError(f"WAV header: {bits}-bit float is not supported, only 32-bit ({fix})")
            check_rate(rate, "WAV header")
            encoding = {"pcm": "pcm16", "float": "float32", "alaw": "alaw", "mulaw": "mulaw"}[kind]
            fmt = AudioFormat(encoding, int(rate), int(channels))
        pos = body + size + (size & 1)  # chunks are padded to an even size


def decode_samples(data: bytes, fmt: AudioFormat) -> np.ndarray:
    """Whole frames of ``data`` in ``fmt`` -> float32 (T, channels)."""
    if fmt.encoding == "pcm16":
        x = pcm16_decode(data)
    elif fmt.encoding == "float32":
        x = np.frombuffer(data, dtype="<f4").astype(np.float32)
    elif fmt.encoding == "mulaw":
        x = mulaw_decode(data)
    elif fmt.encoding == "alaw":
        x = alaw_decode(data)
    else:
        raise AudioError(f"encoding {fmt.encoding!r} has no sample layout (decode the whole file instead)")
    return x.reshape(-1, fmt.channels)


def decode_file(data: bytes) -> tuple[np.ndarray, int]:
    """A whole encoded file (WAV, FLAC, OGG) -> float32 (T, channels) and its sample rate."""
    import soundfile as sf

    try:
        with sf.SoundFile(io.BytesIO(data)) as f:
            check_rate(int(f.samplerate), "audio file")
            if not 1 <= f.channels <= 8:
                raise AudioError(f"audio file: {f.channels} channels; at most 8 are served")
            return f.read(dtype="float32", always_2d=True), int(f.samplerate)
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        # libsndfile's own message, without soundfile's prefix naming the in-memory file object
        detail = exc.error_string if isinstance(exc, sf.LibsndfileError) else str(exc)
        raise AudioError(
            f"audio of {len(data)} bytes cannot be decoded as a FLAC/OGG/WAV file ({detail}); send the "
            "whole file, or raw samples with encoding LINEAR_PCM and sample_rate_hertz set"
        ) from None


class AudioDecoder:
    """Incremental decoder of one request's audio bytes.

    Args:
        encoding: the config's AudioEncoding name ("ENCODING_UNSPECIFIED", "LINEAR_PCM", "FLAC", "MULAW",
            "ALAW", "OGGOPUS").
        sample_rate: ``sample_rate_hertz`` (0 = unset; then a WAV header must say it).
        channels: ``audio_channel_count`` (0 = unset = 1, or the WAV header's).
    """

    def __init__(self, encoding: str, sample_rate: int, channels: int):
        if encoding not in ("ENCODING_UNSPECIFIED",) + ENCODINGS:
            raise AudioError(
                f"encoding {encoding!r} is not supported (use LINEAR_PCM, FLAC, MULAW, ALAW or OGGOPUS, or leave "
                "it unset for a WAV, FLAC or Ogg file)"
            )
        if sample_rate < 0 or channels < 0:
            raise AudioError(
                f"sample_rate_hertz {sample_rate} and audio_channel_count {channels} must not be "
                "negative (leave them 0 to take them from a WAV header)"
            )
        self.encoding = encoding
        self.config_rate = sample_rate
        self.config_channels = channels or 1
        self.fmt: AudioFormat | None = None
        self._pending = b""  # bytes not yet decoded (a partial header or a partial frame)
        self._file = bytearray() if encoding in ("FLAC", "OGGOPUS") else None
        self._data_left: int | None = None  # bytes of the WAV data chunk still to come
        self.bytes_in = 0

    def _start(self, data: bytes) -> bool:
        """Decide the format from the first bytes. False: more bytes are needed (a partial WAV header)."""
        if is_riff(data) or (
            len(data) < 4 and b"RIFF".startswith(data) and self.encoding in ("ENCODING_UNSPECIFIED", "LINEAR_PCM")
        ):
            header = parse_wav_header(data) if len(data) >= 4 else None
            if header is None:
                if len(data) > MAX_HEADER_BYTES:
                    raise AudioError(f"WAV header: incomplete after {len(data)} bytes (send the file from its start)")
                return False
            self.fmt = header.fmt
            self._pending = data[header.header_bytes :]
            self._data_left = header.data_bytes
            return True
        if self.encoding in ("ENCODING_UNSPECIFIED", "LINEAR_PCM"):
            enc = "pcm16"
        elif self.encoding == "MULAW":
            enc = "mulaw"
        elif self.encoding == "ALAW":
            enc = "alaw"
        else:  # pragma: no cover - FLAC is buffered before reaching here
            raise AudioError(f"encoding {self.encoding!r} is not supported")
        if self.config_rate <= 0:
            raise AudioError(
                f"{self.encoding if self.encoding != 'ENCODING_UNSPECIFIED' else 'LINEAR_PCM'} audio "
                "without a WAV header needs sample_rate_hertz in the RecognitionConfig (e.g. 16000)"
            )
        check_rate(self.config_rate, "sample_rate_hertz")
        if self.config_channels > 8:
            raise AudioError(f"audio_channel_count {self.config_channels}: at most 8 channels are served")
        self.fmt = AudioFormat(enc, self.config_rate, self.config_channels)
        self._pending = data
        return True

    def feed(self, data: bytes) -> np.ndarray | None:
        """Add bytes; returns the new whole frames as float32 (T, channels), or None while nothing is decodable."""
        self.bytes_in += len(data)
        if self._file is None and self.fmt is None and self.encoding == "ENCODING_UNSPECIFIED":
            head = self._pending + data
            if len(head) < 4 and any(m.startswith(head) for m in FILE_MAGIC):
                self._pending = head  # too few bytes to tell a FLAC/Ogg file from raw samples yet
                return None
            if head[:4] in FILE_MAGIC:
                self._file, self._pending, data = bytearray(), b"", head
        if self._file is not None:
            if len(self._file) + len(data) > MAX_FILE_BYTES:
                raise AudioError(
                    f"FLAC/Ogg audio is buffered until the stream ends and this one passed "
                    f"{MAX_FILE_BYTES >> 20} MiB; send long audio as LINEAR_PCM, or in several requests"
                )
            self._file += data
            return None
        if self.fmt is None:
            if not self._start(self._pending + data):
                self._pending += data
                return None
            data, self._pending = self._pending, b""  # the bytes after the header are new audio
        if self._data_left is not None:
            data = data[: self._data_left]  # bytes after the WAV data chunk are other chunks, not audio
            self._data_left -= len(data)
        buf = self._pending + data
        step = self.fmt.bytes_per_frame
        whole = len(buf) - len(buf) % step
        self._pending = buf[whole:]
        return decode_samples(buf[:whole], self.fmt) if whole else None

    def finish(self) -> np.ndarray | None:
        """End of input: decode a buffered FLAC/OGG file; refuse a trailing partial frame."""
        if self._file is not None:
            if not self._file:
                return None
            x, rate = decode_file(bytes(self._file))
            self.fmt = AudioFormat("file", rate, x.shape[1])
            self._file = bytearray()
            return x
        if self.fmt is None and self._pending:
            raise AudioError(f"audio ended inside a WAV header after {len(self._pending)} bytes (send the whole file)")
        if self._pending:
            n = len(self._pending)
            self._pending = b""
            raise AudioError(
                f"audio ends with {n} stray byte(s), less than one frame of "
                f"{self.fmt.bytes_per_frame} bytes ({self.fmt.encoding}, {self.fmt.channels} channel(s)); "
                "send whole samples"
            )
        return None


def decode_request_audio(data: bytes, encoding: str, sample_rate: int, channels: int) -> tuple[np.ndarray, int]:
    """A whole request's audio (Recognize) -> float32 (T, channels) and its sample rate."""
    if not data:
        raise AudioError("the request holds no audio (RecognizeRequest.audio is empty; send the file's bytes)")
    if encoding in ("FLAC", "OGGOPUS") or (encoding == "ENCODING_UNSPECIFIED" and data[:4] in FILE_MAGIC):
        return decode_file(data)
    dec = AudioDecoder(encoding, sample_rate, channels)
    x = dec.feed(data)
    dec.finish()
    if x is None or len(x) == 0:
        raise AudioError(f"the request's {len(data)} bytes hold no audio samples (a WAV header without data?)")
    return x, dec.fmt.sample_rate


class StreamResampler:
    """Resample a signal that arrives in pieces; output equals :func:`speechtao.audio.resample` of the whole.

    ``push(x)`` returns the output samples that are now final (their filter taps lie inside the input seen so
    far); ``flush()`` returns the rest, computed with the same zero padding at the end as the one-shot call.
    """

    def __init__(self, orig_sr: int, target_sr: int):
        self.orig_sr, self.target_sr = int(orig_sr), int(target_sr)
        g = math.gcd(self.orig_sr, self.target_sr)
        self.down, self.up = self.orig_sr // g, self.target_sr // g
        self.half = resample_half_width(self.orig_sr, self.target_sr)
        self._buf = np.zeros(0, np.float32)  # input from absolute index self._base on
        self._base = 0
        self._n_in = 0  # input samples seen
        self._n_out = 0  # output samples returned

    def _first_block(self, n: int) -> int:
        """The input block (``down`` samples each) where the taps of output ``n`` begin."""
        return max((n * self.down) // self.up - self.half + 1, 0) // self.down

    def _outputs(self, end: int) -> np.ndarray:
        """Outputs self._n_out .. end-1, from a one-shot resample of the buffered input."""
        if end <= self._n_out:
            return np.zeros(0, np.float32)
        # The excerpt starts on a block boundary at or before the first tap of the first output wanted: its
        # output k is then global output block * up + k, made by the same phase kernel from the same samples.
        block = self._first_block(self._n_out)
        y = resample(self._buf[block * self.down - self._base :], self.orig_sr, self.target_sr)
        out = y[self._n_out - block * self.up : end - block * self.up]
        self._n_out = end
        keep = self._first_block(end) * self.down  # input that no later output needs goes
        if keep > self._base:
            self._buf = self._buf[keep - self._base :]
            self._base = keep
        return out

    def push(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        if self.down == self.up:
            self._n_in += len(x)
            return x.copy()
        self._buf = np.concatenate([self._buf, x])
        self._n_in += len(x)
        # output n needs inputs up to floor(n * down / up) + half < n_in
        last_input = self._n_in - 1 - self.half
        if last_input < 0:
            return np.zeros(0, np.float32)
        ready = (last_input * self.up) // self.down + 1  # outputs whose floor(t_n) <= last_input
        ready = min(ready, -(-self._n_in * self.up // self.down))
        return self._outputs(ready)

    def flush(self) -> np.ndarray:
        if self.down == self.up:
            return np.zeros(0, np.float32)
        total = -(-self._n_in * self.up // self.down)
        return self._outputs(total)


class StreamInput:
    """The input side of a recognizer's stream: float samples at one rate in, samples at the model's ``rate``
    out, with the checks every stream makes (1-D samples, a positive rate, no rate change within a stream, no
    audio after the end)."""

    def __init__(self, rate: int):
        self.rate = int(rate)
        self.finished = False
        self._input_rate: int | None = None
        self._resampler: StreamResampler | None = None

    def push(self, sample_rate: int, samples: np.ndarray) -> np.ndarray:
        """Samples (T,) in [-1, 1] at ``sample_rate`` Hz -> the samples at the model's rate now ready."""
        if self.finished:
            raise InputError("accept_waveform after input_finished: the stream is closed (create a new stream)")
        x = np.asarray(samples, dtype=np.float32)
        if x.ndim != 1:
            raise AudioError(
                f"accept_waveform: samples must be 1-D (T,), got shape {x.shape} (mix channels down, "
                "or feed each channel to its own stream)"
            )
        if sample_rate <= 0:
            raise AudioError(f"accept_waveform: sample rate {sample_rate} must be > 0 Hz")
        if self._input_rate is None:
            self._input_rate = int(sample_rate)
            if self._input_rate != self.rate:
                self._resampler = StreamResampler(self._input_rate, self.rate)
        elif int(sample_rate) != self._input_rate:
            raise AudioError(
                f"accept_waveform: sample rate changed from {self._input_rate} to {sample_rate} Hz "
                "within one stream (one stream has one rate; start a new stream)"
            )
        return self._resampler.push(x) if self._resampler else x

    def finish(self) -> np.ndarray:
        """No more input: the resampler's last samples (empty without resampling)."""
        self.finished = True
        return self._resampler.flush() if self._resampler else np.zeros(0, np.float32)
