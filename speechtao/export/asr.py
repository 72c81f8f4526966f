"""The ONNX-family formats of ``speechtao asr export``: ``onnx``, ``onnx-int8``, ``tensorrt`` and ``triton``.

Each is a function ``(loaded, out, args) -> Path`` (the contract of ``speechtao/cli/asr/export.py``'s FORMATS);
:func:`add_arguments` adds the options they read. Files written next to ``--out``:

- ``onnx``: ``model.onnx`` + ``tokens.txt``
- ``onnx-int8 --calib M``: ``model.int8.onnx`` (QDQ) + ``model.int8.fp32.onnx`` (the optimized FP32 graph) +
  ``model.int8.calib`` (TensorRT calibration cache for that graph) + ``tokens.txt``; a QAT checkpoint's ranges
  (``extra["qat"]``) replace the calibrated ranges of the conv inputs. QuartzNet/CitriNet quantize their
  convolutions; Whisper-encoder models their MatMuls too (:func:`int8_op_types`)
- ``tensorrt``: ``model.plan`` (INT8 with ``--calib``, else FP16), on GPU hosts with the tensorrt package
- ``triton``: a model folder: ``config.pbtxt`` + ``1/model.onnx`` (INT8 with ``--calib``) + ``tokens.txt``
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from ..errors import InputError


def add_arguments(p) -> None:
    g = p.add_argument_group("onnx, onnx-int8, tensorrt, triton")
    g.add_argument(
        "--calib",
        help="manifest of in-domain audio for INT8 calibration (onnx-int8; tensorrt and triton become INT8 with it)",
    )
    g.add_argument(
        "--calib-method",
        default="minmax",
        choices=["minmax", "entropy", "percentile"],
        help="how activation ranges are calibrated (default minmax)",
    )
    g.add_argument("--calib-utterances", type=int, default=64, help="calibration utterances (default 64)")
    g.add_argument("--percentile", type=float, default=99.999, help="kept percentile for --calib-method percentile")
    g.add_argument("--no-check", action="store_true", help="skip the ONNX-vs-PyTorch check (not recommended)")
    g.add_argument(
        "--dynamo",
        action="store_true",
        help="use torch's dynamo exporter (shorter graph, much slower export) instead of TorchScript's",
    )


def _fp32(loaded, path: Path, args, tokens_txt: bool = True) -> Path:
    from .onnx_export import export_onnx

    return export_onnx(
        loaded,
        path,
        check=not getattr(args, "no_check", False),
        tokens_txt=tokens_txt,
        dynamo=getattr(args, "dynamo", False),
    )


def int8_op_types(loaded) -> tuple[str, ...]:
    """ONNX node types quantized to INT8 for ``loaded``. A Whisper encoder does nearly all its work in MatMuls
    (linear layers and attention products). On the Whisper starter and 18 real recordings (one thread): with
    convolutions only, the INT8 file kept 96% of the FP32 size and ran no faster; with MatMuls too it is 32% of
    the size and 2.2x faster, 96.6% of its output frames having the FP32 model's best token."""
    return ("Conv", "MatMul") if loaded.config.family == "whisper" else ("Conv",)


def _int8(loaded, out: Path, args):
    from .qat import range_overrides_for
    from .quantize import QuantOptions, calibration_features, quantize_model

    if not getattr(args, "calib", None):
        raise InputError(
            "--format onnx-int8 needs --calib MANIFEST (in-domain audio to calibrate ranges on, "
            "e.g. 50-100 utterances of the validation set)"
        )
    opts = QuantOptions(
        method=args.calib_method,
        percentile=args.percentile,
        max_utterances=args.calib_utterances,
        op_types=int8_op_types(loaded),
    )
    items = calibration_features(loaded, args.calib, opts)
    overrides = range_overrides_for(loaded)  # a QAT checkpoint's input ranges, else None
    with tempfile.TemporaryDirectory(prefix="speechtao-export-") as tmp:
        fp32 = _fp32(loaded, Path(tmp) / "model.onnx", args, tokens_txt=False)
        result = quantize_model(fp32, out, items, opts, range_overrides=overrides)
    from .onnx_export import write_tokens

    write_tokens(out.with_name("tokens.txt"), loaded.tokenizer)
    return result


def export_onnx_format(loaded, out: Path, args) -> Path:
    return _fp32(loaded, out, args)


def export_onnx_int8_format(loaded, out: Path, args) -> Path:
    r = _int8(loaded, out, args)
    note = f", {len(r.overridden)} ranges from QAT" if r.overridden else ""
    print(
        f"calibrated on {r.utterances} utterances ({args.calib_method}{note}); TensorRT cache {r.trt_cache_path} "
        f"for {r.fp32_path}"
    )
    return r.int8_path


def export_tensorrt_format(loaded, out: Path, args) -> Path:
    from .tensorrt import build_engine, import_tensorrt

    import_tensorrt()  # fail before any work on a host without TensorRT or a GPU
    if getattr(args, "calib", None):
        with tempfile.TemporaryDirectory(prefix="speechtao-trt-") as tmp:
            r = _int8(loaded, Path(tmp) / "model.int8.onnx", args)
            return build_engine(r.fp32_path, out, r.trt_cache_path)
    with tempfile.TemporaryDirectory(prefix="speechtao-trt-") as tmp:
        fp32 = _fp32(loaded, Path(tmp) / "model.onnx", args)
        from .tensorrt import EngineOptions

        return build_engine(fp32, out, None, EngineOptions(int8=False))


def export_triton_format(loaded, out: Path, args) -> Path:
    from .triton import write_triton_model

    with tempfile.TemporaryDirectory(prefix="speechtao-triton-") as tmp:
        if getattr(args, "calib", None):
            src = _int8(loaded, Path(tmp) / "model.int8.onnx", args).int8_path
        else:
            src = _fp32(loaded, Path(tmp) / "model.onnx", args)
        return write_triton_model(src, out, loaded.tokenizer)


FORMATS = {
    "onnx": (export_onnx_format, "ONNX FP32: log-mel features in, log-probs out, checked against PyTorch"),
    "onnx-int8": (export_onnx_int8_format, "ONNX static INT8 (QDQ) + TensorRT calibration cache; needs --calib"),
    "tensorrt": (export_tensorrt_format, "TensorRT engine (GPU host with the tensorrt package)"),
    "triton": (export_triton_format, "Triton model folder (config.pbtxt + 1/model.onnx)"),
}
