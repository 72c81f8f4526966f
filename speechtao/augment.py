"""Augmentation: SpecAugment on features (torch, training mode only) and waveform augmentations (numpy, with an
explicit ``np.random.Generator`` so a data-loader worker's seed fixes every draw).

Usage::

    aug = SpecAugment(SpecAugmentSpec(freq_masks=2, time_masks=10, freq_width=27, time_width=0.05))
    feats = aug(feats, feat_lengths)                # (B, C, F); identity in eval mode

    wave_aug = WaveAugmenter(AugmentSpec(speed_prob=1.0, noise_prob=0.5), noise_sources=[noise])
    y = wave_aug(x, 16000, np.random.default_rng(seed))
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from .audio import mulaw_decode, mulaw_encode, resample
from .errors import SpecError

# ------------------------------------------------------------------------------------------------------------
# SpecAugment


@dataclass(frozen=True)
class SpecAugmentSpec:
    """SpecAugment (Park et al. 2019) masks and Cutout rectangles: NeMo's SpectrogramAugmentation options and
    constructor defaults (CitriNet uses freq_masks=2, freq_width=27, time_masks=10, time_width=0.05)."""

    freq_masks: int = 0  # frequency bands masked per utterance
    freq_width: int = 10  # widest band, in channels (each width is uniform in [0, freq_width])
    time_masks: int = 0  # time spans masked per utterance
    time_width: int | float = 10  # widest span: frames (int) or a fraction of the utterance's valid length (float)
    rect_masks: int = 0  # Cutout rectangles per utterance
    rect_time: int = 5  # widest rectangle in frames
    rect_freq: int = 20  # tallest rectangle in channels
    mask_value: float = 0.0

    def __post_init__(self):
        for name in ("freq_masks", "freq_width", "time_masks", "rect_masks", "rect_time", "rect_freq"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if isinstance(self.time_width, float) and not 0.0 <= self.time_width <= 1.0:
            raise ValueError(
                f"time_width as a fraction must be in [0, 1], got {self.time_width} (use an int for frames)"
            )
        if isinstance(self.time_width, int) and self.time_width < 0:
            raise ValueError(f"time_width must be >= 0, got {self.time_width}")

    @property
    def enabled(self) -> bool:
        return self.freq_masks + self.time_masks + self.rect_masks > 0

    _NEMO_IGNORED = {"_target_", "rng", "use_numba_spec_augment", "use_vectorized_spec_augment"}

    @classmethod
    def from_nemo_config(cls, cfg: dict[str, Any]) -> SpecAugmentSpec:
        """From a NeMo ``spec_augment`` config. Raises SpecError on keys this port does not know."""
        known = set(cls.__dataclass_fields__)
        kwargs = {}
        for key, value in cfg.items():
            if key in cls._NEMO_IGNORED:
                continue
            if key not in known:
                raise SpecError(
                    f"spec_augment.{key}: unknown SpectrogramAugmentation option (known: {', '.join(sorted(known))})"
                )
            kwargs[key] = value
        try:
            return cls(**kwargs)
        except (TypeError, ValueError) as exc:
            raise SpecError(f"spec_augment: {exc}") from exc

    def to_nemo_config(self) -> dict[str, Any]:
        out: dict[str, Any] = {"_target_": "nemo.collections.asr.modules.SpectrogramAugmentation"}
        out.update({name: getattr(self, name) for name in self.__dataclass_fields__})
        return out


def _uniform_int(high: torch.Tensor, shape: tuple[int, ...], generator: torch.Generator | None) -> torch.Tensor:
    """Integers uniform in [0, high] (inclusive, elementwise; ``high`` broadcasts against ``shape``)."""
    u = torch.rand(shape, generator=generator)
    return torch.minimum((u * (high + 1).to(u.dtype)).long(), high.long())


def _spans(
    count: int, max_width: torch.Tensor, limit: torch.Tensor, generator: torch.Generator | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` spans per row, each of width uniform in [0, max_width] and lying inside [0, limit).

    Args:
        max_width, limit: shape = (B,), int64
    Returns:
        start, end: shape = (B, count)
    """
    batch = limit.shape[0]
    width = _uniform_int(torch.minimum(max_width, limit)[:, None].expand(batch, count), (batch, count), generator)
    start = _uniform_int(limit[:, None] - width, (batch, count), generator)
    return start, start + width


