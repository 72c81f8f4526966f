"""Log-mel features computed like NeMo's ``AudioToMelSpectrogramPreprocessor``, with ``torch.stft`` and a Slaney
mel filterbank written here, so NeMo checkpoints see the same inputs they were trained on.

Pipeline (one utterance of ``n`` valid samples, hop ``h``, FFT size ``N``)::

    dither (training only) -> pre-emphasis y[t] = x[t] - preemph * x[t-1] -> zero past n
    -> |STFT| (centred, zero-padded, periodic=False window of win_length inside N)   -> 1 + T // h frames
    -> |X|^mag_power -> mel filterbank -> log(. + guard) -> per-feature mean/std over the valid frames
    -> frames >= n // h set to pad_value -> time padded to a multiple of pad_to

Usage::

    spec = FeatureSpec(n_mels=80)
    pre = AudioToMelSpectrogram(spec).eval()
    feats, feat_lengths = pre(audio, audio_lengths)       # (B, 80, F), (B,)
    spec == FeatureSpec.from_nemo_config(spec.to_nemo_config())
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from .errors import SpecError

NEMO_TARGET = "nemo.collections.asr.modules.AudioToMelSpectrogramPreprocessor"
STD_GUARD = 1e-5  # added to the standard deviation in feature normalization (NeMo's CONSTANT)

WINDOWS = {
    "hann": torch.hann_window,
    "hamming": torch.hamming_window,
    "blackman": torch.blackman_window,
    "bartlett": torch.bartlett_window,
}


@dataclass(frozen=True)
class FeatureSpec:
    """Options of NeMo's AudioToMelSpectrogramPreprocessor, with NeMo's defaults (``n_mels`` is its ``features``)."""

    sample_rate: int = 16000
    window_size: float | None = 0.02  # window length in seconds (or give n_window_size in samples)
    window_stride: float | None = 0.01  # hop in seconds (or give n_window_stride in samples)
    n_window_size: int | None = None
    n_window_stride: int | None = None
    window: Literal["hann", "hamming", "blackman", "bartlett", "none"] = "hann"
    n_fft: int | None = None  # None: the smallest power of 2 >= the window length (512 for 320 samples)
    n_mels: int = 64
    lowfreq: float = 0.0  # Hz, lowest mel band edge
    highfreq: float | None = None  # Hz, highest mel band edge; None: sample_rate / 2
    dither: float = 1e-5  # std of white noise added to the audio in training mode
    preemph: float | None = 0.97  # None: no pre-emphasis
    log: bool = True
    log_zero_guard_type: Literal["add", "clamp"] = "add"
    log_zero_guard_value: float | Literal["tiny", "eps"] = 2.0**-24
    normalize: Literal["per_feature", "all_features"] | None = "per_feature"
    pad_to: int = 16  # frames are padded to a multiple of this (0: no padding)
    pad_value: float = 0.0
    mag_power: float = 2.0  # 2: power spectrum, 1: magnitude
    mel_norm: Literal["slaney"] | None = "slaney"  # None: triangles of height 1
    exact_pad: bool = False  # True: no centring; samples // hop frames, (samples - hop) // hop of them valid
    frame_splicing: int = 1
    nb_augmentation_prob: float = 0.0  # training only: chance per utterance of zeroing bins above nb_max_freq
    nb_max_freq: int = 4000

    def __post_init__(self):
        if self.sample_rate <= 0:
            raise ValueError(f"sample_rate must be > 0, got {self.sample_rate}")
        if (self.window_size is None) == (self.n_window_size is None):
            raise ValueError(
                "give exactly one of window_size (seconds) and n_window_size (samples), got "
                f"window_size={self.window_size}, n_window_size={self.n_window_size}"
            )
        if (self.window_stride is None) == (self.n_window_stride is None):
            raise ValueError(
                "give exactly one of window_stride (seconds) and n_window_stride (samples), got "
                f"window_stride={self.window_stride}, n_window_stride={self.n_window_stride}"
            )
        if self.win_length <= 0 or self.hop_length <= 0:
            raise ValueError(
                f"window length and hop must be >= 1 sample, got {self.win_length} and "
                f"{self.hop_length} at {self.sample_rate} Hz"
            )
        if self.n_fft is not None and self.n_fft < self.win_length:
            raise ValueError(f"n_fft ({self.n_fft}) must be >= the window length ({self.win_length} samples)")
        if self.n_mels <= 0:
            raise ValueError(f"n_mels must be > 0, got {self.n_mels}")
        top = self.highfreq if self.highfreq is not None else self.sample_rate / 2
        if not 0 <= self.lowfreq < top <= self.sample_rate / 2:
            raise ValueError(
                f"need 0 <= lowfreq < highfreq <= sample_rate / 2, got lowfreq={self.lowfreq}, "
                f"highfreq={self.highfreq}, sample_rate={self.sample_rate}"
            )
        if self.exact_pad and self.hop_length % 2:
            raise ValueError(f"exact_pad needs an even hop, got {self.hop_length} samples")
        if self.frame_splicing < 1:
            raise ValueError(f"frame_splicing must be >= 1, got {self.frame_splicing}")
        if self.pad_to < 0:
            raise ValueError(f"pad_to must be >= 0, got {self.pad_to}")
        if not 0.0 <= self.nb_augmentation_prob <= 1.0:
            raise ValueError(f"nb_augmentation_prob must be in [0, 1], got {self.nb_augmentation_prob}")

    @property
    def win_length(self) -> int:
        """Window length in samples (NeMo truncates seconds * rate)."""
        if self.n_window_size is not None:
            return self.n_window_size
        return int(self.window_size * self.sample_rate)

    @property
    def hop_length(self) -> int:
        if self.n_window_stride is not None:
            return self.n_window_stride
        return int(self.window_stride * self.sample_rate)

    @property
    def fft_size(self) -> int:
        return self.n_fft or 2 ** math.ceil(math.log2(self.win_length))

    @property
    def n_features(self) -> int:
        """Channels of the output: n_mels * frame_splicing."""
        return self.n_mels * self.frame_splicing

    def num_frames(self, num_samples: int) -> int:
        """Valid frames for an utterance of ``num_samples`` samples (what ``feat_lengths`` reports)."""
        pad = (self.fft_size - self.hop_length) // 2 * 2 if self.exact_pad else self.fft_size // 2 * 2
        return max(0, (num_samples + pad - self.fft_size) // self.hop_length) if num_samples > 0 else 0

    # -- NeMo config mapping ------------------------------------------------------------------------------

    _NEMO_RENAMES = {"features": "n_mels"}
    # Accepted and dropped: NeMo ignores these too (deprecated switches) or they only name the class / RNG.
    _NEMO_IGNORED = {"_target_", "use_torchaudio", "stft_exact_pad", "stft_conv", "rng"}

    @classmethod
    def from_nemo_config(cls, cfg: dict[str, Any]) -> FeatureSpec:
        """Build from a NeMo ``preprocessor`` config (a plain dict, e.g. from a .nemo's model_config.yaml).

        Raises:
            SpecError: another preprocessor class, an unknown key, or an option this port does not implement.
        """
        cfg = dict(cfg)
        if set(cfg) <= {"cls", "params", "_target_"} and isinstance(cfg.get("params"), dict):  # NeMo 0.x layout
            cfg = {"_target_": cfg.get("cls", cfg.get("_target_")), **cfg["params"]}
        target = cfg.get("_target_")
        if target is not None and str(target).rsplit(".", 1)[-1] != "AudioToMelSpectrogramPreprocessor":
            raise SpecError(f"preprocessor._target_: {target} is not supported (only {NEMO_TARGET})")
        if cfg.get("rng") is not None:
            raise SpecError("preprocessor.rng: a custom RNG cannot be imported (set it to null)")
        if cfg.get("pad_to") == "max":
            raise SpecError("preprocessor.pad_to: 'max' is not supported (use an integer such as 16)")
        norm = cfg.get("normalize", "per_feature")
        if isinstance(norm, dict):
            raise SpecError(
                "preprocessor.normalize: fixed_mean/fixed_std normalization is not supported "
                "(use per_feature, all_features or NA)"
            )
        known = {f.name for f in dataclasses.fields(cls)}
        kwargs: dict[str, Any] = {}
        for key, value in cfg.items():
            if key in cls._NEMO_IGNORED:
                continue
            name = cls._NEMO_RENAMES.get(key, key)
            if name not in known or key in cls._NEMO_RENAMES.values():  # our own name 'n_mels' is not a NeMo key
                raise SpecError(
                    f"preprocessor.{key}: unknown AudioToMelSpectrogramPreprocessor option "
                    f"(known: {', '.join(sorted(cls._nemo_keys()))})"
                )
            kwargs[name] = value
        if "normalize" in kwargs and kwargs["normalize"] not in ("per_feature", "all_features"):
            kwargs["normalize"] = None  # NeMo treats every other value ("NA", null, ...) as "no normalization"
        # NeMo lets n_window_size override a default window_size only when window_size is falsy; mirror that.
        if kwargs.get("n_window_size") and not kwargs.get("window_size"):
            kwargs["window_size"] = None
        if kwargs.get("n_window_stride") and not kwargs.get("window_stride"):
            kwargs["window_stride"] = None
        for key in (
            "lowfreq",
            "highfreq",
            "dither",
            "pad_value",
            "mag_power",
            "preemph",
            "window_size",
            "window_stride",
        ):
            if isinstance(kwargs.get(key), int) and not isinstance(kwargs.get(key), bool):
                kwargs[key] = float(kwargs[key])
        if kwargs.get("window") is None and "window" in kwargs:
            kwargs["window"] = "none"
        try:
            return cls(**kwargs)
        except (TypeError, ValueError) as exc:
            raise SpecError(f"preprocessor: {exc}") from exc

    @classmethod
    def _nemo_keys(cls) -> set[str]:
        inverse = {v: k for k, v in cls._NEMO_RENAMES.items()}
        return {inverse.get(f.name, f.name) for f in dataclasses.fields(cls)}

    def to_nemo_config(self) -> dict[str, Any]:
        """The equivalent NeMo ``preprocessor`` config (with ``_target_``), plain types only."""
        out: dict[str, Any] = {"_target_": NEMO_TARGET}
        inverse = {v: k for k, v in self._NEMO_RENAMES.items()}
        for f in dataclasses.fields(self):
            out[inverse.get(f.name, f.name)] = getattr(self, f.name)
        if out["normalize"] is None:
            out["normalize"] = "NA"
        return out


def hz_to_mel_slaney(f: np.ndarray) -> np.ndarray:
    """Slaney's mel scale: linear (3 mels per 200 Hz) below 1 kHz, logarithmic (27 mels per factor 6.4) above."""
    f = np.asarray(f, dtype=np.float64)
    log_step = math.log(6.4) / 27.0
    return np.where(f < 1000.0, f * 3.0 / 200.0, 15.0 + np.log(np.maximum(f, 1e-10) / 1000.0) / log_step)


def mel_to_hz_slaney(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    log_step = math.log(6.4) / 27.0
    return np.where(m < 15.0, m * 200.0 / 3.0, 1000.0 * np.exp(log_step * (m - 15.0)))


def mel_filterbank(
    sample_rate: int, n_fft: int, n_mels: int, fmin: float = 0.0, fmax: float | None = None, norm: str | None = "slaney"
) -> torch.Tensor:
    """Triangular filters on the Slaney mel scale over the ``n_fft // 2 + 1`` STFT bins.

    Band ``i`` rises from mel point ``i`` to ``i + 1`` and falls to ``i + 2`` of ``n_mels + 2`` points evenly
    spaced in mel between fmin and fmax. ``norm='slaney'`` scales each band to unit area in Hz (2 / width).

    Returns:
        shape = (n_mels, n_fft // 2 + 1), float32
    """
    fmax = sample_rate / 2.0 if fmax is None else float(fmax)
    bins_hz = np.linspace(0.0, sample_rate / 2.0, n_fft // 2 + 1)
    edges_hz = mel_to_hz_slaney(np.linspace(hz_to_mel_slaney(fmin), hz_to_mel_slaney(fmax), n_mels + 2))
    widths = np.diff(edges_hz)  # (n_mels + 1,)
    rel = edges_hz[:, None] - bins_hz[None, :]  # (n_mels + 2, bins): edge minus bin frequency
    rising = -rel[:-2] / widths[:-1, None]
    falling = rel[2:] / widths[1:, None]
    fb = np.maximum(0.0, np.minimum(rising, falling)).astype(np.float32)
    if norm == "slaney":
        fb *= (2.0 / (edges_hz[2:] - edges_hz[:-2]))[:, None].astype(np.float32)
    elif norm is not None:
        raise ValueError(f"mel_norm must be 'slaney' or None, got {norm!r}")
    return torch.from_numpy(fb)


def _valid_mask(lengths: torch.Tensor, size: int) -> torch.Tensor:
    """(B,) lengths -> (B, size) bool, True inside each length."""
    return torch.arange(size, device=lengths.device)[None, :] < lengths[:, None]


class MelFeaturizer(nn.Module):
    """The computation, holding NeMo's buffers: ``window`` (win_length,) and ``fb`` (1, n_mels, n_fft//2+1)."""

    def __init__(self, spec: FeatureSpec):
        super().__init__()
        self.spec = spec
        self.win_length = spec.win_length
        self.hop_length = spec.hop_length
        self.n_fft = spec.fft_size
        window = WINDOWS[spec.window](self.win_length, periodic=False) if spec.window != "none" else None
        self.register_buffer("window", window)
        fb = mel_filterbank(spec.sample_rate, self.n_fft, spec.n_mels, spec.lowfreq, spec.highfreq, spec.mel_norm)
        self.register_buffer("fb", fb.unsqueeze(0))
        self.stft_pad = (self.n_fft - self.hop_length) // 2 if spec.exact_pad else 0

    def feature_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """(B,) samples -> (B,) valid frames, int64."""
        pad = 2 * self.stft_pad if self.spec.exact_pad else self.n_fft // 2 * 2
        frames = torch.div(lengths + pad - self.n_fft, self.hop_length, rounding_mode="floor").to(torch.long)
        return torch.where(lengths <= 0, torch.zeros_like(frames), frames.clamp(min=0))

    def _log_guard(self, x: torch.Tensor) -> float:
        value = self.spec.log_zero_guard_value
        if value == "tiny":
            return torch.finfo(x.dtype).tiny
        if value == "eps":
            return torch.finfo(x.dtype).eps
        return float(value)

    def forward(self, audio: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """
        Args:
            audio: shape = (B, T), float32
            lengths: shape = (B,), valid samples per row
        Returns:
            feats: shape = (B, n_mels * frame_splicing, F), F a multiple of pad_to
            feat_lengths: shape = (B,), int64
        """
        spec = self.spec
        x = audio.to(torch.float32)
        lengths = lengths.to(torch.long)
        feat_lengths = self.feature_lengths(lengths)
        if self.stft_pad:
            x = nn.functional.pad(x, (self.stft_pad, self.stft_pad))
        if self.training and spec.dither > 0:
            x = x + spec.dither * torch.randn_like(x)
        if spec.preemph is not None:
            x = torch.cat([x[:, :1], x[:, 1:] - spec.preemph * x[:, :-1]], dim=1)
            x = x.masked_fill(~_valid_mask(lengths, x.shape[1]), 0.0)
        window = self.window.to(torch.float32) if self.window is not None else None
        stft = torch.stft(
            x,
            n_fft=self.n_fft,
            hop_length=self.hop_length,
            win_length=self.win_length,
            window=window,
            center=not spec.exact_pad,
            pad_mode="constant",
            return_complex=True,
        )
        power = torch.view_as_real(stft).pow(2).sum(-1)  # |X|^2, (B, n_fft // 2 + 1, frames)
        if self.training and spec.nb_augmentation_prob > 0:
            top_bin = int(spec.nb_max_freq / spec.sample_rate * self.n_fft)
            hit = torch.rand(power.shape[0], device=power.device) < spec.nb_augmentation_prob
            high = torch.arange(power.shape[1], device=power.device) >= top_bin
            power = power.masked_fill(hit[:, None, None] & high[None, :, None], 0.0)
        # |X|^p = (|X|^2)^(p/2): the power spectrum (p = 2, the usual case) needs neither sqrt nor pow, which
        # made this front end as slow as a small INT8 network on one thread.
        mag = power if spec.mag_power == 2.0 else power.pow(spec.mag_power / 2.0)
        feats = torch.matmul(self.fb.to(mag.dtype), mag)  # (B, n_mels, frames)
        if spec.log:
            guard = self._log_guard(feats)
            feats = torch.log(feats + guard) if spec.log_zero_guard_type == "add" else torch.log(feats.clamp(min=guard))
        if spec.frame_splicing > 1:
            # NeMo 3.0's splice_frames re-joins its shifted slices unchanged, i.e. stacks `frame_splicing`
            # copies along the channel axis; we do the same so imported encoders see the input they expect.
            feats = feats.repeat(1, spec.frame_splicing, 1)
        valid = _valid_mask(feat_lengths, feats.shape[-1])  # (B, frames)
        if spec.normalize == "per_feature":
            feats = _normalize_per_feature(feats, feat_lengths, valid)
        elif spec.normalize == "all_features":
            feats = _normalize_all_features(feats, feat_lengths, valid)
        feats = feats.masked_fill(~valid[:, None, :], spec.pad_value)
        if spec.pad_to > 0 and feats.shape[-1] % spec.pad_to:
            feats = nn.functional.pad(feats, (0, spec.pad_to - feats.shape[-1] % spec.pad_to), value=spec.pad_value)
        return feats, feat_lengths


def _normalize_per_feature(x: torch.Tensor, n: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Each channel to zero mean, unit (unbiased) std over the valid frames. x (B, C, F), n (B,), valid (B, F)."""
    m = valid[:, None, :]
    count = n.to(x.dtype)[:, None]  # (B, 1)
    mean = torch.where(m, x, 0.0).sum(-1) / count  # (B, C)
    var = torch.where(m, x - mean[..., None], 0.0).pow(2).sum(-1) / (count - 1.0)
    std = var.sqrt()
    std = std.masked_fill(std.isnan(), 0.0) + STD_GUARD
    return ((x - mean[..., None]) / std[..., None]).masked_fill(~m, 0.0)


def _normalize_all_features(x: torch.Tensor, n: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Each utterance to zero mean, unit (unbiased) std over all channels of its valid frames."""
    m = valid[:, None, :]
    count = (n * x.shape[1]).to(x.dtype)  # (B,)
    mean = torch.where(m, x, 0.0).sum((1, 2)) / count
    var = torch.where(m, x - mean[:, None, None], 0.0).pow(2).sum((1, 2)) / (count - 1.0)
    std = var.sqrt() + STD_GUARD
    return (x - mean[:, None, None]) / std[:, None, None]


class AudioToMelSpectrogram(nn.Module):
    """Audio to normalized log-mel features. State-dict keys match NeMo's: ``featurizer.window``, ``featurizer.fb``.

    Dither (and narrow-band augmentation, if enabled) apply only in training mode.
    """

    def __init__(self, spec: FeatureSpec | None = None):
        super().__init__()
        self.spec = spec or FeatureSpec()
        self.featurizer = MelFeaturizer(self.spec)

    @property
    def hop_length(self) -> int:
        return self.featurizer.hop_length

    def feature_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        return self.featurizer.feature_lengths(lengths)

    def forward(self, audio: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """
        Args:
            audio: shape = (B, T), float32 in [-1, 1]
            lengths: shape = (B,), int64 valid samples per row
        Returns:
            feats: shape = (B, n_mels * frame_splicing, F) with F = 1 + T // hop rounded up to a multiple of pad_to
            feat_lengths: shape = (B,), int64 valid frames (length // hop for the default settings)
        """
        return self.featurizer(audio, lengths)
