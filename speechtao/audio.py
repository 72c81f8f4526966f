"""Audio I/O: read WAV/FLAC/OGG (and whatever else libsndfile decodes), mono mixdown, offsets, band-limited
resampling, and the 8-bit G.711 codecs (mu-law, A-law) that telephone audio and Riva clients send.

All samples are float32 in [-1, 1] (int16 full scale is 32768). Usage::

    x = read_audio("a.flac", sample_rate=16000, offset=1.5, duration=2.0)   # (T,) float32, mono, 16 kHz
    info = audio_info("a.flac")                                              # header only
    y = resample(x, 16000, 8000)
    payload = mulaw_encode(y)                                                # bytes, one per sample
"""

from __future__ import annotations

import io
import math
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import BinaryIO

import numpy as np

from .errors import AudioError

AudioSource = str | os.PathLike | BinaryIO

_FIX_DECODE = "convert it to 16-bit PCM WAV or FLAC, e.g. `ffmpeg -i IN -ac 1 -ar 16000 OUT.wav`"


@dataclass(frozen=True)
class AudioInfo:
    sample_rate: int  # samples per second in the file
    frames: int  # samples per channel
    channels: int
    duration: float  # seconds


def _name(source: AudioSource) -> str:
    if isinstance(source, (str, os.PathLike)):
        return str(source)
    return getattr(source, "name", None) or "<audio stream>"


def _open(source: AudioSource):
    import soundfile as sf

    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.exists():
            raise AudioError(
                f"audio file '{path}' not found (check the path; manifest paths resolve relative to "
                f"the manifest's folder)"
            )
        if path.is_dir():
            raise AudioError(f"audio file '{path}' is a directory (give the path of a WAV/FLAC/OGG file)")
    try:
        return sf.SoundFile(source if not isinstance(source, os.PathLike) else str(source))
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        raise AudioError(f"cannot decode audio file '{_name(source)}': {exc} ({_FIX_DECODE})") from exc


def audio_info(path: AudioSource) -> AudioInfo:
    """Sample rate, length and channel count from the file header (the samples are not decoded)."""
    with _open(path) as f:
        frames = int(f.frames)
        return AudioInfo(
            sample_rate=int(f.samplerate),
            frames=frames,
            channels=int(f.channels),
            duration=frames / float(f.samplerate),
        )


def read_audio(
    path: AudioSource, sample_rate: int = 16000, offset: float = 0.0, duration: float | None = None
) -> np.ndarray:
    """Read ``duration`` seconds from ``offset`` as float32 mono at ``sample_rate``.

    Only the requested frames are decoded. Channels are averaged. When the file's rate differs from
    ``sample_rate`` the excerpt is resampled (:func:`resample`). A ``duration`` that runs past the end of the
    file returns what is there; an ``offset`` at or past the end raises :class:`AudioError`.

    Returns:
        x: shape = (T,), float32 in [-1, 1]
    """
    name = _name(path)
    if offset < 0:
        raise AudioError(f"audio file '{name}': offset {offset} is negative (offsets are seconds from the start)")
    if duration is not None and duration <= 0:
        raise AudioError(
            f"audio file '{name}': duration {duration} must be > 0 seconds (or omitted for the rest of the file)"
        )
    import soundfile as sf

    with _open(path) as f:
        sr = int(f.samplerate)
        total = int(f.frames)
        start = int(round(offset * sr))
        if start > 0 and start >= total:
            raise AudioError(
                f"audio file '{name}': offset {offset} s is at or past its end ({total / sr:.3f} s) "
                f"(fix the offset in the manifest)"
            )
        count = -1 if duration is None else int(round(duration * sr))
        try:
            if start:
                f.seek(start)
            data = f.read(frames=count, dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError) as exc:
            raise AudioError(f"cannot decode audio file '{name}': {exc} ({_FIX_DECODE})") from exc
    x = data.mean(axis=1, dtype=np.float32) if data.shape[1] > 1 else data[:, 0]
    if sr != sample_rate:
        x = resample(x, sr, sample_rate)
    return np.ascontiguousarray(x, dtype=np.float32)


def write_wav(path: str | os.PathLike, x: np.ndarray, sample_rate: int) -> None:
    """Write float samples (shape (T,) or (T, C), clipped to [-1, 1]) as 16-bit PCM WAV."""
    import soundfile as sf

    x = np.asarray(x)
    if x.ndim not in (1, 2):
        raise ValueError(f"write_wav: expected shape (T,) or (T, C), got {x.shape}")
    pcm = _float_to_int16(x)
    try:
        sf.write(str(path), pcm, int(sample_rate), subtype="PCM_16", format="WAV")
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        raise AudioError(
            f"cannot write audio file '{path}': {exc} (check that its folder exists and is writable)"
        ) from exc


