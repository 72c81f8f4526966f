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

Whisper-encoder CTC models (:mod:`speechtao.asr.whisper_ctc`) lose attention heads and FFN neurons per layer
instead (the residual width ``d_model`` stays: the position table and every LayerNorm are tied to it):

    head k of layer i:           its q, k, v rows of the fused projection  +  its columns of the output projection
    FFN neuron j of layer i:     row j (and bias j) of the first linear layer  +  column j of the second

scored like channels above: the L2 norms on the input side and on the output side, each divided by the layer's
largest, averaged. With ``ratio`` r a layer keeps ``ceil((1 - r) * heads)`` heads (at least one) and
``(1 - r) * ffn_dim`` neurons rounded as block widths are (``granularity``, ``min_channels``); with ``threshold``
t the heads / neurons scoring >= t (at least one head; neurons rounded the same way). The kept counts go into
the config (``layer_heads``, ``layer_ffn``), so the pruned checkpoint loads on its own.

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
from .models import (
    ASRModelConfig,
    EncDecCTCModel,
    JasperBlock,
    MaskedConv1d,
    SqueezeExcite,
    build_model,
    macs_per_second,
    parameter_counts,
)


@dataclass(frozen=True)
class PruneOptions:
    ratio: float | None = None  # share of each block's channels to remove, in [0, 1)
    threshold: float | None = None  # or: keep channels whose normalized score is >= this, in (0, 1]
    granularity: int = 8  # kept widths are multiples of this (SIMD/tensor-core friendly)
    min_channels: int = 16  # never keep fewer channels in a block

    def __post_init__(self) -> None:
        if (self.ratio is None) == (self.threshold is None):
            raise InputError(
                f"give exactly one of ratio and threshold (got ratio={self.ratio}, "
                f"threshold={self.threshold}); e.g. --ratio 0.5"
            )
        if self.ratio is not None and not 0.0 <= self.ratio < 1.0:
            raise InputError(f"ratio {self.ratio} is not in [0, 1) (0.5 removes half of each block's channels)")
        if self.threshold is not None and not 0.0 < self.threshold <= 1.0:
            raise InputError(
                f"threshold {self.threshold} is not in (0, 1] (scores are norms divided by the "
                "layer's largest, so 1.0 keeps only the strongest channel)"
            )
        if self.granularity < 1 or self.min_channels < 1:
            raise InputError(f"granularity ({self.granularity}) and min_channels ({self.min_channels}) must be >= 1")


@dataclass
class PruneResult:
    model: EncDecCTCModel  # or WhisperCTCModel
    config: ASRModelConfig  # or WhisperCTCConfig
    widths_before: list[int]  # per block (ConvASR) or per layer FFN width (Whisper)
    widths_after: list[int]
    params_before: int
    params_after: int
    macs_before: float  # per second of audio
    macs_after: float
    heads_before: list[int] | None = None  # Whisper: attention heads per layer
    heads_after: list[int] | None = None

    def summary(self) -> str:
        widths = f"block widths {self.widths_before} -> {self.widths_after}"
        if self.heads_before is not None:
            widths = (
                f"attention heads per layer {self.heads_before} -> {self.heads_after}\n"
                f"FFN widths per layer {self.widths_before} -> {self.widths_after}"
            )
        return (
            f"parameters {self.params_before:,} -> {self.params_after:,} "
            f"({100 * self.params_after / self.params_before:.1f}%)\n"
            f"MACs per second of audio {self.macs_before / 1e6:,.1f}M -> {self.macs_after / 1e6:,.1f}M "
            f"({100 * self.macs_after / self.macs_before:.1f}%)\n" + widths
        )


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
        raise InputError(
            f"block layout {[type(m).__name__ for m in block.mconv]} is not a Jasper block of "
            f"repeat {block.cfg.repeat} (this model cannot be pruned)"
        )
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
        if block.res is not None:  # the block output is tied to every residual branch added to it
            res = [_normalized(_folded_norms(branch[0].conv, branch[1])) for branch in block.res]
            scores[-1] = _normalized((scores[-1] + sum(res)) / (1 + len(res)))
        out.append(scores)
    return out


