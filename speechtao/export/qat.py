"""Quantization-aware fine-tuning: simulate ORT's INT8 convolutions in PyTorch, then carry the ranges into the
QDQ export.

What is simulated (the scheme :mod:`speechtao.export.quantize` produces with ONNX Runtime, by default)::

    conv input   per-tensor UINT8, asymmetric: ORT's scale = (hi - lo) / 255, zero point round(-lo / scale), with
                 [lo, hi] = moving averages of the batch min and max, widened to include 0
                 (activations="int8": symmetric, scale = max(|lo|, |hi|) / 127)
    conv weight  per-output-channel symmetric INT8, scale_c = max|W_c| / 127
    float_ends   the first and the last conv stay float, as the export keeps them

Gradients pass the rounding straight through (``torch.fake_quantize_*``). BatchNorm is not folded here: ORT folds
it into the pointwise conv before quantizing, which multiplies each output channel by a constant, and a
per-channel symmetric scale absorbs that constant, so the INT8 weights come out the same. Conv outputs, which the
export quantizes too (ORT's ``QLinearConv`` writes UINT8), are not simulated: their ranges come from calibration.

The learned input ranges are saved in the checkpoint's ``extra["qat"]`` (``{"act_range": {module name: [lo,
hi]}}``) and :func:`onnx_range_overrides` maps them to the input tensors of the matching ``Conv`` nodes of the
optimized ONNX graph, where they replace the calibrated ranges.

Usage::

    names = prepare_qat(model)          # swaps nn.Conv1d modules for QATConv1d (same parameters)
    ... train ...
    payload = qat_payload(model_payload(model, tok), model)   # + extra["qat"]: the input ranges
    # or, end to end: `speechtao asr finetune --spec R.yaml qat.enabled=true` (speechtao.asr.train.QATSpec)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

QMAX = 127  # symmetric INT8 uses [-127, 127]
UQMAX = 255  # asymmetric UINT8 uses [0, 255]
RANGE_KEY = "act_range"  # extra["qat"][RANGE_KEY]: {conv module name: [lo, hi]}
LEGACY_AMAX_KEY = "act_amax"  # older checkpoints: {conv module name: amax}, symmetric INT8


def fake_quant_activation(x: torch.Tensor, lo: float, hi: float, activations: str = "uint8") -> torch.Tensor:
    """``x`` rounded to the per-tensor grid ONNX Runtime derives from the range ``[lo, hi]`` (same shape)."""
    lo, hi = min(lo, 0.0), max(hi, 0.0)  # ORT widens every range to include 0
    if activations == "int8":
        amax = max(-lo, hi)
        return torch.fake_quantize_per_tensor_affine(x, amax / QMAX, 0, -QMAX, QMAX) if amax > 0 else x
    scale = (hi - lo) / UQMAX
    if scale <= 0:
        return x
    zero_point = int(min(max(round(-lo / scale), 0), UQMAX))
    return torch.fake_quantize_per_tensor_affine(x, scale, zero_point, 0, UQMAX)


class QATConv1d(nn.Conv1d):
    """An ``nn.Conv1d`` whose input and weight pass through INT8 fake quantization.

    forward(x (B, C_in, T)) -> (B, C_out, T'). In training mode the input range is a moving average
    (``momentum``) of the batch's min and max; in eval mode the stored range is used as it is.
    """

    def __init__(self, conv: nn.Conv1d, momentum: float = 0.01, activations: str = "uint8"):
        super().__init__(
            conv.in_channels,
            conv.out_channels,
            conv.kernel_size,
            conv.stride,
            conv.padding,
            conv.dilation,
            conv.groups,
            conv.bias is not None,
            conv.padding_mode,
        )
        self.weight = conv.weight  # the same Parameter objects: an optimizer built before still updates them
        self.bias = conv.bias
        self.momentum = momentum
        self.activations = activations
        # not persistent: the state dict stays that of a plain model (resume and load_model work unchanged)
        self.register_buffer("act_lo", torch.zeros(()), persistent=False)
        self.register_buffer("act_hi", torch.zeros(()), persistent=False)
        self.register_buffer("observed", torch.zeros((), dtype=torch.bool), persistent=False)

    def set_range(self, lo: float, hi: float) -> None:
        self.act_lo.fill_(float(lo))
        self.act_hi.fill_(float(hi))
        self.observed.fill_(True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            with torch.no_grad():
                lo, hi = x.detach().min().float(), x.detach().max().float()
                if self.observed:
                    lo = (1 - self.momentum) * self.act_lo + self.momentum * lo
                    hi = (1 - self.momentum) * self.act_hi + self.momentum * hi
                self.set_range(lo, hi)
        if self.observed:
            x = fake_quant_activation(x, float(self.act_lo), float(self.act_hi), self.activations)
        w = self.weight
        scale = (w.detach().abs().flatten(1).amax(dim=1) / QMAX).clamp_min(1e-12).float()
        w = torch.fake_quantize_per_channel_affine(w, scale, torch.zeros_like(scale, dtype=torch.int32), 0, -QMAX, QMAX)
        return self._conv_forward(x, w, self.bias)


def prepare_qat(
    model: nn.Module,
    momentum: float = 0.01,
    ranges: dict | None = None,
    activations: str = "uint8",
    float_ends: bool = True,
) -> list[str]:
    """Replace the ``nn.Conv1d`` modules of ``model`` by :class:`QATConv1d` in place; returns their module names.

    ``float_ends`` leaves the first and the last conv (module order: the one reading the features, the CTC
    classifier) plain, as :class:`speechtao.export.quantize.QuantOptions` keeps them float in the export.
    ``ranges`` (``{name: (lo, hi)}``, e.g. :func:`checkpoint_ranges` of a QAT checkpoint) restores input ranges.
    """
    convs = [(n, m) for n, m in model.named_modules() if type(m) is nn.Conv1d]
    skip = {convs[0][0], convs[-1][0]} if float_ends and convs else set()
    names = []
    for name, module in list(model.named_modules()):
        for child_name, child in list(module.named_children()):
            full = f"{name}.{child_name}" if name else child_name
            if type(child) is nn.Conv1d and full not in skip:
                q = QATConv1d(child, momentum, activations)
                if ranges and full in ranges:
                    q.set_range(*ranges[full])
                setattr(module, child_name, q)
                names.append(full)
    return names


def observe_ranges(model: nn.Module, items) -> dict[str, tuple[float, float]]:
    """Estimate the input ranges of a :func:`prepare_qat` model without training: run ``items`` (``[(feats
    (1, n_mels, F), length (1,))]`` numpy pairs, e.g. from ``speechtao.export.quantize.calibration_features``)
    with only the :class:`QATConv1d` modules in training mode (BatchNorm statistics stay as they are)."""
    model.eval()
    for m in model.modules():
        if isinstance(m, QATConv1d):
            m.train()
    with torch.no_grad():
        for feats, lengths in items:
            model.forward_features(torch.as_tensor(feats), torch.as_tensor(lengths))
    model.eval()
    return qat_ranges(model)


def strip_qat(model: nn.Module) -> dict[str, tuple[float, float]]:
    """Turn every :class:`QATConv1d` back into a plain ``nn.Conv1d`` (in place); returns their input ranges."""
    ranges = qat_ranges(model)
    for module in list(model.modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, QATConv1d):
                plain = nn.Conv1d(
                    child.in_channels,
                    child.out_channels,
                    child.kernel_size,
                    child.stride,
                    child.padding,
                    child.dilation,
                    child.groups,
                    child.bias is not None,
                    child.padding_mode,
                )
                plain.weight, plain.bias = child.weight, child.bias
                setattr(module, child_name, plain)
    return ranges


def qat_ranges(model: nn.Module) -> dict[str, tuple[float, float]]:
    """``{conv module name: (lo, hi)}`` input ranges of every :class:`QATConv1d` that has seen data."""
    return {
        n: (float(m.act_lo), float(m.act_hi))
        for n, m in model.named_modules()
        if isinstance(m, QATConv1d) and bool(m.observed)
    }


def qat_payload(payload: dict, model: nn.Module) -> dict:
    """``payload`` (from ``model_payload``) with the QAT input ranges added as ``extra["qat"]``."""
    extra = dict(payload.get("extra") or {})
    acts = {m.activations for m in model.modules() if isinstance(m, QATConv1d)}
    extra["qat"] = {
        RANGE_KEY: {n: list(r) for n, r in qat_ranges(model).items()},
        "scheme": f"{'/'.join(sorted(acts)) or 'uint8'} per-tensor inputs, int8 per-channel weights",
    }
    return {**payload, "extra": extra}


def checkpoint_ranges(extra: dict | None) -> dict[str, tuple[float, float]]:
    """The QAT input ranges ``{conv module name: (lo, hi)}`` stored in a checkpoint's ``extra`` ({} if none)."""
    qat = (extra or {}).get("qat") or {}
    if RANGE_KEY in qat:
        return {n: (float(lo), float(hi)) for n, (lo, hi) in qat[RANGE_KEY].items()}
    return {n: (-float(a), float(a)) for n, a in (qat.get(LEGACY_AMAX_KEY) or {}).items()}


def range_overrides_for(loaded: Any) -> Callable[[Any], dict] | None:
    """For :func:`speechtao.export.quantize.quantize_model`'s ``range_overrides``: a function of the optimized
    graph's path mapping ``loaded``'s QAT ranges onto it, or None when ``loaded`` is not a QAT checkpoint."""
    ranges = checkpoint_ranges(getattr(loaded, "extra", None))
    if not ranges:
        return None
    return lambda path: onnx_range_overrides(str(path), loaded.model, ranges)


def onnx_range_overrides(
    onnx_path: str, model: nn.Module, ranges: dict[str, tuple[float, float]]
) -> dict[str, tuple[float, float]]:
    """Map QAT input ranges to the input tensors of the ``Conv`` nodes of the (optimized) ONNX graph.

    Conv nodes are matched to ``nn.Conv1d`` modules by their weights: equal shapes and, row by row, the same
    direction up to sign (the ONNX weights may be BatchNorm-folded, which scales each output channel).
    ``ranges``: ``{conv module name: (lo, hi)}``. Returns ``{tensor name: (lo, hi)}``.
    """
    import onnx
    from onnx import numpy_helper

    g = onnx.load(onnx_path).graph
    inits = {i.name: numpy_helper.to_array(i) for i in g.initializer}

    def direction(w: np.ndarray) -> np.ndarray:
        rows = np.abs(w.reshape(w.shape[0], -1)).astype(np.float64)
        return rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-30)

    modules = {n: m for n, m in model.named_modules() if isinstance(m, nn.Conv1d) and n in ranges}
    by_shape: dict[tuple, list[tuple[str, np.ndarray]]] = {}
    for n, m in modules.items():
        w = m.weight.detach().cpu().numpy()
        by_shape.setdefault(w.shape, []).append((n, direction(w)))
    out: dict[str, tuple[float, float]] = {}
    for node in g.node:
        if node.op_type != "Conv" or node.input[1] not in inits:
            continue
        w = inits[node.input[1]]
        d = direction(w)
        for i, (n, dm) in enumerate(by_shape.get(w.shape, [])):
            if np.allclose(d, dm, atol=1e-4):
                out[node.input[0]] = (float(ranges[n][0]), float(ranges[n][1]))
                by_shape[w.shape].pop(i)
                break
    return out


def attach_qat(task: Any, momentum: float = 0.01, ranges: dict | None = None) -> list[str]:
    """Make a training task (``speechtao.asr.train.ASRTask``) quantization-aware: :func:`prepare_qat` on its
    model, and its checkpoints (saved through ``task.payload()``) carry the ranges. Returns the QAT conv names."""
    names = prepare_qat(task.model, momentum, ranges)
    inner_payload = task.payload

    def payload() -> dict:
        return qat_payload(inner_payload(), task.model)

    task.payload = payload
    return names


def finetune_qat(spec: Any, resume: bool = False) -> dict:
    """The fine-tune recipe (:class:`speechtao.asr.train.ASRFinetuneSpec`) with ``qat.enabled`` forced on.

    Checkpoints are plain speechtao checkpoints with ``extra["qat"]``; export them with ``--format onnx-int8``.
    """
    from dataclasses import replace

    from ..asr import train as asr_train

    return asr_train.run(replace(spec, qat=replace(spec.qat, enabled=True)), resume=resume)
