"""Structured channel pruning of QuartzNet/CitriNet: a smaller dense model, not a masked one.

Which channels go together (a *group*: removing channel c removes it from every member)::

    block i, sub-block j < R-1:  pointwise conv j out + BatchNorm j  ->  depthwise conv j+1 + pointwise conv j+1 in
    block i output (tied):       last pointwise conv out + its BatchNorm
                                 + residual 1x1 conv out + its BatchNorm   (added elementwise)
                                 + squeeze-excitation fc1 in / fc2 out
                                 ->  block i+1: depthwise conv 0, pointwise conv 0 in, residual conv in
                                     (or the decoder's input after the last block)
    squeeze-excitation hidden:   fc1 out / fc2 in, kept at new_filters // se_reduction_ratio

A depthwise (separable) conv has one filter per channel, so it follows the channels of the tensor it reads.

Ranking: each producing conv is folded with its BatchNorm (``W * gamma / sqrt(var + eps)``), the L2 norm of
each output channel is divided by the layer's largest (so 1.0 is the layer's strongest channel), and a tied
group averages its members' normalized norms. The feature input (``n_mels``) and the decoder's outputs are never
pruned.

Width per block: the config has one ``filters`` per block, so all R sub-block outputs of a block keep the same
count (each keeps its own best channels). With ``ratio`` r the count is ``(1 - r) * filters``; with ``threshold``
t it is the largest count of channels scoring >= t among the block's tensors. Either is rounded up to a multiple
of ``granularity``, raised to ``min_channels`` (rounded up too) and capped at the old width.

Usage::

    result = prune_model(loaded.model, PruneOptions(ratio=0.5))
    result.model                  # EncDecCTCModel with result.config (new widths), weights copied
    print(result.summary())       # parameters and MACs before and after
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import InputError
from .models import (ASRModelConfig, EncDecCTCModel, JasperBlock, MaskedConv1d, SqueezeExcite, build_model,
                     macs_per_second, parameter_counts)


@dataclass(frozen=True)
class PruneOptions:
    ratio: float | None = None  # share of each block's channels to remove, in [0, 1)
    threshold: float | None = None  # or: keep channels whose normalized score is >= this, in (0, 1]
    granularity: int = 8  # kept widths are multiples of this (SIMD/tensor-core friendly)
    min_channels: int = 16  # never keep fewer channels in a block

    def __post_init__(self) -> None:
        if (self.ratio is None) == (self.threshold is None):
            raise InputError(f"give exactly one of ratio and threshold (got ratio={self.ratio}, "
                             f"threshold={self.threshold}); e.g. --ratio 0.5")
        if self.ratio is not None and not 0.0 <= self.ratio < 1.0:
            raise InputError(f"ratio {self.ratio} is not in [0, 1) (0.5 removes half of each block's channels)")
        if self.threshold is not None and not 0.0 < self.threshold <= 1.0:
            raise InputError(f"threshold {self.threshold} is not in (0, 1] (scores are norms divided by the "
                             "layer's largest, so 1.0 keeps only the strongest channel)")
        if self.granularity < 1 or self.min_channels < 1:
            raise InputError(f"granularity ({self.granularity}) and min_channels ({self.min_channels}) must be >= 1")


@dataclass
class PruneResult:
    model: EncDecCTCModel
    config: ASRModelConfig
    widths_before: list[int]
    widths_after: list[int]
    params_before: int
    params_after: int
    macs_before: float  # per second of audio
    macs_after: float

    def summary(self) -> str:
        return (f"parameters {self.params_before:,} -> {self.params_after:,} "
                f"({100 * self.params_after / self.params_before:.1f}%)\n"
                f"MACs per second of audio {self.macs_before / 1e6:,.1f}M -> {self.macs_after / 1e6:,.1f}M "
                f"({100 * self.macs_after / self.macs_before:.1f}%)\n"
                f"block widths {self.widths_before} -> {self.widths_after}")


@dataclass
class _SubBlock:
    convs: list[MaskedConv1d]  # [depthwise, pointwise] or [full conv]
    bn: nn.BatchNorm1d


def _sub_blocks(block: JasperBlock) -> tuple[list[_SubBlock], SqueezeExcite | None]:
    """The block's (convs, BatchNorm) units in order, and its SE module."""
    subs, convs, se = [], [], None
    for layer in block.mconv:
        if isinstance(layer, MaskedConv1d):
            convs.append(layer)
        elif isinstance(layer, nn.BatchNorm1d):
            subs.append(_SubBlock(convs, layer))
            convs = []
        elif isinstance(layer, SqueezeExcite):
            se = layer
    if len(subs) != block.cfg.repeat or convs:
        raise InputError(f"block layout {[type(m).__name__ for m in block.mconv]} is not a Jasper block of "
                         f"repeat {block.cfg.repeat} (this model cannot be pruned)")
    return subs, se


def _folded_norms(conv: nn.Conv1d, bn: nn.BatchNorm1d) -> torch.Tensor:
    """(C_out,) L2 norms of the BatchNorm-folded conv filters."""
    scale = bn.weight.detach() / torch.sqrt(bn.running_var + bn.eps)
    return conv.weight.detach().flatten(1).norm(dim=1) * scale.abs()


def _normalized(x: torch.Tensor) -> torch.Tensor:
    m = x.max()
    return x / m if m > 0 else torch.ones_like(x)