def _top(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the k highest scores, in ascending channel order (keeps the layout stable)."""
    return torch.sort(torch.topk(scores, k).indices).values


def prune_model(model: EncDecCTCModel, options: PruneOptions) -> PruneResult:
    """A new, smaller :class:`EncDecCTCModel` holding the kept channels of ``model`` (which is left unchanged).
    A :class:`~speechtao.asr.whisper_ctc.WhisperCTCModel` loses heads and FFN neurons instead (see above)."""
    from .whisper_ctc import WhisperCTCModel

    if isinstance(model, WhisperCTCModel):
        return prune_whisper(model, options)
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
    return PruneResult(
        new,
        new_config,
        [b.filters for b in config.blocks],
        widths,
        parameter_counts(model)["total"],
        parameter_counts(new)["total"],
        before,
        after,
    )


def _pruned_state_dict(old: EncDecCTCModel, new: EncDecCTCModel, keep: list[list[torch.Tensor]]) -> dict:
    """The new model's state dict filled from ``old`` through the kept channel indices."""
    sd: dict[str, torch.Tensor] = dict(new.state_dict())
    old_names = {m: n for n, m in old.named_modules()}

    def put(module: nn.Module, name: str, value: torch.Tensor) -> None:
        key = f"{old_names[module]}.{name}"
        if sd[key].shape != value.shape:
            raise AssertionError(
                f"pruning produced {key} of shape {tuple(value.shape)}, expected {tuple(sd[key].shape)}"
            )
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
    panes = [in_idx]  # kept channels of the tensors residual branches read (see ConvEncoder)
    for block, block_keep, bcfg in zip(old.encoder.encoder, keep, old.config.blocks):
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
            h_scores = _normalized(fc1.weight.detach()[:, out_idx].norm(dim=1)) + _normalized(
                fc2.weight.detach()[out_idx].norm(dim=0)
            )
            h_idx = _top(h_scores, hidden)
            put(fc1, "weight", fc1.weight.detach()[h_idx][:, out_idx])
            put(fc2, "weight", fc2.weight.detach()[out_idx][:, h_idx])
        if block.res is not None:
            for branch, pane_idx in zip(block.res, panes):
                conv(branch[0], out_idx, pane_idx)
                bn(branch[1], out_idx)
        panes = panes + [out_idx] if bcfg.residual_dense else [out_idx]
        in_idx = out_idx
    dec = old.decoder.decoder_layers[0]
    put(dec, "weight", dec.weight.detach()[:, in_idx])
    put(dec, "bias", dec.bias.detach())
    return sd


# ------------------------------------------------------------------------------------------------- Whisper


def whisper_scores(model) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per transformer layer: (normalized score of each attention head, normalized score of each FFN neuron)."""
    out = []
    for layer in model.encoder.layers:
        attn, (fc1, _, fc2) = layer.attn, layer.mlp
        h, hd = attn.n_heads, attn.head_dim
        qkv_in = attn.qkv.weight.detach().view(3, h, hd, -1).permute(1, 0, 2, 3).reshape(h, -1).norm(dim=1)
        out_cols = attn.out.weight.detach().view(-1, h, hd).permute(1, 0, 2).reshape(h, -1).norm(dim=1)
        heads = _normalized((_normalized(qkv_in) + _normalized(out_cols)) / 2)
        ffn_in, ffn_out = fc1.weight.detach().norm(dim=1), fc2.weight.detach().norm(dim=0)
        out.append((heads, _normalized((_normalized(ffn_in) + _normalized(ffn_out)) / 2)))
    return out


def whisper_macs_per_second(config, vocab_size: int) -> float:
    """Multiply-accumulates of the convolutions and linear layers per second of audio (100 feature frames, 50
    encoder frames). The attention products (q.k and weights.v, which grow with the utterance) are left out."""
    enc, t_in, t = config.encoder, 100.0, 50.0
    macs = t_in * enc.n_mels * enc.d_model * 3 + t * enc.d_model * enc.d_model * 3
    for i in range(enc.n_layers):
        inner = enc.heads(i) * enc.head_dim
        macs += t * (enc.d_model * 3 * inner + inner * enc.d_model + 2 * enc.d_model * enc.ffn(i))
    head = config.head_hidden
    macs += t * (enc.d_model * head * 3 + head * (vocab_size + 1) if head else enc.d_model * (vocab_size + 1))
    return macs


def prune_whisper(model, options: PruneOptions) -> PruneResult:
    """A new, smaller :class:`~speechtao.asr.whisper_ctc.WhisperCTCModel` without the weakest heads and FFN
    neurons of each layer (``model`` is left unchanged)."""
    from .whisper_ctc import build_model as build_whisper

    model = model.eval()
    config, enc = model.config, model.config.encoder
    keep_heads, keep_ffn = [], []
    for i, (head_scores, ffn_scores) in enumerate(whisper_scores(model)):
        h, f = enc.heads(i), enc.ffn(i)
        if options.ratio is not None:
            n_heads, raw = math.ceil((1.0 - options.ratio) * h - 1e-9), (1.0 - options.ratio) * f
        else:
            n_heads, raw = int((head_scores >= options.threshold).sum()), int((ffn_scores >= options.threshold).sum())
        keep_heads.append(_top(head_scores, min(max(n_heads, 1), h)))
        keep_ffn.append(_top(ffn_scores, _round_width(raw, f, options)))
    new_enc = dataclasses.replace(
        enc, layer_heads=tuple(len(k) for k in keep_heads), layer_ffn=tuple(len(k) for k in keep_ffn)
    )
    new_config = dataclasses.replace(config, encoder=new_enc)
    new = build_whisper(new_config, model.vocab_size).eval()
    sd = {k: v.detach().clone() for k, v in model.inference_state_dict().items()}
    for i, (layer, heads, ffn) in enumerate(zip(model.encoder.layers, keep_heads, keep_ffn)):
        p, hd, h = f"encoder.layers.{i}", enc.head_dim, layer.attn.n_heads
        cols = (heads[:, None] * hd + torch.arange(hd)[None, :]).flatten()  # kept rows of one of q, k, v
        rows = torch.cat([part * h * hd + cols for part in range(3)])
        sd[f"{p}.attn.qkv.weight"] = sd[f"{p}.attn.qkv.weight"][rows]
        sd[f"{p}.attn.qkv.bias"] = sd[f"{p}.attn.qkv.bias"][rows]
        sd[f"{p}.attn.out.weight"] = sd[f"{p}.attn.out.weight"][:, cols]
        sd[f"{p}.mlp.0.weight"] = sd[f"{p}.mlp.0.weight"][ffn]
        sd[f"{p}.mlp.0.bias"] = sd[f"{p}.mlp.0.bias"][ffn]
        sd[f"{p}.mlp.2.weight"] = sd[f"{p}.mlp.2.weight"][:, ffn]
    new.load_state_dict(sd, strict=True)
    vocab = model.vocab_size
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    return PruneResult(
        new,
        new_config,
        [enc.ffn(i) for i in range(enc.n_layers)],
        list(new_enc.layer_ffn),
        count(model),
        count(new),
        whisper_macs_per_second(config, vocab),
        whisper_macs_per_second(new_config, vocab),
        heads_before=[enc.heads(i) for i in range(enc.n_layers)],
        heads_after=list(new_enc.layer_heads),
    )