def _span_mask(start: torch.Tensor, end: torch.Tensor, size: int) -> torch.Tensor:
    """(B, K) spans -> (B, size) bool, True inside any span."""
    idx = torch.arange(size)[None, None, :]
    return ((idx >= start[..., None]) & (idx < end[..., None])).any(1)


class SpecAugment(nn.Module):
    """Frequency and time masks (and Cutout rectangles) drawn per utterance, inside its valid frames.

    Identity in eval mode. Draws come from ``generator`` when given (seed it for reproducible masks), else
    from torch's global RNG. Masks are drawn on the CPU and moved to the features' device.
    """

    def __init__(self, spec: SpecAugmentSpec | None = None, generator: torch.Generator | None = None):
        super().__init__()
        self.spec = spec or SpecAugmentSpec()
        self.generator = generator

    def masks(self, shape: tuple[int, int, int], lengths: torch.Tensor) -> torch.Tensor:
        """The boolean mask (B, C, F) that :meth:`forward` fills, True where masked."""
        s, g = self.spec, self.generator
        batch, channels, frames = shape
        lengths = lengths.detach().to("cpu", torch.long).clamp(0, frames)
        mask = torch.zeros(shape, dtype=torch.bool)
        all_channels = torch.full((batch,), channels, dtype=torch.long)
        if s.freq_masks:
            start, end = _spans(s.freq_masks, torch.full((batch,), s.freq_width), all_channels, g)
            mask |= _span_mask(start, end, channels)[:, :, None]
        if s.time_masks:
            if isinstance(s.time_width, float):
                max_width = (lengths.to(torch.float64) * s.time_width).long().clamp(min=1)
            else:
                max_width = torch.full((batch,), s.time_width)
            start, end = _spans(s.time_masks, max_width, lengths, g)
            mask |= _span_mask(start, end, frames)[:, None, :]
        for _ in range(s.rect_masks):
            f0, f1 = _spans(1, torch.full((batch,), s.rect_freq), all_channels, g)
            t0, t1 = _spans(1, torch.full((batch,), s.rect_time), lengths, g)
            mask |= _span_mask(f0, f1, channels)[:, :, None] & _span_mask(t0, t1, frames)[:, None, :]
        valid = torch.arange(frames)[None, :] < lengths[:, None]  # (B, F): frequency masks stop at the length too
        return mask & valid[:, None, :]

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """
        Args:
            feats: shape = (B, C, F)
            lengths: shape = (B,), valid frames per row
        Returns:
            shape = (B, C, F); masked cells hold spec.mask_value (only frames < length are ever masked)
        """
        if not self.training or not self.spec.enabled:
            return feats
        mask = self.masks(tuple(feats.shape), lengths).to(feats.device)
        return feats.masked_fill(mask, self.spec.mask_value)


# ------------------------------------------------------------------------------------------------------------
# Waveform augmentations. All take and return float32 1-D arrays.


def gain(x: np.ndarray, db: float) -> np.ndarray:
    """Scale by ``db`` decibels."""
    return (np.asarray(x, dtype=np.float32) * np.float32(10.0 ** (db / 20.0))).astype(np.float32)


def speed_perturb(x: np.ndarray, sr: int, factor: float) -> np.ndarray:
    """Play ``factor`` times faster (pitch moves with it, as in Kaldi's speed perturbation): the result has
    ``len(x) / factor`` samples at the same rate ``sr``.

    Implemented as resampling from ``round(sr * factor)`` to ``sr``; factors on a 0.01 grid keep the filter
    bank small and cached.
    """
    if factor <= 0:
        raise ValueError(f"speed factor must be > 0, got {factor}")
    if factor == 1.0:
        return np.asarray(x, dtype=np.float32).copy()
    return resample(x, int(round(sr * factor)), sr)