def _round_width(raw: float, old: int, opts: PruneOptions) -> int:
    g = opts.granularity
    k = max(math.ceil(raw / g) * g, math.ceil(opts.min_channels / g) * g)
    return max(1, min(old, k))


def channel_scores(model: EncDecCTCModel) -> list[list[torch.Tensor]]:
    """Per block, per sub-block: the normalized score of each output channel (last one: the tied group)."""
    out = []
    for block in model.encoder.encoder:
        subs, _ = _sub_blocks(block)
        scores = [_normalized(_folded_norms(s.convs[-1].conv, s.bn)) for s in subs]
        if block.res is not None:
            res_conv, res_bn = block.res[0][0], block.res[0][1]
            scores[-1] = _normalized((scores[-1] + _normalized(_folded_norms(res_conv.conv, res_bn))) / 2)
        out.append(scores)
    return out


def _top(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the k highest scores, in ascending channel order (keeps the layout stable)."""
    return torch.sort(torch.topk(scores, k).indices).values


def prune_model(model: EncDecCTCModel, options: PruneOptions) -> PruneResult:
    """A new, smaller :class:`EncDecCTCModel` holding the kept channels of ``model`` (which is left unchanged)."""
    model = model.eval()
    config = model.config
    scores = channel_scores(model)
    widths, keep = [], []  # keep[i][j]: kept output channels of block i, sub-block j
    for bcfg, block_scores in zip(config.blocks, scores):
        if options.ratio is not None:
            raw = (1.0 - options.ratio) * bcfg.filters
        else:
            raw = max(int((s >= options.threshold).sum()) for s in block_scores)
        k = _round_width(raw, bcfg.filters, options)
        if bcfg.se:
            k = max(k, bcfg.se_reduction_ratio)
        widths.append(k)
        keep.append([_top(s, k) for s in block_scores])
    new_blocks = tuple(dataclasses.replace(b, filters=w) for b, w in zip(config.blocks, widths))
    new_config = dataclasses.replace(config, blocks=new_blocks)
    new = build_model(new_config, model.vocab_size).eval()
    new.load_state_dict(_pruned_state_dict(model, new, keep), strict=True)
    vocab = model.vocab_size
    before, after = macs_per_second(config, vocab)["total"], macs_per_second(new_config, vocab)["total"]
    return PruneResult(new, new_config, [b.filters for b in config.blocks], widths,
                       parameter_counts(model)["total"], parameter_counts(new)["total"], before, after)


def _pruned_state_dict(old: EncDecCTCModel, new: EncDecCTCModel, keep: list[list[torch.Tensor]]) -> dict:
    """The new model's state dict filled from ``old`` through the kept channel indices."""
    sd: dict[str, torch.Tensor] = dict(new.state_dict())
    old_names = {m: n for n, m in old.named_modules()}

    def put(module: nn.Module, name: str, value: torch.Tensor) -> None:
        key = f"{old_names[module]}.{name}"
        if sd[key].shape != value.shape:
            raise AssertionError(f"pruning produced {key} of shape {tuple(value.shape)}, expected {tuple(sd[key].shape)}")
        sd[key] = value.clone()

    def conv(m: MaskedConv1d, out_idx: torch.Tensor, in_idx: torch.Tensor) -> None:
        w = m.conv.weight.detach()
        if m.conv.groups == 1:
            w = w[out_idx][:, in_idx]
        else:  # depthwise: one filter per channel, out == in
            w = w[in_idx]
        put(m.conv, "weight", w)
        if m.conv.bias is not None:
            put(m.conv, "bias", m.conv.bias.detach()[out_idx if m.conv.groups == 1 else in_idx])

    def bn(m: nn.BatchNorm1d, idx: torch.Tensor) -> None:
        for name in ("weight", "bias", "running_mean", "running_var"):
            put(m, name, getattr(m, name).detach()[idx])
        put(m, "num_batches_tracked", m.num_batches_tracked.detach())

    in_idx = torch.arange(old.config.feat_in)
    for block, block_keep, bcfg in zip(old.encoder.encoder, keep, old.config.blocks):
        block_in = in_idx
        subs, se = _sub_blocks(block)
        for sub, out_idx in zip(subs, block_keep):
            for c in sub.convs:
                conv(c, out_idx, in_idx)
            bn(sub.bn, out_idx)
            in_idx = out_idx
        out_idx = block_keep[-1]
        if se is not None:
            fc1, fc2 = se.fc[0], se.fc[2]
            hidden = len(out_idx) // bcfg.se_reduction_ratio
            h_scores = _normalized(fc1.weight.detach()[:, out_idx].norm(dim=1)) \
                + _normalized(fc2.weight.detach()[out_idx].norm(dim=0))
            h_idx = _top(h_scores, hidden)
            put(fc1, "weight", fc1.weight.detach()[h_idx][:, out_idx])
            put(fc2, "weight", fc2.weight.detach()[out_idx][:, h_idx])
        if block.res is not None:
            conv(block.res[0][0], out_idx, block_in)
            bn(block.res[0][1], out_idx)
        in_idx = out_idx
    dec = old.decoder.decoder_layers[0]
    put(dec, "weight", dec.weight.detach()[:, in_idx])
    put(dec, "bias", dec.bias.detach())
    return sd