# ----------------------------------------------------------------------------------------------------------
# Resampling: windowed-sinc interpolation evaluated as a polyphase filter bank.
#
# For rates reduced by their gcd to  orig_sr = down * g,  target_sr = up * g,  output sample n sits at input
# time t_n = n * down / up. Writing n = b * up + j, t_n = b * down + j * down / up, so there are only `up`
# distinct fractional offsets ("phases"); each phase gets its own FIR kernel of 2 * half_width taps, computed
# once and cached. The kernel is a low-pass sinc at `rolloff` times the lower Nyquist frequency, shaped by a
# Kaiser window: about 80 dB of stop-band attenuation, pass band flat to ~0.8 of the lower Nyquist.

_ROLLOFF = 0.9  # cutoff as a fraction of the lower of the two Nyquist frequencies
_ZERO_CROSSINGS = 32  # sinc zero crossings on each side of the centre tap
_KAISER_BETA = 8.6
_CHUNK = 1 << 15  # output samples per gather (bounds the temporary (chunk, taps) matrix)


def resample_half_width(orig_sr: int, target_sr: int) -> int:
    """Input samples each output sample of :func:`resample` reads on either side (the filter's half width, in
    input samples at the reduced ratio); 0 when the rates are equal. A streaming resampler needs this much input
    beyond an output sample before that sample is final (:class:`speechtao.serve.audio_input.StreamResampler`)."""
    g = math.gcd(int(orig_sr), int(target_sr))
    down, up = int(orig_sr) // g, int(target_sr) // g
    return 0 if down == up else _polyphase_kernels(down, up)[2]