def _fit_length(noise: np.ndarray, n: int, rng: np.random.Generator | None) -> np.ndarray:
    """Tile (if short) and crop ``noise`` to ``n`` samples, at a random start when ``rng`` is given."""
    noise = np.asarray(noise, dtype=np.float32)
    if len(noise) == 0:
        raise ValueError("noise signal is empty")
    if len(noise) < n:
        noise = np.tile(noise, -(-n // len(noise)) + 1)
    start = int(rng.integers(0, len(noise) - n + 1)) if rng is not None else 0
    return noise[start : start + n]


def add_noise(x: np.ndarray, noise: np.ndarray, snr_db: float, rng: np.random.Generator | None = None) -> np.ndarray:
    """Mix ``noise`` in at a signal-to-noise ratio of ``snr_db`` (mean-square power over the whole signal).

    ``noise`` is tiled or cropped to ``len(x)`` (at a random offset when ``rng`` is given). A silent ``x`` or
    ``noise`` leaves ``x`` unchanged. The sum is not clipped.
    """
    x = np.asarray(x, dtype=np.float32)
    n = _fit_length(noise, len(x), rng).astype(np.float64)
    p_signal = float(np.mean(np.square(x, dtype=np.float64))) if len(x) else 0.0
    p_noise = float(np.mean(np.square(n))) if len(x) else 0.0
    if p_signal == 0.0 or p_noise == 0.0:
        return x.copy()
    scale = math.sqrt(p_signal / (p_noise * 10.0 ** (snr_db / 10.0)))
    return (x + scale * n).astype(np.float32)


def _fft_band_gain(n_fft: int, sr: int, low: float, high: float, edge: float) -> np.ndarray:
    """Gain per rfft bin: 1 in [low, high], raised-cosine skirts ``edge`` Hz wide outside it, 0 beyond."""
    f = np.fft.rfftfreq(n_fft, 1.0 / sr)
    g = np.ones_like(f)
    below = f < low
    g[below] = 0.5 * (1 + np.cos(np.pi * np.clip((low - f[below]) / edge, 0, 1)))
    above = f > high
    g[above] = 0.5 * (1 + np.cos(np.pi * np.clip((f[above] - high) / edge, 0, 1)))
    return g


def telephone_band(x: np.ndarray, sr: int, mulaw: bool = True, low: float = 300.0, high: float = 3400.0) -> np.ndarray:
    """Telephone channel: band-limit to [low, high] Hz (100 Hz raised-cosine skirts), then, with ``mulaw``,
    downsample to 8 kHz, round-trip through G.711 mu-law and come back to ``sr``. Same length as ``x``."""
    x = np.asarray(x, dtype=np.float32)
    if len(x) == 0:
        return x.copy()
    n_fft = 1 << int(math.ceil(math.log2(len(x) + sr // 10)))  # >= 100 ms of zeros: the filter's ringing
    # does not wrap around onto the start
    spectrum = np.fft.rfft(x.astype(np.float64), n_fft) * _fft_band_gain(n_fft, sr, low, high, edge=100.0)
    y = np.fft.irfft(spectrum, n_fft)[: len(x)].astype(np.float32)
    if mulaw:
        narrow = resample(y, sr, 8000) if sr != 8000 else y
        narrow = mulaw_decode(mulaw_encode(narrow))
        y = resample(narrow, 8000, sr) if sr != 8000 else narrow
        y = np.pad(y, (0, max(0, len(x) - len(y))))[: len(x)]
    return y.astype(np.float32)


def reverb_impulse_response(sr: int, rt60: float, rng: np.random.Generator, predelay: float = 0.005) -> np.ndarray:
    """A synthetic room response: a unit direct path, then exponentially decaying Gaussian noise whose energy
    falls 60 dB in ``rt60`` seconds (length 1.2 * rt60 plus ``predelay``).

    Returns:
        shape = (L,), float32, h[0] == 1
    """
    if rt60 <= 0:
        raise ValueError(f"rt60 must be > 0 seconds, got {rt60}")
    start = max(1, int(round(predelay * sr)))
    n_tail = max(1, int(round(1.2 * rt60 * sr)))
    t = np.arange(n_tail) / sr
    # amplitude envelope exp(-a t) with energy exp(-2 a t) = 10 ** -6 at t = rt60
    envelope = np.exp(-3.0 * math.log(10.0) * t / rt60)
    tail = rng.standard_normal(n_tail) * envelope
    # the reverberant tail carries as much energy as the direct path (direct-to-reverberant ratio 0 dB)
    tail /= math.sqrt(float(np.sum(tail**2)))
    h = np.zeros(start + n_tail)
    h[0] = 1.0
    h[start:] = tail
    return h.astype(np.float32)


def reverberate(x: np.ndarray, sr: int, rt60: float, rng: np.random.Generator) -> np.ndarray:
    """Convolve with :func:`reverb_impulse_response`; the output keeps ``len(x)`` samples (the direct path stays
    aligned, the reverberant tail past the end is cut) and the input's RMS level."""
    x = np.asarray(x, dtype=np.float32)
    if len(x) == 0:
        return x.copy()
    h = reverb_impulse_response(sr, rt60, rng).astype(np.float64)
    n = len(x) + len(h) - 1
    n_fft = 1 << int(math.ceil(math.log2(n)))
    y = np.fft.irfft(np.fft.rfft(x.astype(np.float64), n_fft) * np.fft.rfft(h, n_fft), n_fft)[: len(x)]
    rms_in, rms_out = float(np.sqrt(np.mean(x.astype(np.float64) ** 2))), float(np.sqrt(np.mean(y**2)))
    if rms_out > 0:
        y *= rms_in / rms_out
    return y.astype(np.float32)


def coloured_noise(n: int, colour: str, rng: np.random.Generator) -> np.ndarray:
    """Unit-RMS noise with a 1/f**k power spectrum: 'white' (k=0), 'pink' (k=1) or 'brown' (k=2)."""
    k = {"white": 0.0, "pink": 1.0, "brown": 2.0}[colour]
    spectrum = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(len(spectrum), dtype=np.float64)
    f[0] = 1.0
    y = np.fft.irfft(spectrum / f ** (k / 2.0), n)
    return (y / (np.sqrt(np.mean(y**2)) + 1e-12)).astype(np.float32)


# ------------------------------------------------------------------------------------------------------------
# The training-time pipeline


@dataclass(frozen=True)
class AugmentSpec:
    """Waveform augmentation for training; every probability is 0 (off) by default.

    Applied in this order, each with its own probability: speed, reverb, noise, babble, telephone, gain.
    """

    speed_prob: float = 0.0
    speed_factors: tuple[float, ...] = (0.9, 1.0, 1.1)  # one is drawn uniformly
    reverb_prob: float = 0.0
    reverb_rt60: tuple[float, float] = (0.2, 0.8)  # seconds, uniform
    noise_prob: float = 0.0  # noise from `noise_sources`, or synthetic white/pink/brown noise when none are given
    noise_snr_db: tuple[float, float] = (10.0, 30.0)  # uniform
    babble_prob: float = 0.0  # a sum of other utterances (`babble_sources`) as noise
    babble_speakers: tuple[int, int] = (3, 6)  # how many utterances to sum, uniform inclusive
    babble_snr_db: tuple[float, float] = (10.0, 25.0)
    telephone_prob: float = 0.0
    telephone_mulaw: bool = True  # also round-trip through 8 kHz mu-law
    gain_prob: float = 0.0
    gain_db: tuple[float, float] = (-6.0, 6.0)

    def __post_init__(self):
        for name in ("speed_prob", "reverb_prob", "noise_prob", "babble_prob", "telephone_prob", "gain_prob"):
            p = getattr(self, name)
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {p}")
        for name in ("reverb_rt60", "noise_snr_db", "babble_speakers", "babble_snr_db", "gain_db"):
            lo, hi = getattr(self, name)
            if lo > hi:
                raise ValueError(f"{name}: low {lo} is above high {hi} (write [low, high])")
        if not self.speed_factors or min(self.speed_factors) <= 0:
            raise ValueError(
                f"speed_factors must be a non-empty list of positive factors, got {list(self.speed_factors)}"
            )
        if self.reverb_rt60[0] <= 0:
            raise ValueError(f"reverb_rt60 must be positive seconds, got {list(self.reverb_rt60)}")
        if self.babble_speakers[0] < 1:
            raise ValueError(f"babble_speakers must be >= 1, got {list(self.babble_speakers)}")

    @property
    def enabled(self) -> bool:
        return any(
            p > 0
            for p in (
                self.speed_prob,
                self.reverb_prob,
                self.noise_prob,
                self.babble_prob,
                self.telephone_prob,
                self.gain_prob,
            )
        )


class WaveAugmenter:
    """Applies an :class:`AugmentSpec` to one utterance: ``augmenter(x, sr, rng) -> y`` (float32, 1-D).

    Args:
        spec: probabilities and ranges.
        noise_sources: noise recordings at the training sample rate; None: synthetic coloured noise.
        babble_sources: speech recordings to sum into babble (required when ``spec.babble_prob > 0``).
    """

    def __init__(
        self,
        spec: AugmentSpec,
        noise_sources: list[np.ndarray] | None = None,
        babble_sources: list[np.ndarray] | None = None,
    ):
        if spec.babble_prob > 0 and not babble_sources:
            raise ValueError("babble_prob > 0 needs babble_sources (a list of speech waveforms to sum)")
        if noise_sources is not None and not noise_sources:
            raise ValueError("noise_sources is an empty list (pass None for synthetic noise)")
        self.spec = spec
        self.noise_sources = [np.asarray(n, dtype=np.float32) for n in noise_sources] if noise_sources else None
        self.babble_sources = [np.asarray(b, dtype=np.float32) for b in babble_sources] if babble_sources else None

    def _noise(self, n: int, rng: np.random.Generator) -> np.ndarray:
        if self.noise_sources is None:
            return coloured_noise(n, ["white", "pink", "brown"][int(rng.integers(3))], rng)
        return _fit_length(self.noise_sources[int(rng.integers(len(self.noise_sources)))], n, rng)

    def _babble(self, n: int, rng: np.random.Generator) -> np.ndarray:
        lo, hi = self.spec.babble_speakers
        k = int(rng.integers(lo, hi + 1))
        picks = rng.choice(len(self.babble_sources), size=k, replace=k > len(self.babble_sources))
        total = np.zeros(n, dtype=np.float64)
        for i in picks:
            part = _fit_length(self.babble_sources[int(i)], n, rng).astype(np.float64)
            rms = np.sqrt(np.mean(part**2))
            if rms > 0:
                total += part / rms  # equal loudness per talker
        return total.astype(np.float32)

    def __call__(
        self, x: np.ndarray, sr: int, rng: np.random.Generator, applied: list[str] | None = None
    ) -> np.ndarray:
        """The augmented copy of ``x``; ``applied``, when given, receives a description of each step taken."""
        s = self.spec
        note = applied.append if applied is not None else (lambda _: None)
        y = np.asarray(x, dtype=np.float32)
        if s.speed_prob and rng.random() < s.speed_prob:
            factor = float(s.speed_factors[int(rng.integers(len(s.speed_factors)))])
            y = speed_perturb(y, sr, factor)
            note(f"speed:{factor:g}")
        if s.reverb_prob and rng.random() < s.reverb_prob:
            rt60 = float(rng.uniform(*s.reverb_rt60))
            y = reverberate(y, sr, rt60, rng)
            note(f"reverb:rt60={rt60:.2f}")
        if s.noise_prob and rng.random() < s.noise_prob:
            noise = self._noise(len(y), rng)
            snr = float(rng.uniform(*s.noise_snr_db))
            y = add_noise(y, noise, snr)
            note(f"noise:snr={snr:.1f}")
        if s.babble_prob and rng.random() < s.babble_prob:
            noise = self._babble(len(y), rng)
            snr = float(rng.uniform(*s.babble_snr_db))
            y = add_noise(y, noise, snr)
            note(f"babble:snr={snr:.1f}")
        if s.telephone_prob and rng.random() < s.telephone_prob:
            y = telephone_band(y, sr, mulaw=s.telephone_mulaw)
            note("telephone")
        if s.gain_prob and rng.random() < s.gain_prob:
            db = float(rng.uniform(*s.gain_db))
            y = gain(y, db)
            note(f"gain:{db:+.1f}dB")
        return y.astype(np.float32, copy=False)
