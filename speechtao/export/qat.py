"""Quantization-aware fine-tuning: simulate ORT's INT8 convolutions in PyTorch, then carry the ranges into the
QDQ export.

What is simulated (the same scheme :mod:`speechtao.export.quantize` produces with ONNX Runtime)::

    conv input   per-tensor symmetric INT8, scale = amax / 127, amax = moving average of max|x| per batch
    conv weight  per-output-channel symmetric INT8, scale_c = max|W_c| / 127

Gradients pass the rounding straight through (``torch.fake_quantize_*``). BatchNorm is not folded here: ORT folds
it into the pointwise conv before quantizing, which multiplies each output channel by a constant, and a
per-channel symmetric scale absorbs that constant, so the INT8 weights come out the same.

The learned input ranges are saved in the checkpoint's ``extra["qat"]`` (``{"act_amax": {module name: amax}}``)
and :func:`onnx_range_overrides` maps them to the input tensors of the matching ``Conv`` nodes of the optimized
ONNX graph, where they replace the calibrated ranges.

Usage::

    names = prepare_qat(model)          # swaps every nn.Conv1d for QATConv1d (same parameters)
    ... train ...
    payload = qat_payload(model_payload(model, tok), model)   # + extra["qat"]: the input ranges
    # or, end to end with the fine-tune recipe:
    metrics = finetune_qat(spec)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

QMAX = 127  # symmetric INT8 uses [-127, 127]
AMAX_KEY = "act_amax"


class QATConv1d(nn.Conv1d):
    """An ``nn.Conv1d`` whose input and weight pass through INT8 fake quantization.

    forward(x (B, C_in, T)) -> (B, C_out, T'). In training mode the input range is a moving average
    (``momentum``) of ``max|x|``; in eval mode the stored range is used as it is.
    """

    def __init__(self, conv: nn.Conv1d, momentum: float = 0.01):
        super().__init__(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                         conv.dilation, conv.groups, conv.bias is not None, conv.padding_mode)
        self.weight = conv.weight  # the same Parameter objects: an optimizer built before still updates them
        self.bias = conv.bias
        self.momentum = momentum
        # not persistent: the state dict stays that of a plain model (resume and load_model work unchanged)
        self.register_buffer(AMAX_KEY, torch.zeros(()), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        amax = getattr(self, AMAX_KEY)
        if self.training:
            with torch.no_grad():
                cur = x.detach().abs().max().float()
                amax.copy_(cur if amax <= 0 else (1 - self.momentum) * amax + self.momentum * cur)
        if amax > 0:
            x = torch.fake_quantize_per_tensor_affine(x, float(amax) / QMAX, 0, -QMAX, QMAX)
        w = self.weight
        scale = (w.detach().abs().flatten(1).amax(dim=1) / QMAX).clamp_min(1e-12).float()
        w = torch.fake_quantize_per_channel_affine(w, scale, torch.zeros_like(scale, dtype=torch.int32), 0,
                                                   -QMAX, QMAX)
        return self._conv_forward(x, w, self.bias)


def prepare_qat(model: nn.Module, momentum: float = 0.01, ranges: dict[str, float] | None = None) -> list[str]:
    """Replace every ``nn.Conv1d`` in ``model`` by a :class:`QATConv1d` in place; returns their module names.

    ``ranges`` (from a previous QAT checkpoint's ``extra["qat"]["act_amax"]``) restores the input ranges.
    """
    names = []
    for name, module in list(model.named_modules()):
        for child_name, child in list(module.named_children()):
            if type(child) is nn.Conv1d:
                full = f"{name}.{child_name}" if name else child_name
                q = QATConv1d(child, momentum)
                if ranges and full in ranges:
                    getattr(q, AMAX_KEY).fill_(float(ranges[full]))
                setattr(module, child_name, q)
                names.append(full)
    return names


def observe_ranges(model: nn.Module, items) -> dict[str, float]:
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


def strip_qat(model: nn.Module) -> dict[str, float]:
    """Turn every :class:`QATConv1d` back into a plain ``nn.Conv1d`` (in place); returns their input ranges."""
    ranges = qat_ranges(model)
    for name, module in list(model.named_modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, QATConv1d):
                plain = nn.Conv1d(child.in_channels, child.out_channels, child.kernel_size, child.stride,
                                  child.padding, child.dilation, child.groups, child.bias is not None,
                                  child.padding_mode)
                plain.weight, plain.bias = child.weight, child.bias
                setattr(module, child_name, plain)
    return ranges


def qat_ranges(model: nn.Module) -> dict[str, float]:
    """``{conv module name: input amax}`` of every :class:`QATConv1d` that has seen data."""
    return {n: float(getattr(m, AMAX_KEY)) for n, m in model.named_modules()
            if isinstance(m, QATConv1d) and float(getattr(m, AMAX_KEY)) > 0}


def qat_payload(payload: dict, model: nn.Module) -> dict:
    """``payload`` (from ``model_payload``) with the QAT input ranges added as ``extra["qat"]``."""
    extra = dict(payload.get("extra") or {})
    extra["qat"] = {"act_amax": qat_ranges(model), "scheme": "int8 symmetric: per-tensor inputs, per-channel weights"}
    return {**payload, "extra": extra}


def onnx_range_overrides(onnx_path: str, model: nn.Module, ranges: dict[str, float]) -> dict[str, tuple[float, float]]:
    """Map QAT input ranges to the input tensors of the ``Conv`` nodes of the (optimized) ONNX graph.

    Conv nodes are matched to ``nn.Conv1d`` modules by their weights: equal shapes and, row by row, the same
    direction up to sign (the ONNX weights may be BatchNorm-folded, which scales each output channel).
    Returns ``{tensor name: (-amax, amax)}``.
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
                out[node.input[0]] = (-ranges[n], ranges[n])
                by_shape[w.shape].pop(i)
                break
    return out


def finetune_qat(spec: Any, resume: bool = False) -> dict:
    """The fine-tune recipe (:class:`speechtao.asr.train.ASRFinetuneSpec`) with fake quantization in every conv.

    Checkpoints are plain speechtao checkpoints with ``extra["qat"]``; export them with ``--format onnx-int8``.
    """
    import time

    from ..asr import train as asr_train
    from ..train import ddp

    ctx = ddp.init_distributed(spec.trainer.device)
    try:
        start = time.perf_counter()
        trainer = asr_train.build(spec, resume=resume, ctx=ctx)
        task = trainer.task
        prepare_qat(task.model)  # on resume the ranges are estimated again from the first batches
        inner_payload = task.payload

        def payload() -> dict:
            return qat_payload(inner_payload(), task.model)

        task.payload = payload  # the trainer saves through task.payload()
        metrics = trainer.fit(resume=resume)
        metrics["wall_s"] = round(time.perf_counter() - start, 3)
        metrics["qat_convs"] = len(qat_ranges(task.model))
        return metrics
    finally:
        ddp.shutdown_distributed()
