"""A Whisper encoder-decoder in ONNX Runtime: the folder ``speechtao asr export --format whisper-onnx`` (or
``whisper-onnx-int8``) writes (:mod:`speechtao.export.whisper`).

The folder::

    encoder.onnx      mel (B, n_mels, 3000) float32 -> cross_k_i, cross_v_i (B, h, 1500, hd) for each decoder
                      layer i: the encoder and every layer's cross-attention keys/values, computed once a window
    decoder.onnx      tokens (B, L) int64, past_k_i, past_v_i (B, h, S, hd) (S = tokens so far, 0 at the start),
                      cross_k_i, cross_v_i -> logits (B, L, V), present_k_i, present_v_i (B, h, S + L, hd)
    tokenizer.json    Whisper's tokenizer
    whisper_seq.json  name, sizes, suppressed tokens, precision ("fp32" or "int8": MatMul weights INT8)

:class:`OnnxSeqModel` has what :func:`speechtao.asr.whisper_seq.transcribe` and ``decode_window`` use of a
:class:`~speechtao.asr.whisper_seq.WhisperSeqModel` (``log_mel``, ``encode_mel``, ``decoder``, ``tokenizer``), so
greedy and beam search, the timestamp rules and 30 s windows are the same code for both runtimes; the decoder's
cache holds the past keys/values ORT returned. The log-mels are computed in PyTorch, as for the PyTorch model.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from ..errors import CheckpointError, InputError, MissingDependencyError
from .whisper import WhisperFeatureSpec, WhisperLogMel
from .whisper_seq import WhisperDecoder, WhisperDecoderConfig, WhisperSeqModel, WhisperTokenizer

META_FILE = "whisper_seq.json"
ENCODER_FILE = "encoder.onnx"
DECODER_FILE = "decoder.onnx"
TOKENIZER_FILE = "tokenizer.json"
MEL = "mel"
TOKENS = "tokens"
LOGITS = "logits"


def cross_names(n_layers: int) -> list[str]:
    """Encoder outputs = the decoder's cross inputs: ``cross_k_0, cross_v_0, cross_k_1, ...``."""
    return [f"cross_{kv}_{i}" for i in range(n_layers) for kv in "kv"]


def past_names(n_layers: int, prefix: str = "past") -> list[str]:
    """``past_k_0, past_v_0, ...`` (decoder inputs) or, with prefix ``present``, its outputs."""
    return [f"{prefix}_{kv}_{i}" for i in range(n_layers) for kv in "kv"]


def is_seq_export(path: str | Path) -> bool:
    """True for a folder :mod:`speechtao.export.whisper` wrote."""
    return Path(path).is_dir() and (Path(path) / META_FILE).is_file()


def _session(path: Path, threads: int):
    try:
        import onnxruntime as ort
    except ImportError:  # pragma: no cover - a core dependency
        raise MissingDependencyError("ONNX models need onnxruntime: pip install onnxruntime") from None
    if not path.is_file():
        raise CheckpointError(f"{path}: missing from the export folder (export the model again)")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


