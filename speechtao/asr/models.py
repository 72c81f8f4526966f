"""QuartzNet and CitriNet: convolutional CTC acoustic models, built from a typed config.

One config (:class:`ASRModelConfig`) describes the feature front end and a list of Jasper-style blocks
(:class:`BlockConfig`). :func:`build_model` turns it into an :class:`EncDecCTCModel`::

    preprocessor   audio (B, T) -> log-mel features (B, n_mels, F), 100 frames/s
    encoder        (B, n_mels, F) -> (B, C, F / subsampling)     masked separable conv blocks
    decoder        (B, C, F') -> log-probs (B, F', V + 1)        1x1 conv + log-softmax, blank last

Parameter and buffer names mirror NeMo's ``EncDecCTCModel`` state dict (``encoder.encoder.3.mconv.5.conv.weight``,
``decoder.decoder_layers.0.weight``, ``preprocessor.featurizer.fb``), so a NeMo ``model_weights.ckpt`` of a
``conv_mask: true`` ConvASREncoder model loads with ``strict=True`` and no key mapping.

A block (``BlockConfig``) is ``repeat`` sub-blocks of [depthwise conv k -> pointwise 1x1 conv -> BatchNorm ->
ReLU -> dropout]; the last sub-block stops after BatchNorm, then (CitriNet) squeeze-and-excitation with global
context, then the residual branch (1x1 conv + BatchNorm of the block input) is added, then ReLU + dropout.
Every convolution first zeroes the frames beyond each utterance's length (NeMo's ``conv_mask``), so a padded
batch gives the same outputs on the valid frames as one utterance at a time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..features import AudioToMelSpectrogram, FeatureSpec
from ..spec import spec_from_dict, spec_to_dict
from .fftconv import conv_fft, fft_applies

ACTIVATIONS = ("relu", "swish", "silu", "selu", "gelu", "hardtanh")  # NeMo's jasper_activations


@dataclass(frozen=True)
class BlockConfig:
    """One Jasper/QuartzNet/CitriNet block (NeMo's ``encoder.jasper[i]`` entry, same field meanings)."""

    filters: int  # output channels
    repeat: int  # R: sub-blocks (conv -> BN -> act) in the block
    kernel: int  # time kernel of the (depthwise) convolutions, odd
    stride: int = 1  # time stride; 2 halves the frame rate
    dilation: int = 1  # time dilation (stride and dilation cannot both exceed 1)
    dropout: float = 0.0  # dropout after each activation
    residual: bool = True  # add a 1x1 conv + BN branch of the block input before the last activation
    separable: bool = True  # depthwise k + pointwise 1x1 (QuartzNet/CitriNet) instead of a full conv (Jasper)
    se: bool = False  # squeeze-and-excitation with global context (CitriNet)
    se_reduction_ratio: int = 8  # SE hidden size = filters // ratio
    residual_mode: Literal["add", "stride_add"] = "add"  # stride_add: the residual 1x1 conv strides too
    stride_last: bool = False  # only the last sub-block strides (CitriNet); else every sub-block does
    residual_dense: bool = False  # Jasper "DR": residual branches from the outputs of every earlier dense block

    def __post_init__(self) -> None:
        if self.filters < 1 or self.repeat < 1:
            raise ValueError(f"filters and repeat must be >= 1, got filters={self.filters} repeat={self.repeat}")
        if self.kernel < 1 or self.kernel % 2 == 0:
            raise ValueError(f"kernel must be a positive odd number, got {self.kernel}")
        if self.stride < 1 or self.dilation < 1:
            raise ValueError(f"stride and dilation must be >= 1, got {self.stride} and {self.dilation}")
        if self.stride > 1 and self.dilation > 1:
            raise ValueError(f"stride {self.stride} with dilation {self.dilation}: only one may exceed 1")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.se and not 1 <= self.se_reduction_ratio <= self.filters:
            raise ValueError(
                f"se_reduction_ratio must be in [1, filters={self.filters}], got {self.se_reduction_ratio}"
            )

    @property
    def total_stride(self) -> int:
        """Subsampling of this block: stride once with stride_last, else stride ** repeat (as NeMo)."""
        return self.stride if (self.stride_last or self.repeat == 1) else self.stride**self.repeat


@dataclass(frozen=True)
class ASRModelConfig:
    """Everything needed to rebuild a model's architecture except the vocabulary size."""

    preprocessor: FeatureSpec  # log-mel front end (speechtao.features)
    blocks: tuple[BlockConfig, ...]  # encoder blocks, in order
    activation: str = "relu"  # activation in blocks and SE (NeMo's jasper_activations names)
    family: str = "custom"  # "quartznet" | "citrinet" | "jasper" | "custom": informational (`asr info`)

    def __post_init__(self) -> None:
        if not self.blocks:
            raise ValueError("blocks: at least one encoder block is required")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation {self.activation!r} is not one of {list(ACTIVATIONS)}")
        panes, c = [self.feat_in], self.feat_in  # channel counts of the residual panes (see ConvEncoder)
        for i, b in enumerate(self.blocks):
            if b.residual and not b.residual_dense and panes[0] != c:
                raise ValueError(
                    f"blocks[{i}]: a residual block right after dense-residual blocks adds their first pane "
                    f"({panes[0]} channels, NeMo's rule) but its input has {c}: make it residual_dense, "
                    f"residual: false, or {panes[0]} wide"
                )
            panes = panes + [b.filters] if b.residual_dense else [b.filters]
            c = b.filters

    @property
    def feat_in(self) -> int:
        return self.preprocessor.n_features

    @property
    def feat_out(self) -> int:
        return self.blocks[-1].filters

    @property
    def subsampling_factor(self) -> int:
        f = 1
        for b in self.blocks:
            f *= b.total_stride
        return f

    def to_dict(self) -> dict:
        return spec_to_dict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ASRModelConfig:
        """Strict inverse of :meth:`to_dict` (unknown keys raise :class:`speechtao.errors.SpecError`)."""
        return spec_from_dict(cls, data)


def _activation(name: str) -> nn.Module:
    if name == "relu":
        return nn.ReLU(inplace=True)
    if name in ("swish", "silu"):
        return nn.SiLU(inplace=True)
    if name == "selu":
        return nn.SELU(inplace=True)
    if name == "gelu":
        return nn.GELU()
    if name == "hardtanh":
        return nn.Hardtanh(inplace=True)
    raise ValueError(f"activation {name!r} is not one of {list(ACTIVATIONS)}")


def length_mask(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """``(B,)`` lengths -> ``(B, 1, max_len)`` bool mask, True on valid frames."""
    return (torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None]).unsqueeze(1)


class MaskedConv1d(nn.Module):
    """A Conv1d with "same" padding that first zeroes the frames past each sequence's length.

    forward(x (B, C_in, T), lengths (B,)) -> (y (B, C_out, T'), lengths' (B,)), T' = ceil(T / stride).
    ``fft`` (set by :func:`speechtao.asr.fftconv.set_fft_depthwise`): a long depthwise kernel runs through the FFT.
    """

    fft = False

    def __init__(
        self,
        c_in: int,
        c_out: int,
        kernel: int,
        stride: int = 1,
        dilation: int = 1,
        groups: int = 1,
        bias: bool = False,
    ):
        super().__init__()
        pad = dilation * (kernel - 1) // 2
        self.conv = nn.Conv1d(
            c_in, c_out, kernel, stride=stride, padding=pad, dilation=dilation, groups=groups, bias=bias
        )

    def out_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        (k,), (s,), (p,), (d,) = self.conv.kernel_size, self.conv.stride, self.conv.padding, self.conv.dilation
        if s == 1 and 2 * p == d * (k - 1):
            return lengths
        return torch.div(lengths + 2 * p - d * (k - 1) - 1, s, rounding_mode="trunc") + 1

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = x * length_mask(lengths, x.shape[2]).to(x.dtype)
        y = conv_fft(self.conv, x) if self.fft and fft_applies(self.conv, x) else self.conv(x)  # fftconv.py
        return y, self.out_lengths(lengths)


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation over the valid frames (global context).

    forward(x (B, C, T), lengths (B,)) -> (x * sigmoid(fc(mean_t x)) (B, C, T), lengths); padded frames are 0.
    """

    def __init__(self, channels: int, reduction_ratio: int, activation: str):
        super().__init__()
        hidden = channels // reduction_ratio
        self.fc = nn.Sequential(
            nn.Linear(channels, hidden, bias=False), _activation(activation), nn.Linear(hidden, channels, bias=False)
        )

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        valid = length_mask(lengths, x.shape[2])  # (B, 1, T)
        x = x.masked_fill(~valid, 0.0)
        pooled = x.sum(dim=2) / valid.sum(dim=2).to(x.dtype)  # (B, C)
        gate = torch.sigmoid(self.fc(pooled)).unsqueeze(2)  # (B, C, 1)
        return x * gate, lengths


class JasperBlock(nn.Module):
    """One encoder block (see the module docstring). Submodule indices follow NeMo's ``mconv`` list.

    forward(x (B, C_in, T), lengths (B,)) -> (y (B, filters, T / total_stride), lengths').
    """

    def __init__(self, c_in: int, cfg: BlockConfig, activation: str, panes: tuple[int, ...] = ()):
        """``panes``: channel counts of the tensors a dense-residual block adds (see :class:`ConvEncoder`);
        empty for the usual single residual from the block input."""
        super().__init__()
        self.cfg = cfg
        layers: list[nn.Module] = []
        c = c_in
        for i in range(cfg.repeat):
            last = i == cfg.repeat - 1
            stride = cfg.stride if (last or not cfg.stride_last) else 1
            layers += self._conv_bn(c, cfg.filters, cfg.kernel, stride, cfg.dilation, cfg.separable)
            if not last:
                layers += [_activation(activation), nn.Dropout(cfg.dropout)]
            c = cfg.filters
        if cfg.se:
            layers.append(SqueezeExcite(cfg.filters, cfg.se_reduction_ratio, activation))
        self.mconv = nn.ModuleList(layers)
        self.res: nn.ModuleList | None = None
        if cfg.residual:
            res_stride = cfg.stride if cfg.residual_mode == "stride_add" else 1
            self.res = nn.ModuleList(
                [nn.ModuleList(self._conv_bn(c, cfg.filters, 1, res_stride, 1, False)) for c in panes or (c_in,)]
            )
        self.mout = nn.Sequential(_activation(activation), nn.Dropout(cfg.dropout))

    @staticmethod
    def _conv_bn(c_in: int, c_out: int, kernel: int, stride: int, dilation: int, separable: bool) -> list[nn.Module]:
        if separable:
            convs = [MaskedConv1d(c_in, c_in, kernel, stride, dilation, groups=c_in), MaskedConv1d(c_in, c_out, 1)]
        else:
            convs = [MaskedConv1d(c_in, c_out, kernel, stride, dilation)]
        return convs + [nn.BatchNorm1d(c_out, eps=1e-3, momentum=0.1)]

    def forward(
        self, x: torch.Tensor, lengths: torch.Tensor, panes: list[torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``panes``: the tensors the residual branches read, in order (default ``[x]``)."""
        out, out_lengths = x, lengths
        for layer in self.mconv:
            if isinstance(layer, (MaskedConv1d, SqueezeExcite)):
                out, out_lengths = layer(out, out_lengths)
            else:
                out = layer(out)
        if self.res is not None:
            for branch, res in zip(self.res, panes or [x]):
                for layer in branch:
                    res = layer(res, lengths)[0] if isinstance(layer, MaskedConv1d) else layer(res)
                out = out + res
        return self.mout(out), out_lengths


class ConvEncoder(nn.Module):
    """Stack of :class:`JasperBlock`. forward(feats (B, n_mels, F), lengths (B,)) -> ((B, C, F'), lengths').

    Dense residuals (Jasper DR, ``residual_dense``): the encoder keeps a list of *panes*, the tensors later
    blocks may add. A plain block replaces the list with its output; a dense block appends its output. Block
    ``i`` adds one 1x1 conv + BN branch per pane it reads: a dense block reads every pane so far (the input of
    the first dense block of the run and each later dense output), any other residual block the first pane,
    which is its own input unless it follows a dense run (the same rule as NeMo's ConvASREncoder)."""

    def __init__(self, config: ASRModelConfig):
        super().__init__()
        blocks, c, dense_in = [], config.feat_in, []
        for b in config.blocks:
            if b.residual_dense:
                dense_in.append(c)
            blocks.append(JasperBlock(c, b, config.activation, tuple(dense_in) if b.residual_dense else ()))
            c = b.filters
        self.encoder = nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        panes = [x]
        for block in self.encoder:
            n = len(block.res) if block.res is not None else 0
            out, lengths = block(panes[-1], lengths, panes[:n] if n else None)
            panes = panes + [out] if block.cfg.residual_dense else [out]
        return panes[-1], lengths


class ConvDecoder(nn.Module):
    """1x1 conv to V + 1 classes (blank last) + log-softmax. forward((B, C, T')) -> (B, T', V + 1)."""

    def __init__(self, feat_in: int, vocab_size: int):
        super().__init__()
        self.decoder_layers = nn.Sequential(nn.Conv1d(feat_in, vocab_size + 1, kernel_size=1, bias=True))

    @property
    def num_classes_with_blank(self) -> int:
        return self.decoder_layers[0].out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return log_softmax_fp32(self.decoder_layers(x).transpose(1, 2))  # (B, V+1, T') -> (B, T', V+1)


def log_softmax_fp32(logits: torch.Tensor) -> torch.Tensor:
    """Log-softmax over the last axis in float32, also when autocast computed ``logits`` in bf16/fp16 (CPU autocast
    would run it in bf16: log-probabilities off by ~1e-2, fed to the CTC loss). A no-op cast is not traced in
    fp32, so exported graphs do not change."""
    if logits.dtype != torch.float32:
        logits = logits.float()
    return F.log_softmax(logits, dim=-1)


def init_weights(module: nn.Module) -> None:
    """NeMo's default init: Xavier-uniform conv/linear weights, BatchNorm to identity."""
    for m in module.modules():
        if isinstance(m, (nn.Conv1d, nn.Linear)):
            nn.init.xavier_uniform_(m.weight, gain=1.0)
        elif isinstance(m, nn.BatchNorm1d):
            m.reset_running_stats()
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class CTCModelBase(nn.Module):
    """What every CTC model here shares: ``preprocessor`` (audio -> features), ``spec_augmentation`` (training
    only), ``forward_features`` (features -> log-probabilities, defined by the subclass) and a ``decoder`` with
    ``num_classes_with_blank``; the blank is the last class."""

    @property
    def vocab_size(self) -> int:
        """Tokens without the blank."""
        return self.decoder.num_classes_with_blank - 1

    @property
    def blank_id(self) -> int:
        return self.vocab_size

    def forward(self, audio: torch.Tensor, audio_lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """audio (B, T) float32, audio_lengths (B,) int64 -> (log_probs (B, T', V+1), out_lengths (B,)).

        Features are computed in float32 under autocast too (the log of bf16 mel energies loses the quiet frames);
        the network after them autocasts, and the log-softmax is float32 again (:func:`log_softmax_fp32`)."""
        if audio.dim() == 3:  # features computed before (data.cache_features): (B, n_mels, F), frame lengths
            feats, feat_lengths = audio, audio_lengths
        elif torch.is_autocast_enabled(audio.device.type):
            with torch.autocast(audio.device.type, enabled=False):
                feats, feat_lengths = self.preprocessor(audio.float(), audio_lengths)
        else:
            feats, feat_lengths = self.preprocessor(audio, audio_lengths)
        if self.spec_augmentation is not None and self.training:
            feats = self.spec_augmentation(feats, feat_lengths)
        return self.forward_features(feats, feat_lengths)


class EncDecCTCModel(CTCModelBase):
    """Audio -> CTC log-probabilities. Blank is the last class (index ``vocab_size``), as in NeMo.

    ``spec_augmentation`` (None by default) is any module ``(feats (B, n_mels, F), lengths) -> feats``;
    it runs only in training mode.
    """

    def __init__(self, config: ASRModelConfig, vocab_size: int):
        super().__init__()
        if vocab_size < 1:
            raise ValueError(f"vocab_size must be >= 1, got {vocab_size}")
        self.config = config
        self.preprocessor = AudioToMelSpectrogram(config.preprocessor)
        self.encoder = ConvEncoder(config)
        self.decoder = ConvDecoder(config.feat_out, vocab_size)
        self.spec_augmentation: nn.Module | None = None
        self.subsampling_factor = config.subsampling_factor
        init_weights(self.encoder)
        init_weights(self.decoder)

    def forward_features(self, feats: torch.Tensor, feat_lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """feats (B, n_mels, F), feat_lengths (B,) -> (log_probs (B, F', V+1), out_lengths (B,))."""
        encoded, lengths = self.encoder(feats, feat_lengths)
        return self.decoder(encoded), lengths

    def inference_state_dict(self) -> dict[str, torch.Tensor]:
        """The state dict without training-only modules (``spec_augmentation``): what checkpoints store."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith("spec_augmentation.")}

    def change_vocabulary(self, vocab_size: int) -> None:
        """Replace the decoder with a freshly initialised one for ``vocab_size`` tokens (+ blank)."""
        if vocab_size < 1:
            raise ValueError(f"vocab_size must be >= 1, got {vocab_size}")
        device = self.decoder.decoder_layers[0].weight.device
        self.decoder = ConvDecoder(self.config.feat_out, vocab_size).to(device)
        init_weights(self.decoder)

    def freeze_encoder(self, keep_bn_and_se_trainable: bool = True) -> None:
        """Stop gradients into the encoder; optionally keep BatchNorm and SE parameters trainable."""
        for p in self.encoder.parameters():
            p.requires_grad_(False)
        if keep_bn_and_se_trainable:
            for m in self.encoder.modules():
                if isinstance(m, (nn.BatchNorm1d, SqueezeExcite)):
                    for p in m.parameters():
                        p.requires_grad_(True)

    def unfreeze(self) -> None:
        for p in self.parameters():
            p.requires_grad_(True)


def build_model(config: ASRModelConfig, vocab_size: int) -> EncDecCTCModel:
    return EncDecCTCModel(config, vocab_size)


def ctc_loss(
    log_probs: torch.Tensor, lengths: torch.Tensor, targets: torch.Tensor, target_lengths: torch.Tensor, blank: int
) -> torch.Tensor:
    """Mean over the batch of per-utterance CTC losses (NeMo's default ``mean_batch``).

    log_probs (B, T, V+1), lengths (B,), targets (B, U), target_lengths (B,) -> scalar.
    Infinite losses (a target longer than its output) become 0 with no gradient.
    """
    per_utt = F.ctc_loss(
        log_probs.transpose(0, 1).float(),
        targets,
        lengths,
        target_lengths,
        blank=blank,
        reduction="none",
        zero_infinity=True,
    )  # (T, B, V+1) in
    return per_utt.mean()


# ---------------------------------------------------------------------------------------------------------------
# Presets: published NeMo architectures (examples/asr/conf/quartznet, .../citrinet) and two small CPU variants.


def _quartznet(
    groups: list[tuple[int, int]],
    b_per_group: int,
    c1: int = 256,
    c2: int = 512,
    c3: int = 1024,
    dropout: float = 0.0,
    n_mels: int = 64,
) -> ASRModelConfig:
    blocks = [BlockConfig(c1, 1, 33, stride=2, dropout=dropout, residual=False)]
    for filters, kernel in groups:
        blocks += [BlockConfig(filters, 5, kernel, dropout=dropout) for _ in range(b_per_group)]
    blocks += [
        BlockConfig(c2, 1, 87, dilation=2, dropout=dropout, residual=False),
        BlockConfig(c3, 1, 1, dropout=dropout, residual=False, separable=False),
    ]
    pre = FeatureSpec(n_mels=n_mels, window_size=0.02, window_stride=0.01, n_fft=512)
    return ASRModelConfig(preprocessor=pre, blocks=tuple(blocks), family="quartznet")


_QN_GROUPS = [(256, 33), (256, 39), (512, 51), (512, 63), (512, 75)]


def _citrinet(
    filters: int,
    final: int,
    repeat: int = 5,
    dropout: float = 0.1,
    kernel_factor: float = 1.0,
    se_reduction_ratio: int = 8,
    n_mels: int = 80,
) -> ASRModelConfig:
    def k(size: int) -> int:  # NeMo's kernel_size_factor rounding: floor, then up to the next odd size
        size = max(int(size * kernel_factor), 1)
        return size + 1 if size % 2 == 0 else size

    def blk(f: int, r: int, kernel: int, **kw) -> BlockConfig:
        return BlockConfig(f, r, k(kernel), se=True, se_reduction_ratio=se_reduction_ratio, **kw)

    blocks = [blk(filters, 1, 5, residual=False)]
    for first, last in ((11, 21), (13, 25), (25, 39)):  # three mega-blocks of 6, 7 and 8 blocks
        for kernel in range(first, last + 1, 2):
            strided = kernel == first
            blocks.append(
                blk(
                    filters,
                    repeat,
                    kernel,
                    dropout=dropout,
                    stride=2 if strided else 1,
                    stride_last=strided,
                    residual_mode="stride_add" if strided else "add",
                )
            )
    blocks.append(blk(final, 1, 41, residual=False))
    pre = FeatureSpec(n_mels=n_mels, window_size=0.025, window_stride=0.01, n_fft=512)
    return ASRModelConfig(preprocessor=pre, blocks=tuple(blocks), family="citrinet")


def _jasper(
    groups: list[tuple[int, int, float]],
    b_per_group: int,
    repeat: int = 5,
    first: tuple[int, int, float] = (256, 11, 0.2),
    last: tuple[int, int, int, float] = (896, 29, 1024, 0.4),
    dense: bool = True,
    n_mels: int = 64,
) -> ASRModelConfig:
    """Jasper (Li et al. 2019, "Jasper: An End-to-End Convolutional Neural Acoustic Model"): full (not separable)
    convolutions; ``groups`` are (filters, kernel, dropout) of each group of ``b_per_group`` blocks of ``repeat``
    sub-blocks; "DR" = dense residual. The published 10x5 layout is NeMo's jasper_10x5dr config."""
    f0, k0, d0 = first
    blocks = [BlockConfig(f0, 1, k0, stride=2, dropout=d0, residual=False, separable=False)]
    for filters, kernel, dropout in groups:
        blocks += [
            BlockConfig(filters, repeat, kernel, dropout=dropout, separable=False, residual_dense=dense)
            for _ in range(b_per_group)
        ]
    f1, k1, f2, d1 = last
    blocks += [
        BlockConfig(f1, 1, k1, dilation=2, dropout=d1, residual=False, separable=False),
        BlockConfig(f2, 1, 1, dropout=d1, residual=False, separable=False),
    ]
    pre = FeatureSpec(n_mels=n_mels, window_size=0.02, window_stride=0.01, n_fft=512)
    return ASRModelConfig(preprocessor=pre, blocks=tuple(blocks), family="jasper")


_JASPER_GROUPS = [(256, 11, 0.2), (384, 13, 0.2), (512, 17, 0.2), (640, 21, 0.3), (768, 25, 0.3)]


def _presets() -> dict[str, ASRModelConfig]:
    return {
        "quartznet_15x5": _quartznet(_QN_GROUPS, 3),
        "quartznet_5x5": _quartznet(_QN_GROUPS, 1),
        # CPU: QuartzNet 5x5 at 256 channels throughout (~2.6M parameters).
        "quartznet_small": _quartznet([(256, k) for _, k in _QN_GROUPS], 1, c2=256, c3=512),
        "citrinet_256": _citrinet(256, 640),
        "citrinet_384": _citrinet(384, 640),
        "citrinet_512": _citrinet(512, 640),
        "citrinet_1024": _citrinet(1024, 1280),
        # CPU: CitriNet layout at 128 channels, 3 sub-blocks per block, kernels scaled by 0.5.
        "citrinet_small": _citrinet(128, 256, repeat=3, kernel_factor=0.5),
        "jasper_10x5dr": _jasper(_JASPER_GROUPS, 2),
        # CPU: Jasper 5x2 DR at 64-128 channels with shorter kernels (~1.4M parameters).
        "jasper_small": _jasper(
            [(64, 5, 0.1), (80, 7, 0.1), (96, 9, 0.1), (112, 11, 0.1), (128, 13, 0.1)],
            1,
            repeat=2,
            first=(64, 11, 0.1),
            last=(192, 13, 256, 0.1),
        ),
    }


PRESETS: dict[str, ASRModelConfig] = _presets()

# Vocabulary size each preset is published with: NeMo's 28 English characters, or a SentencePiece size.
PRESET_VOCAB_SIZE: dict[str, int] = {
    "quartznet_15x5": 28,
    "quartznet_5x5": 28,
    "quartznet_small": 28,
    "citrinet_256": 1024,
    "citrinet_384": 1024,
    "citrinet_512": 1024,
    "citrinet_1024": 1024,
    "citrinet_small": 256,
    "jasper_10x5dr": 28,
    "jasper_small": 28,
}


# ---------------------------------------------------------------------------------------------------------------
# Size and cost, for `speechtao asr info`.


def parameter_counts(model: EncDecCTCModel) -> dict[str, int]:
    enc = sum(p.numel() for p in model.encoder.parameters())
    dec = sum(p.numel() for p in model.decoder.parameters())
    return {"encoder": enc, "decoder": dec, "total": enc + dec}


def macs_per_second(config: ASRModelConfig, vocab_size: int, frames_per_second: float = 100.0) -> dict[str, float]:
    """Multiply-accumulates of the convolutions (and SE layers) for one second of audio.

    Counted analytically at ``frames_per_second`` input frames (100 for a 10 ms hop) with fractional frame
    counts after striding; BatchNorm, activations, SE gating and the feature front end are left out.
    """
    enc, t, c = 0.0, frames_per_second, config.feat_in
    for b in config.blocks:
        t_block_in, c_block_in = t, c
        for i in range(b.repeat):
            last = i == b.repeat - 1
            stride = b.stride if (last or not b.stride_last) else 1
            t = t / stride
            if b.separable:
                enc += t * c * b.kernel + t * c * b.filters
            else:
                enc += t * c * b.filters * b.kernel
            c = b.filters
        if b.se:
            enc += 2 * b.filters * (b.filters // b.se_reduction_ratio)  # the two fc layers, once per utterance
        if b.residual:
            res_stride = b.stride if b.residual_mode == "stride_add" else 1
            enc += (t_block_in / res_stride) * c_block_in * b.filters
    dec = t * c * (vocab_size + 1)
    return {"encoder": enc, "decoder": dec, "total": enc + dec}