@lru_cache(maxsize=32)
def _polyphase_kernels(down: int, up: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Kernels (up, 2 * half_width) float32, the integer input offset of each phase (up,), and half_width."""
    cutoff = _ROLLOFF * min(1.0, up / down)  # cycles per input sample, times 2 (1.0 = input Nyquist)
    half_width = int(math.ceil(_ZERO_CROSSINGS / cutoff))
    phases = np.arange(up)
    offset = (phases * down) // up  # floor of the fractional input time of each phase
    frac = (phases * down - offset * up) / up  # in [0, 1)
    taps = np.arange(-half_width + 1, half_width + 1)  # input samples offset + taps contribute
    tau = taps[None, :] - frac[:, None]  # (up, taps): distance of each input sample from the output time
    window = np.i0(_KAISER_BETA * np.sqrt(np.clip(1.0 - (tau / half_width) ** 2, 0.0, 1.0))) / np.i0(_KAISER_BETA)
    kernels = cutoff * np.sinc(cutoff * tau) * window
    return kernels.astype(np.float32), offset.astype(np.int64), half_width


def resample(x: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """Band-limited resampling of a 1-D signal between any two integer rates.

    Content above ``0.9 *`` the lower Nyquist frequency is removed (anti-aliasing when downsampling, anti-imaging
    when upsampling). The output has ``ceil(len(x) * target_sr / orig_sr)`` samples, aligned so that output
    sample 0 is input sample 0.

    Args:
        x: shape = (T,)
    Returns:
        shape = (ceil(T * target_sr / orig_sr),), float32
    """
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 1:
        raise ValueError(f"resample: expected a 1-D signal, got shape {x.shape} (mix channels down first)")
    orig_sr, target_sr = int(orig_sr), int(target_sr)
    if orig_sr <= 0 or target_sr <= 0:
        raise ValueError(f"resample: sample rates must be positive, got {orig_sr} -> {target_sr}")
    if orig_sr == target_sr:
        return x.copy()
    g = math.gcd(orig_sr, target_sr)
    down, up = orig_sr // g, target_sr // g
    kernels, phase_offset, half = _polyphase_kernels(down, up)
    n_out = -(-len(x) * up // down)  # ceil
    if n_out == 0:
        return np.zeros(0, dtype=np.float32)
    padded = np.concatenate([np.zeros(half, np.float32), x, np.zeros(half, np.float32)])
    frames = np.lib.stride_tricks.sliding_window_view(padded, 2 * half)  # (len + 1, 2 * half), a view
    out = np.empty(n_out, dtype=np.float32)
    for s in range(0, n_out, _CHUNK):
        n = np.arange(s, min(s + _CHUNK, n_out))
        block, phase = np.divmod(n, up)
        # output n uses inputs floor(t_n) - half + 1 ... floor(t_n) + half  ->  rows start at floor(t_n) + 1
        rows = frames[block * down + phase_offset[phase] + 1]
        out[s : s + len(n)] = np.einsum("nk,nk->n", rows, kernels[phase])
    return out


# ----------------------------------------------------------------------------------------------------------
# PCM and G.711 codecs. Floats map to int16 by x * 32768 (rounded, clipped), back by / 32768.


def _float_to_int16(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(np.asarray(x, dtype=np.float64) * 32768.0), -32768, 32767).astype(np.int16)


def pcm16_decode(data: bytes) -> np.ndarray:
    """Little-endian signed 16-bit PCM bytes -> float32 samples in [-1, 1)."""
    if len(data) % 2:
        raise AudioError(
            f"LINEAR_PCM audio has an odd number of bytes ({len(data)}); 16-bit samples take 2 bytes "
            f"each (send whole samples)"
        )
    return np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0


def pcm16_encode(x: np.ndarray) -> bytes:
    """float samples -> little-endian signed 16-bit PCM bytes."""
    return _float_to_int16(x).astype("<i2").tobytes()


_MULAW_BIAS = 0x84  # 132 on the 16-bit scale (33 on the 14-bit scale the encoder works in)
_MULAW_TOP14 = 0x1FFF  # largest biased 14-bit magnitude (the top code)


def _segment(v: np.ndarray, first_edge: int) -> np.ndarray:
    """Index (0-7) of the G.711 segment: how many of the edges first_edge * 2**k (k = 0..6) v reaches."""
    seg = np.zeros(v.shape, dtype=np.int32)
    for k in range(7):
        seg += v >= (first_edge << k)
    return seg


def mulaw_encode(x: np.ndarray) -> bytes:
    """float samples -> G.711 mu-law bytes (one per sample; silence is 0xFF).

    Works on 14-bit samples (int16 >> 2), bit-exact with CPython's ``audioop.lin2ulaw``: the magnitude plus a
    bias of 33 falls in segment e (e = 0: below 64, else [32 << e, 64 << e)); the byte is the complement of
    sign | e << 4 | the 4 bits below the segment's leading bit.
    """
    s = _float_to_int16(x).astype(np.int32) >> 2
    negative = s < 0
    # magnitudes past the clip level all take the top code (segment 7, mantissa 15)
    mag = np.minimum(np.where(negative, -s, s) + (_MULAW_BIAS >> 2), _MULAW_TOP14)  # 33 ... 8191
    seg = _segment(mag, 0x40)
    mantissa = (mag >> (seg + 1)) & 0x0F
    code = (seg << 4) | mantissa
    return (code ^ np.where(negative, 0x7F, 0xFF)).astype(np.uint8).tobytes()


def mulaw_decode(data: bytes) -> np.ndarray:
    """G.711 mu-law bytes -> float32 samples in [-1, 1)."""
    u = ~np.frombuffer(data, dtype=np.uint8).astype(np.int32) & 0xFF
    exponent = (u >> 4) & 0x07
    mantissa = u & 0x0F
    mag = (((mantissa << 3) + _MULAW_BIAS) << exponent) - _MULAW_BIAS
    return (np.where(u & 0x80, -mag, mag) / 32768.0).astype(np.float32)


def alaw_encode(x: np.ndarray) -> bytes:
    """float samples -> G.711 A-law bytes (one per sample; silence is 0xD5), bit-exact with ``audioop.lin2alaw``."""
    s = _float_to_int16(x).astype(np.int32) >> 3  # 13-bit
    negative = s < 0
    mag = np.where(negative, -s - 1, s)  # 0 ... 4095
    mask = np.where(negative, 0x55, 0xD5)
    seg = _segment(mag, 0x20)  # segment 0: 0..31, segment k >= 1: [16 << k, 32 << k)
    mantissa = np.where(seg < 2, mag >> 1, mag >> np.maximum(seg, 1)) & 0x0F
    return (((seg << 4) | mantissa) ^ mask).astype(np.uint8).tobytes()


def alaw_decode(data: bytes) -> np.ndarray:
    """G.711 A-law bytes -> float32 samples in [-1, 1)."""
    a = np.frombuffer(data, dtype=np.uint8).astype(np.int32) ^ 0x55
    seg = (a >> 4) & 0x07
    t = ((a & 0x0F) << 4) + 8
    t = np.where(seg >= 1, (t + 0x100) << np.maximum(seg - 1, 0), t)
    return (np.where(a & 0x80, t, -t) / 32768.0).astype(np.float32)


def decode_bytes(data: bytes, encoding: str) -> np.ndarray:
    """Raw sample bytes in ``encoding`` ('pcm16', 'mulaw', 'alaw') -> float32, or a whole encoded file
    ('file': WAV/FLAC/OGG bytes, decoded at its own rate and mixed down)."""
    if encoding == "pcm16":
        return pcm16_decode(data)
    if encoding == "mulaw":
        return mulaw_decode(data)
    if encoding == "alaw":
        return alaw_decode(data)
    if encoding == "file":
        with _open(io.BytesIO(data)) as f:
            d = f.read(dtype="float32", always_2d=True)
        return np.ascontiguousarray(d.mean(axis=1, dtype=np.float32))
    raise ValueError(f"decode_bytes: unknown encoding {encoding!r} (use 'pcm16', 'mulaw', 'alaw' or 'file')")