class OrtDecoder:
    """The decoder session behind :class:`~speechtao.asr.whisper_seq.WhisperDecoder`'s interface: ``new_cache``,
    ``cache = {"offset", "self": [(k, v)] per layer, "cross": [(k, v)] per layer}``, ``__call__(tokens (B, L),
    cache) -> logits (B, L, V)`` (cache updated in place), ``reorder``."""

    reorder = staticmethod(WhisperDecoder.reorder)

    def __init__(self, session, cfg: WhisperDecoderConfig):
        self.session, self.cfg = session, cfg  # cfg: the sizes, as WhisperDecoder.cfg (callers read n_vocab)
        self.n_layers, self.n_heads, self.head_dim, self.n_ctx = (
            cfg.n_layers,
            cfg.n_heads,
            cfg.d_model // cfg.n_heads,
            cfg.n_ctx,
        )
        self.output_names = [LOGITS, *past_names(cfg.n_layers, "present")]

    def new_cache(self, cross: list[tuple[torch.Tensor, torch.Tensor]]) -> dict:
        """``cross``: what :meth:`OnnxSeqModel.encode_mel` returned."""
        empty = torch.zeros(cross[0][0].shape[0], self.n_heads, 0, self.head_dim)
        return {"offset": 0, "self": [(empty, empty)] * self.n_layers, "cross": list(cross)}

    def __call__(self, tokens: torch.Tensor, cache: dict) -> torch.Tensor:
        if cache["offset"] + tokens.shape[1] > self.n_ctx:
            raise InputError(f"decoder input of {cache['offset'] + tokens.shape[1]} tokens exceeds n_ctx {self.n_ctx}")
        # beam search widens the cross keys/values with expand(): make them contiguous once, not every step
        cache["cross"] = [(k.contiguous(), v.contiguous()) for k, v in cache["cross"]]
        feeds = {TOKENS: tokens.to(torch.int64).numpy()}
        for i in range(self.n_layers):
            feeds[f"past_k_{i}"], feeds[f"past_v_{i}"] = (t.contiguous().numpy() for t in cache["self"][i])
            feeds[f"cross_k_{i}"], feeds[f"cross_v_{i}"] = (t.numpy() for t in cache["cross"][i])
        outs = self.session.run(self.output_names, feeds)
        cache["self"] = [
            (torch.from_numpy(outs[1 + 2 * i]), torch.from_numpy(outs[2 + 2 * i])) for i in range(self.n_layers)
        ]
        cache["offset"] += tokens.shape[1]
        return torch.from_numpy(outs[0])


class OnnxSeqModel:
    """An exported Whisper encoder-decoder folder in ONNX Runtime (``threads`` intra-op threads per session)."""

    log_mel = WhisperSeqModel.log_mel  # the same features as the PyTorch model (uses ``self.front``)

    def __init__(self, folder: str | Path, threads: int = 1):
        folder = Path(folder)
        if not is_seq_export(folder):
            raise CheckpointError(
                f"{folder}: not a Whisper ONNX export (no {META_FILE}); write one with `speechtao asr export "
                "--model whisper:tiny.en --format whisper-onnx --out DIR`"
            )
        meta = json.loads((folder / META_FILE).read_text())
        self.meta = meta
        self.name = str(meta["name"])
        self.precision = str(meta["precision"])
        self.tokenizer = WhisperTokenizer(folder / TOKENIZER_FILE, meta["tokenizer_config"], bool(meta["multilingual"]))
        self.front = WhisperLogMel(WhisperFeatureSpec(n_mels=int(meta["n_mels"])))
        self.encoder = _session(folder / ENCODER_FILE, threads)
        cfg = WhisperDecoderConfig(
            n_vocab=int(meta["n_vocab"]),
            n_ctx=int(meta["n_ctx"]),
            d_model=int(meta["d_model"]),
            n_heads=int(meta["decoder_heads"]),
            n_layers=int(meta["decoder_layers"]),
            ffn_dim=int(meta["ffn_dim"]),
        )
        self.decoder = OrtDecoder(_session(folder / DECODER_FILE, threads), cfg)
        self._cross = cross_names(cfg.n_layers)

    def encode_mel(self, mel: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """mel (n_mels, 3000) -> each decoder layer's cross-attention (k, v), each (1, h, 1500, hd)."""
        outs = self.encoder.run(self._cross, {MEL: np.ascontiguousarray(mel[None].numpy(), dtype=np.float32)})
        return [(torch.from_numpy(outs[2 * i]), torch.from_numpy(outs[2 * i + 1])) for i in range(len(outs) // 2)]


__all__ = ["OnnxSeqModel", "OrtDecoder", "is_seq_export", "cross_names", "past_names", "META_FILE"]
