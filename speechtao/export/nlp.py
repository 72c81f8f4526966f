"""ONNX export of the NLP models (FP32 and INT8), checked against PyTorch.

Export folder (:func:`export_onnx`): ``model.onnx`` (FP32) and optionally ``model.int8.onnx`` (ONNX Runtime
dynamic quantization of the MatMul weights to INT8 per output channel; activations quantized per call), the
tokenizer files and ``speechtao.json``; each ONNX file carries the labels, net config and task in its
``metadata_props``, so :func:`speechtao.nlp.model_io.load_model` reads an ``.onnx`` file like a model folder.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .. import __version__
from ..errors import InputError, SpeechtaoError
from ..nlp.encoder import structure
from ..nlp.heads import ATTENTION_MASK, INPUT_NAMES, net_inputs, pad_batch
from ..nlp.model_io import FORMAT, ONNX_FILE, ONNX_INT8_FILE, SUMMARY_FILE, NLPModel, OnnxNet

OPSET = 18

MAX_ABS_DIFF = 1e-3  # ORT FP32 vs PyTorch logits


class ExportCheckError(SpeechtaoError):
    """The exported graph does not reproduce the PyTorch model (a bug, not bad input)."""


class _Exported(nn.Module):
    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, input_ids, attention_mask, token_type_ids):
        return self.net(input_ids, attention_mask, token_type_ids)


def example_batch(tokenizer: Any, texts: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
    """A padded batch of real text (rows of different lengths, so the graph keeps its masking path)."""
    texts = list(
        texts
        or [
            "the quick brown fox jumps over the lazy dog and runs into the forest",
            "hello there",
            "what time is it in new york city right now",
        ]
    )
    enc = [tokenizer(t, add_special_tokens=True)["input_ids"] for t in texts]
    return pad_batch(enc, tokenizer.pad_token_id)


def onnx_metadata(model: NLPModel, extra: dict | None = None) -> dict[str, str]:
    meta = {
        "format": FORMAT,
        "task": model.task,
        "labels": json.dumps(model.labels),
        "net": json.dumps(model.net_config),
        "max_length": str(model.max_length),
        "spec": json.dumps(model.spec, default=str),
        "speechtao_version": __version__,
        "input_names": json.dumps(INPUT_NAMES),
        "output_names": json.dumps(list(model.net.output_names)),
        "model_author": "speechtao",
        "structure": json.dumps(structure(model.net.encoder)),
        "extra": json.dumps(model.extra, default=str),
    }
    meta.update({k: str(v) for k, v in (extra or {}).items()})
    return meta


def _set_metadata(path: Path, meta: dict[str, str]) -> None:
    import onnx

    m = onnx.load(str(path))
    del m.metadata_props[:]
    for k, v in meta.items():
        e = m.metadata_props.add()
        e.key, e.value = k, v
    onnx.save(m, str(path))


def compare_outputs(path: str | Path, net: nn.Module, batch: dict) -> tuple[float, float]:
    """``(max |ORT - PyTorch| over valid positions, argmax agreement)`` of every output on ``batch``."""
    onnx_net = OnnxNet(path, threads=1)
    net.eval()
    with torch.no_grad():
        ref = net(*net_inputs(batch))
    got = onnx_net(*net_inputs(batch))
    mask = batch[ATTENTION_MASK].bool()
    diff, same, total = 0.0, 0, 0
    for r, g in zip(ref, got):
        if r.shape != g.shape:
            return float("inf"), 0.0
        rr, gg = (r[mask], g[mask]) if r.dim() == 3 else (r, g)  # (B, T, C) -> valid (N, C)
        diff = max(diff, float((rr - gg).abs().max()))
        same += int((rr.argmax(-1) == gg.argmax(-1)).sum())
        total += rr.shape[0]
    return diff, same / max(total, 1)


@dataclass
class ExportResult:
    fp32: Path
    fp32_max_diff: float
    int8: Path | None = None
    int8_max_diff: float | None = None
    int8_agreement: float | None = None


def export_onnx(
    model: NLPModel, out_dir: str | Path, int8: bool = False, check: bool = True, tolerance: float = MAX_ABS_DIFF
) -> ExportResult:
    """Export ``model`` into ``out_dir`` (see the module docstring). The FP32 graph is checked against
    PyTorch on a padded batch of real text; a max |logit diff| above ``tolerance`` removes it and raises
    :class:`ExportCheckError`. INT8 (dynamic quantization) reports its difference and argmax agreement."""
    import warnings

    if model.is_onnx:
        raise InputError(f"{model.source}: is already ONNX; export from the model folder (model.pt)")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    fp32 = out / ONNX_FILE
    net = model.net.eval()
    batch = example_batch(model.tokenizer)
    axes = {name: {0: "batch", 1: "tokens"} for name in INPUT_NAMES}
    for name in net.output_names:
        axes[name] = {0: "batch", 1: "tokens"} if model.net_config["kind"] == "token" else {0: "batch"}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice and tracer notes
        # The wrapper must be in eval mode: the exporter restores the wrapper's mode on every submodule afterwards.
        torch.onnx.export(
            _Exported(net).eval(),
            net_inputs(batch),
            str(fp32),
            input_names=list(INPUT_NAMES),
            output_names=list(net.output_names),
            dynamic_axes=axes,
            opset_version=OPSET,
            do_constant_folding=True,
            dynamo=False,
        )
    _set_metadata(fp32, onnx_metadata(model, {"precision": "fp32"}))
    model.tokenizer.save_pretrained(str(out))
    result = ExportResult(fp32, 0.0)
    check_batch = example_batch(
        model.tokenizer,
        [
            "a different batch",
            "of other lengths than the traced one is used for the check so that dynamic axes are exercised",
            "ok",
        ],
    )
    if check:
        diff, _ = compare_outputs(fp32, net, check_batch)
        result.fp32_max_diff = diff
        if not diff <= tolerance:
            fp32.unlink(missing_ok=True)
            raise ExportCheckError(
                f"{fp32}: ONNX Runtime output differs from PyTorch by {diff:.3g} > {tolerance:g}; "
                "the file was removed. Report this with torch, transformers and onnxruntime "
                "versions (speechtao env)"
            )
    if int8:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        q = out / ONNX_INT8_FILE
        import logging

        root = logging.getLogger()
        level = root.level
        root.setLevel(logging.ERROR)  # ORT logs a pre-processing suggestion on the root logger
        try:
            # MatMul only, per-channel weight scales: measured on MiniLM punctuation, this kept capitalization F1
            # within 0.4 points of FP32 where ORT's defaults (also Gather/Attention, per-tensor) lost 1.5 points,
            # and it ran as fast.
            quantize_dynamic(
                str(fp32), str(q), weight_type=QuantType.QInt8, per_channel=True, op_types_to_quantize=["MatMul"]
            )
        finally:
            root.setLevel(level)
        _set_metadata(
            q,
            onnx_metadata(
                model,
                {
                    "precision": "int8",
                    "quantization": "onnxruntime dynamic: MatMul weights int8 per-channel, activation ranges per call",
                },
            ),
        )
        diff, agree = compare_outputs(q, net, check_batch)
        result.int8, result.int8_max_diff, result.int8_agreement = q, diff, agree
    summary = {
        "task": model.task,
        "labels": model.labels,
        "max_length": model.max_length,
        "inputs": list(INPUT_NAMES),
        "outputs": list(net.output_names),
        "fp32": fp32.name,
        "fp32_max_abs_diff": result.fp32_max_diff,
        "int8": result.int8.name if result.int8 else None,
        "int8_max_abs_diff": result.int8_max_diff,
        "int8_argmax_agreement": result.int8_agreement,
        "structure": structure(net.encoder),
        "speechtao_version": __version__,
    }
    (out / SUMMARY_FILE).write_text(json.dumps(summary, indent=2) + "\n")
    return result
