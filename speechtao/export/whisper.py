"""ONNX export of a Whisper encoder-decoder (:class:`speechtao.asr.whisper_seq.WhisperSeqModel`): the folder that
:class:`speechtao.asr.whisper_onnx.OnnxSeqModel` runs (its docstring lists the files, inputs and outputs).

- ``encoder.onnx`` is the encoder followed by every decoder layer's cross-attention key/value projections, so a
  30 s window's cross keys/values are computed once; ``decoder.onnx`` takes the self-attention cache of the
  tokens so far (``past_*``, 0 tokens at the start) and returns it grown (``present_*``). One decoder graph serves
  the prompt (L > 1, causal mask) and each next token (L = 1).
- ``int8=True``: the MatMuls of both graphs with a weight initializer get INT8 weights, one scale per output
  channel, activations quantized on the fly (ONNX Runtime's dynamic quantization); attention products and the
  token embedding (a Gather) stay float32. On the 18 Debian recordings (tiny.en, greedy; FP32 WER 6.48%) one
  scale per tensor gave 9.26% WER, one per output channel 5.56%.
- The export is checked: ONNX Runtime and PyTorch on the same window (a synthetic sweep of tones and noise)
  must give prompt logits within :data:`MAX_LOGIT_DIFF` (FP32) and the same greedy tokens for the first steps.

Exporter: TorchScript's (``dynamo=False``) at opset 18, as :mod:`speechtao.export.onnx_export`.

Usage::

    export_whisper_seq(load_seq_model("tiny.en"), "exports/tiny_en", WhisperExportOptions(int8=True))
    model = OnnxSeqModel("exports/tiny_en")            # then speechtao.asr.whisper_seq.transcribe(model, audio)
"""

from __future__ import annotations

import json
import logging
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .. import __version__
from ..asr.whisper_onnx import (
    DECODER_FILE,
    ENCODER_FILE,
    LOGITS,
    MEL,
    META_FILE,
    TOKENIZER_FILE,
    TOKENS,
    OnnxSeqModel,
    cross_names,
    past_names,
)
from ..asr.whisper_seq import N_FRAMES, DecodeOptions, WhisperSeqModel, decode_window
from .onnx_export import OPSET, ExportCheckError

MAX_LOGIT_DIFF = 2e-2  # FP32 ORT vs PyTorch, prompt logits (Whisper's logits span ~+-30)
CHECK_STEPS = 8  # greedy tokens compared in the check


@dataclass(frozen=True)
class WhisperExportOptions:
    int8: bool = False  # MatMul weights INT8 (dynamic quantization of activations)
    check: bool = True  # compare ONNX Runtime with PyTorch after writing (FP32: logits; INT8: reported only)


class EncoderGraph(nn.Module):
    """forward(mel (B, n_mels, 3000)) -> (cross_k_0, cross_v_0, ...) each (B, h, 1500, hd)."""

    def __init__(self, model: WhisperSeqModel):
        super().__init__()
        self.encoder, self.layers = model.encoder, model.decoder.layers

    def forward(self, mel: torch.Tensor):
        lengths = torch.ones_like(mel[:, 0, 0], dtype=torch.int64) * mel.shape[2]
        xa = self.encoder(mel, lengths)[0]  # (B, 1500, D)
        out = []
        for layer in self.layers:
            out += list(layer.cross.memory(xa))
        return tuple(out)


