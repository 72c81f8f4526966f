"""ONNX export of a CTC model: log-mel features in, log-probabilities out, checked against PyTorch.

The graph (the same interface as NeMo's ``export()`` of a masked-conv CTC model, so NeMo tools and sherpa-onnx
read it)::

    audio_signal     float32 (B, n_mels, T)     log-mel features (speechtao.features.AudioToMelSpectrogram;
                                                Whisper-encoder models: speechtao.asr.whisper.WhisperLogMel)
    length           int64   (B,)               valid frames per utterance
 -> logprobs         float32 (B, T', V + 1)     log-softmax, blank last; T' = ceil(T / subsampling_factor)
    encoded_lengths  int64   (B,)               valid output frames

Batch and time are dynamic. The feature front end stays outside the graph (the serving code computes the
features, as NeMo and sherpa-onnx do).

``metadata_props`` inside the file: ``model_type``, ``speechtao_version``, ``vocabulary`` (JSON list, blank not
included), ``sample_rate``, ``features`` (JSON of every :class:`~speechtao.features.FeatureSpec` field, or of
the :class:`~speechtao.asr.whisper.WhisperFeatureSpec` when ``family`` is ``whisper``: the server picks the
front end by ``family``), ``subsampling_factor``, ``spec`` (the resolved recipe, JSON), ``family``,
``model_config`` (JSON), and the keys sherpa-onnx reads for NeMo CTC models: ``vocab_size`` (classes including the blank), ``subsampling_factor``,
``normalize_type``, ``model_author``, ``version``. A ``tokens.txt`` (``<token> <id>`` lines, ``<blk>`` last) is
written beside the file.

Exporter: the TorchScript-based exporter (``dynamo=False``) at opset 18. Both exporters of torch 2.13 gave
graphs within 5e-7 of PyTorch on QuartzNet and CitriNet; the TorchScript one took ~4 s against 35-140 s for the
dynamo one on a 2-core machine, so it is the one used (its deprecation warning is silenced here).

Usage::

    loaded = load_model("model.ckpt")
    path = export_onnx(loaded, "model.onnx")       # raises ExportCheckError when ORT and PyTorch disagree
    meta = read_metadata(path)                     # {"vocab_size": "29", ...}
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .. import __version__
from ..errors import SpeechtaoError

INPUT_FEATURES = "audio_signal"
INPUT_LENGTH = "length"
OUTPUT_LOGPROBS = "logprobs"
OUTPUT_LENGTHS = "encoded_lengths"
INPUT_NAMES = (INPUT_FEATURES, INPUT_LENGTH)
OUTPUT_NAMES = (OUTPUT_LOGPROBS, OUTPUT_LENGTHS)
OPSET = 18
MAX_ABS_DIFF = 1e-4  # ORT vs PyTorch log-probabilities, FP32
# Whisper-encoder models: six pre-norm transformer layers whose residual stream reaches ~500 carry more float32
# rounding; on random features the shipped SentencePiece starter differs by 1.5e-4 (the character one by 7e-5)
# between two correct float32 programs (PyTorch and ORT, 1 or 2 threads alike).
MAX_ABS_DIFF_WHISPER = 1e-3
# Log-probabilities below this (p < 1e-6) are compared as equal to it: their float32 rounding grows with the
# logits' scale (an over-confident fine-tuned model has logits ~100 and log-probs ~-100, where two correct
# float32 programs differ by ~1e-3), and no decoding reads them.
LOGPROB_FLOOR = float(np.log(1e-6))


class ExportCheckError(SpeechtaoError):
    """The exported graph does not reproduce the PyTorch model (CLI exit 1: a bug, not bad input)."""


class FeaturesToLogProbs(nn.Module):
    """The exported function: ``forward(audio_signal (B, n_mels, T), length (B,)) -> (logprobs (B, T', V+1),
    encoded_lengths (B,))``, i.e. :meth:`EncDecCTCModel.forward_features`."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, audio_signal: torch.Tensor, length: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.model.forward_features(audio_signal, length)


@dataclass(frozen=True)
class CheckResult:
    max_abs_diff: float  # over the valid frames of every utterance
    lengths_equal: bool


def onnx_metadata(loaded: Any, spec: Any = None) -> dict[str, str]:
    """The ``metadata_props`` written into the file (all values are strings, as ONNX requires)."""
    from ..spec import spec_to_dict

    model, tok, config = loaded.model, loaded.tokenizer, loaded.config
    features = spec_to_dict(config.preprocessor)
    spec = spec if spec is not None else loaded.spec
    if spec is not None and not isinstance(spec, dict):
        spec = spec_to_dict(spec)
    return {
        "model_type": "EncDecCTCModelBPE" if type(tok).__name__ == "SentencePieceTokenizer" else "EncDecCTCModel",
        "family": config.family,
        "speechtao_version": __version__,
        "vocabulary": json.dumps(list(tok.vocab), ensure_ascii=False),
        "vocab_size": str(model.vocab_size + 1),  # sherpa-onnx: classes including the blank
        "blank_id": str(model.blank_id),
        "sample_rate": str(config.preprocessor.sample_rate),
        "features": json.dumps(features),
        "normalize_type": config.preprocessor.normalize or "",
        "subsampling_factor": str(model.subsampling_factor),
        "model_config": json.dumps(config.to_dict()),
        "spec": json.dumps(spec),
        "model_author": "speechtao",
        "version": "1",
        "input_names": json.dumps(INPUT_NAMES),
        "output_names": json.dumps(OUTPUT_NAMES),
    }


def read_metadata(path: str | Path) -> dict[str, str]:
    """``metadata_props`` of an ONNX file as a dict."""
    import onnx

    m = onnx.load(str(path), load_external_data=False)
    return {p.key: p.value for p in m.metadata_props}


def set_metadata(path: str | Path, meta: dict[str, str]) -> None:
    """Replace the ``metadata_props`` of the ONNX file at ``path`` with ``meta``."""
    import onnx

    m = onnx.load(str(path))
    del m.metadata_props[:]
    for k, v in meta.items():
        entry = m.metadata_props.add()
        entry.key, entry.value = k, v
    onnx.save(m, str(path))


def write_tokens(path: str | Path, tokenizer: Any) -> Path:
    """sherpa-onnx's ``tokens.txt``: one ``<token> <id>`` line per token, ``<blk>`` last. A space token is ``▁``."""
    lines = [f"{'▁' if t == ' ' else t} {i}" for i, t in enumerate(tokenizer.vocab)]
    lines.append(f"<blk> {tokenizer.vocab_size}")
    p = Path(path)
    p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return p


def example_inputs(
    n_mels: int, frames: tuple[int, ...] = (203, 131), seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """A padded batch of smooth random features, ``(B, n_mels, max(frames))`` and lengths ``(B,)``.

    Per-feature normalized log-mels are roughly zero-mean unit-variance, which this imitates.
    """
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(len(frames), n_mels, max(frames), generator=g)
    x = torch.nn.functional.avg_pool1d(x, 3, stride=1, padding=1) * 1.5  # some time correlation
    lengths = torch.tensor(frames, dtype=torch.int64)
    for b, n in enumerate(frames):
        x[b, :, n:] = 0.0
    return x, lengths


def ort_session(path: str | Path, threads: int = 1):
    """An onnxruntime CPU session with ``threads`` intra-op threads."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def compare_with_torch(path: str | Path, model: nn.Module, feats: torch.Tensor, lengths: torch.Tensor) -> CheckResult:
    """Run the ONNX file and ``model.forward_features`` on the same batch; max |diff| over the valid frames of
    the log-probabilities floored at :data:`LOGPROB_FLOOR`."""
    sess = ort_session(path)
    lp, lens = sess.run(list(OUTPUT_NAMES), {INPUT_FEATURES: feats.numpy(), INPUT_LENGTH: lengths.numpy()})
    with torch.no_grad():
        ref_lp, ref_lens = model.forward_features(feats, lengths)
    ref_lp, ref_lens = ref_lp.numpy(), ref_lens.numpy()
    equal = lens.shape == ref_lens.shape and bool((lens == ref_lens).all())
    if lp.shape != ref_lp.shape:
        return CheckResult(float("inf"), equal)
    diff = 0.0
    for b, n in enumerate(ref_lens):
        if n > 0:
            a, r = np.maximum(lp[b, :n], LOGPROB_FLOOR), np.maximum(ref_lp[b, :n], LOGPROB_FLOOR)
            diff = max(diff, float(np.abs(a - r).max()))
    return CheckResult(diff, equal)


def export_graph(model: nn.Module, path: str | Path, n_mels: int, dynamo: bool = False) -> Path:
    """Trace ``model.forward_features`` into ``path`` (no metadata, no check). ``model`` must be in eval mode.

    ``dynamo=True`` uses torch's dynamo exporter instead of the TorchScript one: a shorter graph (one length mask
    per time resolution instead of one per conv), 10-30x slower to export.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    wrapper = FeaturesToLogProbs(model).eval()
    feats, lengths = example_inputs(n_mels)
    names = dict(input_names=list(INPUT_NAMES), output_names=list(OUTPUT_NAMES), opset_version=OPSET)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice and tracer notes
        if dynamo:
            batch, time = torch.export.Dim("batch"), torch.export.Dim("time")
            shapes = {INPUT_FEATURES: {0: batch, 2: time}, INPUT_LENGTH: {0: batch}}
            torch.onnx.export(
                wrapper, (feats, lengths), str(path), dynamo=True, dynamic_shapes=shapes, verbose=False, **names
            )
        else:
            dynamic = {
                INPUT_FEATURES: {0: "batch", 2: "time"},
                INPUT_LENGTH: {0: "batch"},
                OUTPUT_LOGPROBS: {0: "batch", 1: "frames"},
                OUTPUT_LENGTHS: {0: "batch"},
            }
            torch.onnx.export(
                wrapper,
                (feats, lengths),
                str(path),
                dynamic_axes=dynamic,
                do_constant_folding=True,
                dynamo=False,
                **names,
            )
    return path


def export_onnx(
    loaded: Any,
    out: str | Path,
    spec: Any = None,
    check: bool = True,
    tolerance: float | None = None,
    tokens_txt: bool = True,
    dynamo: bool = False,
) -> Path:
    """Export ``loaded`` (a :class:`speechtao.asr.checkpoint.LoadedModel`) to ``out`` as FP32 ONNX.

    With ``check`` the file is run with onnxruntime on a padded batch of two utterances and compared with
    PyTorch; a max abs difference of the log-probabilities above ``tolerance`` (default :data:`MAX_ABS_DIFF`,
    :data:`MAX_ABS_DIFF_WHISPER` for Whisper-encoder models; or different output lengths) removes the file and
    raises :class:`ExportCheckError`.
    """
    out = Path(out)
    if tolerance is None:
        tolerance = MAX_ABS_DIFF_WHISPER if loaded.config.family == "whisper" else MAX_ABS_DIFF
    model = loaded.model.eval()
    n_mels = loaded.config.feat_in
    export_graph(model, out, n_mels, dynamo=dynamo)
    set_metadata(out, onnx_metadata(loaded, spec))
    if check:
        feats, lengths = example_inputs(n_mels, frames=(317, 190, 45), seed=1)  # other shapes than the trace's
        res = compare_with_torch(out, model, feats, lengths)
        if not res.lengths_equal or res.max_abs_diff > tolerance:
            out.unlink(missing_ok=True)
            raise ExportCheckError(
                f"{out}: the ONNX graph does not reproduce PyTorch (max |log-prob diff| {res.max_abs_diff:.3g} > "
                f"{tolerance:g}, output lengths equal: {res.lengths_equal}); the file was removed. Report this "
                f"with the model's config (speechtao asr info), torch and onnxruntime versions"
            )
    if tokens_txt:
        write_tokens(out.with_name("tokens.txt"), loaded.tokenizer)
    return out


class OnnxCTCModel(nn.Module):
    """An exported graph run by onnxruntime behind the :class:`EncDecCTCModel` call signature, so speechtao's
    inference and evaluation (:class:`speechtao.asr.infer.Transcriber`, :func:`speechtao.asr.evaluate.evaluate`)
    run it unchanged.

    forward(audio (B, T) float32, audio_lengths (B,) int64) -> (log_probs (B, T', V+1), out_lengths (B,)); the
    features come from ``preprocessor`` (PyTorch), the network from the ONNX file. CPU only.
    """

    def __init__(self, path: str | Path, preprocessor: nn.Module, subsampling_factor: int, threads: int = 1):
        super().__init__()
        self.path = Path(path)
        self.preprocessor = preprocessor.eval()
        self.subsampling_factor = subsampling_factor
        self.session = ort_session(path, threads)

    def forward(self, audio: torch.Tensor, audio_lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feats, lengths = self.preprocessor(audio, audio_lengths)
        return self.forward_features(feats, lengths)

    def forward_features(self, feats: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        lp, n = self.session.run(
            list(OUTPUT_NAMES),
            {
                INPUT_FEATURES: feats.detach().cpu().numpy(),
                INPUT_LENGTH: lengths.detach().cpu().numpy().astype(np.int64),
            },
        )
        return torch.from_numpy(lp), torch.from_numpy(n)
