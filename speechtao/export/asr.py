"""The export formats of ``speechtao asr export`` and of the flow's INT8 stage, as library calls.

:func:`export_model` writes ``loaded`` (a :class:`speechtao.asr.checkpoint.LoadedModel`) in one of
:data:`FORMATS`, with the typed :class:`ExportOptions`; each format is a function ``(loaded, out, options) ->
ExportResult``. Files written next to ``out``:

- ``nemo``: a NeMo ``.nemo`` archive (``ASRModel.restore_from`` loads it)
- ``onnx``: ``model.onnx`` + ``tokens.txt``
- ``onnx-int8`` (``calib=MANIFEST``): ``model.int8.onnx`` (QDQ) + ``model.int8.fp32.onnx`` (the optimized FP32
  graph) + ``model.int8.calib`` (TensorRT calibration cache for that graph) + ``tokens.txt``; a QAT checkpoint's
  ranges (``extra["qat"]``) replace the calibrated ranges of the conv inputs. QuartzNet/CitriNet quantize their
  convolutions; Whisper-encoder models their MatMuls too (:func:`int8_op_types`). Whisper-encoder models use the
  dynamic scheme by default (``int8_scheme``, :func:`int8_scheme_for`): ``model.int8.onnx`` + ``model.int8.fp32.onnx``
  + ``tokens.txt``, no calibration needed and no TensorRT cache
- ``tensorrt``: ``model.plan`` (INT8 with ``calib``, else FP16), on GPU hosts with the tensorrt package
- ``triton``: a model folder: ``config.pbtxt`` + ``1/model.onnx`` (INT8 with ``calib``) + ``tokens.txt``
- ``whisper-onnx`` / ``whisper-onnx-int8``: a Whisper encoder-decoder (:class:`~speechtao.asr.whisper_seq.WhisperSeqModel`,
  not a LoadedModel) as the folder :mod:`speechtao.export.whisper` writes; ``quant`` is its parity check

Usage::

    result = export_model(load_model("final.pt"), "onnx-int8", "export/model.int8.onnx",
                          ExportOptions(calib=Path("train.jsonl"), calib_utterances=32))
    result.path, result.quant.utterances, result.quant.overridden
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ..errors import InputError

CALIB_METHODS = ("minmax", "entropy", "percentile")
INT8_SCHEMES = ("auto", "static", "dynamic")


@dataclass(frozen=True)
class ExportOptions:
    """How :func:`export_model` writes a model (each field is also a flag of ``speechtao asr export``)."""

    calib: Path | None = None  # manifest of in-domain audio for INT8 calibration (onnx-int8 needs it; tensorrt
    # and triton become INT8 with it)
    calib_method: Literal["minmax", "entropy", "percentile"] = "entropy"  # how activation ranges are calibrated
    # (QuantOptions.method says why entropy)
    calib_utterances: int = 64  # calibration utterances taken from ``calib`` (in manifest order)
    percentile: float = 99.999  # kept percentile of |x| for calib_method="percentile"
    check: bool = True  # run the FP32 ONNX graph with onnxruntime and compare it with PyTorch
    dynamo: bool = False  # torch's dynamo exporter (shorter graph, much slower export) instead of TorchScript's
    int8_scheme: Literal["auto", "static", "dynamic"] = "auto"  # static: calibrated QDQ; dynamic: activation
    # ranges at run time (no calibration); auto: int8_scheme_for(model)
    int8_ffn_out: Literal["float", "int8"] = "float"  # Whisper-encoder models, dynamic scheme: the MLP output
    # projections (see ffn_out_nodes) stay float, or become INT8 like the other MatMuls

    def __post_init__(self) -> None:
        if self.calib_method not in CALIB_METHODS:
            raise InputError(f"calib_method {self.calib_method!r} is not one of {list(CALIB_METHODS)}")
        if self.int8_scheme not in INT8_SCHEMES:
            raise InputError(f"int8_scheme {self.int8_scheme!r} is not one of {list(INT8_SCHEMES)}")
        if self.int8_ffn_out not in ("float", "int8"):
            raise InputError(f"int8_ffn_out {self.int8_ffn_out!r} is not one of ['float', 'int8']")
        if self.calib_utterances < 1:
            raise InputError(f"calib_utterances must be >= 1, got {self.calib_utterances}")


@dataclass(frozen=True)
class ExportResult:
    path: Path  # the file (or, for triton, the folder) written
    format: str  # the key of FORMATS
    quant: Any = None  # speechtao.export.quantize.QuantResult of an INT8 export (ranges, QAT overrides, ...)


def int8_op_types(loaded) -> tuple[str, ...]:
    """ONNX node types quantized to INT8 for ``loaded``. A Whisper encoder does nearly all its work in MatMuls
    (linear layers and attention products). On the Whisper starter and 18 real recordings (one thread): with
    convolutions only, the INT8 file kept 96% of the FP32 size and ran no faster; with MatMuls too it is 32% of
    the size and 2.2x faster, 96.6% of its output frames having the FP32 model's best token."""
    return ("Conv", "MatMul") if loaded.config.family == "whisper" else ("Conv",)