class DecoderGraph(nn.Module):
    """forward(tokens (B, L), past_k_0, past_v_0, ..., cross_k_0, cross_v_0, ...) -> (logits (B, L, V),
    present_k_0, present_v_0, ...). The same arithmetic as :class:`~speechtao.asr.whisper_seq.WhisperDecoder`,
    written without data-dependent Python branches so that one trace serves every L and past length S."""

    def __init__(self, model: WhisperSeqModel):
        super().__init__()
        self.dec = model.decoder

    @staticmethod
    def _attend(q, k, v, allowed=None):
        scores = torch.matmul(q, k.transpose(-1, -2)) * (q.shape[-1] ** -0.5)  # (B, h, L, S)
        if allowed is not None:
            scores = scores.masked_fill(~allowed, float("-inf"))
        return torch.matmul(scores.softmax(-1), v)  # (B, h, L, hd)

    def forward(self, tokens: torch.Tensor, *kv: torch.Tensor):
        dec = self.dec
        n = len(dec.layers)
        past, cross = kv[: 2 * n], kv[2 * n :]
        B, L = tokens.shape
        S = past[0].shape[2]
        pos = torch.arange(L, device=tokens.device) + S  # (L,) positions of the new tokens
        x = dec.embed(tokens) + F.embedding(pos, dec.positions)  # (B, L, D)
        D = x.shape[2]
        allowed = torch.arange(S + L, device=tokens.device)[None, :] <= pos[:, None]  # (L, S + L): causal
        presents = []
        for i, layer in enumerate(dec.layers):
            h = layer.attn.h
            q, k, v = layer.attn.qkv(layer.attn_ln(x)).reshape(B, L, 3, h, D // h).permute(2, 0, 3, 1, 4)
            k, v = torch.cat([past[2 * i], k], dim=2), torch.cat([past[2 * i + 1], v], dim=2)  # (B, h, S + L, hd)
            presents += [k, v]
            x = x + layer.attn.out(self._attend(q, k, v, allowed).transpose(1, 2).reshape(B, L, D))
            q = layer.cross.q(layer.cross_ln(x)).reshape(B, L, h, D // h).transpose(1, 2)
            x = x + layer.cross.out(self._attend(q, cross[2 * i], cross[2 * i + 1]).transpose(1, 2).reshape(B, L, D))
            x = x + layer.mlp(layer.mlp_ln(x))
        return (dec.proj(dec.ln(x)), *presents)


def _export(module: nn.Module, args: tuple, path: Path, inputs: list[str], outputs: list[str], axes: dict) -> None:
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer warnings
        torch.onnx.export(
            module,
            args,
            str(path),
            input_names=inputs,
            output_names=outputs,
            dynamic_axes=axes,
            opset_version=OPSET,
            dynamo=False,
        )


def _export_fp32(model: WhisperSeqModel, folder: Path) -> None:
    dec, n = model.decoder, len(model.decoder.layers)
    h, hd = dec.cfg.n_heads, dec.cfg.d_model // dec.cfg.n_heads
    mel = torch.zeros(1, model.encoder.cfg.n_mels, N_FRAMES)
    cross_out = cross_names(n)
    _export(
        EncoderGraph(model).eval(),
        (mel,),
        folder / ENCODER_FILE,
        [MEL],
        cross_out,
        {MEL: {0: "batch"}, **{c: {0: "batch"} for c in cross_out}},
    )
    g = torch.Generator().manual_seed(0)
    past = [torch.randn(1, h, 2, hd, generator=g) for _ in range(2 * n)]
    cross = [torch.randn(1, h, N_FRAMES // 2, hd, generator=g) for _ in range(2 * n)]
    tokens = torch.tensor([[model.tokenizer.sot, 440, 220]])
    axes = {TOKENS: {0: "batch", 1: "new"}, LOGITS: {0: "batch", 1: "new"}}
    axes.update({p: {0: "batch", 2: "past"} for p in past_names(n)})
    axes.update({p: {0: "batch", 2: "total"} for p in past_names(n, "present")})
    axes.update({c: {0: "batch", 2: "frames"} for c in cross_out})
    _export(
        DecoderGraph(model).eval(),
        (tokens, *past, *cross),
        folder / DECODER_FILE,
        [TOKENS, *past_names(n), *cross_out],
        [LOGITS, *past_names(n, "present")],
        axes,
    )


def _quantize(src: Path, dst: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # its advice to pre-process (shape inference) is for static quantization
    try:
        quantize_dynamic(
            str(src), str(dst), op_types_to_quantize=["MatMul"], weight_type=QuantType.QInt8, per_channel=True
        )
    finally:
        root.setLevel(level)


def _check_audio(seconds: float = 4.0, seed: int = 0) -> np.ndarray:
    """A sweep of tones in noise: speech-like energy in every mel band, no file needed."""
    t = np.arange(int(seconds * 16000)) / 16000
    rng = np.random.default_rng(seed)
    tone = np.sin(2 * np.pi * (200 + 600 * t) * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t))
    return (0.3 * tone + 0.02 * rng.standard_normal(len(t))).astype(np.float32)


@dataclass(frozen=True)
class SeqCheck:
    max_logit_diff: float  # prompt logits, ORT vs PyTorch
    same_tokens: bool  # greedy tokens of the first CHECK_STEPS steps equal


def compare_seq(onnx_model: OnnxSeqModel, model: WhisperSeqModel, audio: np.ndarray) -> SeqCheck:
    """ORT and PyTorch on one window of ``audio``: prompt logits and the first greedy tokens."""
    mel = model.log_mel(audio)[:, :N_FRAMES]
    prompt = torch.tensor([model.tokenizer.prompt("en", timestamps=False)])
    with torch.no_grad():
        ref = model.decoder(prompt, model.decoder.new_cache(model.encode_mel(mel)))
    got = onnx_model.decoder(prompt, onnx_model.decoder.new_cache(onnx_model.encode_mel(mel)))
    diff = float((got - ref).abs().max())
    opts = DecodeOptions(beam_size=1, max_tokens=CHECK_STEPS)
    same = decode_window(model, model.encode_mel(mel), opts).tokens == (
        decode_window(onnx_model, onnx_model.encode_mel(mel), opts).tokens
    )
    return SeqCheck(diff, same)


def export_whisper_seq(
    model: WhisperSeqModel, out: str | Path, options: WhisperExportOptions = WhisperExportOptions(), source: str = ""
) -> tuple[Path, SeqCheck | None]:
    """Write ``model`` into the folder ``out`` (see the module docstring); returns (folder, check or None).

    Raises:
        ExportCheckError: FP32 ONNX Runtime disagrees with PyTorch (logits or greedy tokens).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model = model.eval()
    dec = model.decoder
    with tempfile.TemporaryDirectory(prefix="speechtao-whisper-export-") as tmp:
        fp32 = Path(tmp) if options.int8 else out
        _export_fp32(model, fp32)
        if options.int8:
            _quantize(fp32 / ENCODER_FILE, out / ENCODER_FILE)
            _quantize(fp32 / DECODER_FILE, out / DECODER_FILE)
    tk = model.tokenizer
    (out / TOKENIZER_FILE).write_text(tk.tk.to_str(), encoding="utf-8")
    meta = {
        "name": model.name,
        "source": source,
        "precision": "int8" if options.int8 else "fp32",
        "n_mels": model.encoder.cfg.n_mels,
        "d_model": dec.cfg.d_model,
        "decoder_layers": dec.cfg.n_layers,
        "decoder_heads": dec.cfg.n_heads,
        "ffn_dim": dec.cfg.ffn_dim,
        "n_ctx": dec.cfg.n_ctx,
        "n_vocab": dec.cfg.n_vocab,
        "multilingual": bool(tk.multilingual),
        "tokenizer_config": {"suppress_ids": list(tk.suppress), "suppress_ids_begin": list(tk.suppress_begin)},
        "opset": OPSET,
        "speechtao_version": __version__,
    }
    (out / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")
    if not options.check:
        return out, None
    result = compare_seq(OnnxSeqModel(out), model, _check_audio())
    if not options.int8 and (result.max_logit_diff > MAX_LOGIT_DIFF or not result.same_tokens):
        for name in (ENCODER_FILE, DECODER_FILE):  # no half-trusted model left behind
            (out / name).unlink(missing_ok=True)
        raise ExportCheckError(
            f"{out}: ONNX Runtime disagrees with PyTorch (max |logit diff| {result.max_logit_diff:.3g} > "
            f"{MAX_LOGIT_DIFF}, or other greedy tokens: {not result.same_tokens}); please report this as a bug"
        )
    return out, result


__all__ = ["WhisperExportOptions", "export_whisper_seq", "compare_seq", "SeqCheck", "EncoderGraph", "DecoderGraph"]