def int8_scheme_for(loaded, scheme: str = "auto") -> str:
    """``"static"`` or ``"dynamic"`` for ``loaded``. ``auto`` picks dynamic for Whisper-encoder models without QAT
    ranges: their residual stream (magnitudes near 500) and attention scores lose accuracy under calibrated
    per-tensor activation scales (first Whisper-base starter, 18 Debian recordings: FP32 58.33% WER, static INT8 72.22%,
    dynamic 58.33% in the server, both at streaming RTF 0.079 on one thread); static (QDQ convs) for the others,
    where ORT's dynamic INT8 runs slower than FP32."""
    from .qat import range_overrides_for

    if scheme != "auto":
        return scheme
    whisper = loaded.config.family == "whisper"
    return "dynamic" if whisper and range_overrides_for(loaded) is None else "static"


def ffn_out_nodes(onnx_path: str | Path) -> list[str]:
    """Names of the MatMuls of a Whisper encoder's MLP output projections (``layers.N/mlp/mlp.2``), which the
    dynamic INT8 scheme keeps float by default. Their input is the GELU output, whose long tail a run-time
    per-tensor UINT8 scale resolves poorly: on the 60 held-out-voice validation utterances, all MatMuls INT8 moved
    the character starter from 63.53% to 66.14% WER and the SentencePiece one from 60.56% / 28.82% CER to 61.78% /
    31.14%; with these six float, 63.35% and 61.26% / 29.11% (keeping layer 0 or layer 5 float instead recovered
    less: docs/asr.md)."""
    import onnx

    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    return [n.name for n in graph.node if n.op_type == "MatMul" and n.name.endswith("/mlp/mlp.2/MatMul")]


def _fp32(loaded, path: Path, options: ExportOptions, tokens_txt: bool = True) -> Path:
    from .onnx_export import export_onnx

    return export_onnx(loaded, path, check=options.check, tokens_txt=tokens_txt, dynamo=options.dynamo)


def _int8(loaded, out: Path, options: ExportOptions, scheme: str | None = None):
    """Quantize ``loaded`` into ``out`` (calibrated on ``options.calib``, QAT ranges applied; or dynamic, see
    :func:`int8_scheme_for`): a QuantResult."""
    from .onnx_export import write_tokens
    from .qat import range_overrides_for
    from .quantize import QuantOptions, calibration_features, quantize_dynamic_model, quantize_model

    if (scheme or int8_scheme_for(loaded, options.int8_scheme)) == "dynamic":
        with tempfile.TemporaryDirectory(prefix="speechtao-export-") as tmp:
            fp32 = _fp32(loaded, Path(tmp) / "model.onnx", options, tokens_txt=False)
            float_ffn = loaded.config.family == "whisper" and options.int8_ffn_out == "float"
            keep = ffn_out_nodes(fp32) if float_ffn else []
            if float_ffn and not keep:
                raise InputError(
                    f"{fp32}: no Whisper MLP output MatMuls (*/mlp/mlp.2/MatMul) found to keep float; "
                    "export with --int8-ffn-out int8"
                )
            result = quantize_dynamic_model(fp32, out, op_types=("MatMul",), keep_float=keep)
        write_tokens(out.with_name("tokens.txt"), loaded.tokenizer)
        return result
    if options.calib is None:
        raise InputError(
            "an INT8 export needs --calib MANIFEST (ExportOptions.calib): in-domain audio to calibrate ranges on, "
            "e.g. 50-100 utterances of the training or validation set"
        )
    opts = QuantOptions(
        method=options.calib_method,
        percentile=options.percentile,
        max_utterances=options.calib_utterances,
        op_types=int8_op_types(loaded),
    )
    items = calibration_features(loaded, options.calib, opts)
    overrides = range_overrides_for(loaded)  # a QAT checkpoint's input ranges, else None
    with tempfile.TemporaryDirectory(prefix="speechtao-export-") as tmp:
        fp32 = _fp32(loaded, Path(tmp) / "model.onnx", options, tokens_txt=False)
        result = quantize_model(fp32, out, items, opts, range_overrides=overrides)
    write_tokens(out.with_name("tokens.txt"), loaded.tokenizer)
    return result


def export_nemo_format(loaded, out: Path, options: ExportOptions) -> ExportResult:
    from ..asr.nemo_io import export_nemo

    return ExportResult(export_nemo(loaded, out), "nemo")


def export_onnx_format(loaded, out: Path, options: ExportOptions) -> ExportResult:
    return ExportResult(_fp32(loaded, out, options), "onnx")


def export_onnx_int8_format(loaded, out: Path, options: ExportOptions) -> ExportResult:
    r = _int8(loaded, out, options)
    return ExportResult(r.int8_path, "onnx-int8", r)


def export_tensorrt_format(loaded, out: Path, options: ExportOptions) -> ExportResult:
    from .tensorrt import EngineOptions, build_engine, import_tensorrt

    import_tensorrt()  # fail before any work on a host without TensorRT or a GPU
    with tempfile.TemporaryDirectory(prefix="speechtao-trt-") as tmp:
        if options.calib is not None:
            r = _int8(loaded, Path(tmp) / "model.int8.onnx", options, scheme="static")  # TensorRT needs ranges
            return ExportResult(build_engine(r.fp32_path, out, r.trt_cache_path), "tensorrt", r)
        fp32 = _fp32(loaded, Path(tmp) / "model.onnx", options)
        return ExportResult(build_engine(fp32, out, None, EngineOptions(int8=False)), "tensorrt")


def export_triton_format(loaded, out: Path, options: ExportOptions) -> ExportResult:
    from .triton import write_triton_model

    with tempfile.TemporaryDirectory(prefix="speechtao-triton-") as tmp:
        r = None
        if options.calib is not None:
            r = _int8(loaded, Path(tmp) / "model.int8.onnx", options)
            src = r.int8_path
        else:
            src = _fp32(loaded, Path(tmp) / "model.onnx", options)
        return ExportResult(write_triton_model(src, out, loaded.tokenizer), "triton", r)


def _whisper_seq(model, out: Path, options: ExportOptions, int8: bool) -> ExportResult:
    from ..asr.whisper_seq import WhisperSeqModel
    from .whisper import WhisperExportOptions, export_whisper_seq

    if not isinstance(model, WhisperSeqModel):
        raise InputError(
            "whisper-onnx formats take a Whisper encoder-decoder in PyTorch (--model whisper:tiny.en or a checkpoint "
            "of `asr finetune` from whisper:NAME); CTC models use --format onnx / onnx-int8"
        )
    fmt = "whisper-onnx-int8" if int8 else "whisper-onnx"
    folder, check = export_whisper_seq(model, out, WhisperExportOptions(int8=int8, check=options.check))
    return ExportResult(folder, fmt, check)


def export_whisper_onnx_format(model, out: Path, options: ExportOptions) -> ExportResult:
    return _whisper_seq(model, out, options, int8=False)


def export_whisper_onnx_int8_format(model, out: Path, options: ExportOptions) -> ExportResult:
    return _whisper_seq(model, out, options, int8=True)


FORMATS: dict[str, tuple[Callable[[Any, Path, ExportOptions], ExportResult], str]] = {
    "nemo": (export_nemo_format, "NeMo .nemo archive (ASRModel.restore_from loads it)"),
    "onnx": (export_onnx_format, "ONNX FP32: log-mel features in, log-probs out, checked against PyTorch"),
    "onnx-int8": (export_onnx_int8_format, "ONNX static INT8 (QDQ) + TensorRT calibration cache; needs --calib"),
    "tensorrt": (export_tensorrt_format, "TensorRT engine (GPU host with the tensorrt package)"),
    "triton": (export_triton_format, "Triton model folder (config.pbtxt + 1/model.onnx)"),
    "whisper-onnx": (
        export_whisper_onnx_format,
        "Whisper encoder-decoder: a folder with encoder.onnx + decoder.onnx (past keys/values), FP32, checked",
    ),
    "whisper-onnx-int8": (
        export_whisper_onnx_int8_format,
        "Whisper encoder-decoder folder with INT8 MatMul weights (dynamic quantization; no --calib)",
    ),
}


def export_model(loaded, fmt: str, out: str | Path, options: ExportOptions = ExportOptions()) -> ExportResult:
    """Write ``loaded`` in format ``fmt`` (a key of :data:`FORMATS`) to ``out``."""
    if fmt not in FORMATS:
        raise InputError(f"export format {fmt!r} is unknown (formats: {', '.join(FORMATS)})")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    return FORMATS[fmt][0](loaded, out, options)


__all__ = [
    "ExportOptions",
    "ExportResult",
    "FORMATS",
    "export_model",
    "ffn_out_nodes",
    "int8_op_types",
    "int8_scheme_for",
]
