"""Static INT8 quantization of an exported CTC model with ONNX Runtime, and TensorRT calibration caches.

Pipeline (:func:`quantize_model`)::

    FP32 ONNX --quant_pre_process--> optimized FP32 ONNX (BatchNorm folded, shapes inferred)   -> <stem>.fp32.onnx
      --calibrate on log-mel features of a manifest's audio (min-max | entropy | percentile)  -> ranges
      --(optional) replace ranges with those learned in QAT (speechtao.export.qat)
      --quantize_static: QDQ, per-channel symmetric INT8 weights, per-tensor UINT8 activations -> <stem>.onnx
      --TensorRT calibration cache of the same ranges, for <stem>.fp32.onnx                     -> <stem>.calib

Only ``Conv`` nodes are quantized by default (``op_types``): everything else in these models is cheap
elementwise work between convolutions, and ORT fuses DequantizeLinear -> Conv -> QuantizeLinear into an
integer convolution (``QLinearConv``). (ORT's dynamic INT8 is slower than FP32 for conv models; static QDQ is the
fast path.)

Why UINT8 activations (``activations="uint8"``, asymmetric, ORT's default): with INT8 activations ORT's
``QDQS8ToU8`` graph transform turns some activation Q/DQ pairs into UINT8 ones, which leaves those convolutions
with a UINT8 input and an INT8 output; the QDQ Conv fusion needs both of one type, so they stay float behind
DequantizeLinear/QuantizeLinear. On the QuartzNet starter that kept 15 of 29 convs (all 12 depthwise ones and 3
residual ones) in float, and the network ran only 1.2-1.3x faster than ORT FP32 on one thread (quartznet_15x5:
1.4x); with UINT8 activations every conv becomes a ``QLinearConv`` (MLAS runs 1D depthwise convs in int8 too) and
the network runs 2.3x (starter; its many small masking ops stay float) to 3.5x (quartznet_15x5) faster
(``python bench/int8_schemes.py``). Asymmetric UINT8 also spends all 256 levels on the non-negative ReLU outputs
most convs read. (U8S8 can saturate on x86 CPUs without VNNI; ORT's ``reduce_range`` is the usual remedy there.)

``float_ends`` keeps the first quantizable node (it reads the raw log-mel features) and the last one (the CTC
classifier producing the logits) in FP32: on the domain fine-tuned QuartzNet starter that took the INT8 WER on the
domain test set from +0.96 to +0.0 points of FP32, for ~13% more INT8 network time.

TensorRT calibration cache (what ``IInt8EntropyCalibrator2.write_calibration_cache`` writes)::

    TRT-<version>-EntropyCalibration2
    <tensor name>: <scale as 8 hex digits of its big-endian IEEE float32>
    ...

with ``scale = amax / 127`` and ``amax = max(|min|, |max|)`` of the tensor's calibrated range.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import struct
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..errors import DataError, InputError

METHODS = ("minmax", "entropy", "percentile")
ACTIVATIONS = ("uint8", "int8")
TRT_CACHE_VERSION = "8601"  # TensorRT 8.6.1; 10.x reads caches of this header too
TRT_ALGORITHM = "EntropyCalibration2"


@dataclass(frozen=True)
class QuantOptions:
    """How :func:`quantize_model` calibrates and quantizes."""

    method: Literal["minmax", "entropy", "percentile"] = "entropy"  # ORT calibration method. entropy, not minmax:
    # a few inputs can drive a channel hundreds of times past its usual range (the flow's pruned + retrained
    # QuartzNet, 2026-12-07: 465 on two of 144 training utterances, median 7), and min-max then spends the whole
    # INT8 range on them: test WER FP32 35.81%, min-max INT8 50.97% (100.90% dev with 128 calibration
    # utterances), entropy 36.13%; on the fine-tuned model 35.48% / 34.84% (FP32 36.13%)
    percentile: float = 99.999  # for method="percentile": the kept percentile of |x|
    num_bins: int | None = None  # histogram bins for entropy/percentile; None: ORT's (128 / 2048)
    max_utterances: int = 64  # calibration utterances taken from the manifest (in manifest order)
    max_seconds: float = 20.0  # longer utterances are cut to this many seconds
    op_types: tuple[str, ...] = ("Conv",)  # node types to quantize; () quantizes every supported type
    per_channel: bool = True  # per-output-channel weight scales
    activations: Literal["uint8", "int8"] = "uint8"  # uint8: asymmetric (ORT fuses every conv); int8: symmetric
    float_ends: bool = True  # keep the first and the last quantizable node (features in, logits out) in FP32
    trt_version: str = TRT_CACHE_VERSION  # written into the cache header

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise InputError(f"calibration method {self.method!r} is not one of {list(METHODS)}")
        if self.activations not in ACTIVATIONS:
            raise InputError(
                f"activation type {self.activations!r} is not one of {list(ACTIVATIONS)} (uint8 is "
                "the fast choice for ONNX Runtime on CPUs)"
            )
        if not 0.0 < self.percentile <= 100.0:
            raise InputError(f"percentile {self.percentile} is not in (0, 100] (99.999 keeps all but the top 0.001%)")
        if self.max_utterances < 1 or self.max_seconds <= 0:
            raise InputError(
                f"calibration utterances ({self.max_utterances}) must be >= 1 and max_seconds ({self.max_seconds}) > 0"
            )


@dataclass
class QuantResult:
    int8_path: Path  # the INT8 model (QDQ, or MatMulInteger for the dynamic scheme)
    fp32_path: Path  # the optimized FP32 graph the ranges (and the TensorRT cache) belong to
    trt_cache_path: Path | None  # TensorRT INT8 calibration cache (None: dynamic scheme, no ranges)
    ranges: dict[str, tuple[float, float]] = field(default_factory=dict)  # every calibrated tensor
    overridden: list[str] = field(default_factory=list)  # tensors whose range came from QAT
    utterances: int = 0  # calibration utterances used
    scheme: str = "static"  # "static" (calibrated QDQ) or "dynamic" (activation ranges computed at run time)
    float_nodes: list[str] = field(default_factory=list)  # nodes of op_types left in float (the metadata's too)


# -- calibration data -----------------------------------------------------------------------------------------


def calibration_features(
    loaded: Any, manifest: str | Path, options: QuantOptions = QuantOptions()
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Log-mel features of the first ``max_utterances`` utterances of ``manifest``, one per item.

    Returns ``[(feats (1, n_mels, F) float32, length (1,) int64), ...]`` computed by the model's own
    preprocessor in eval mode (no dither), i.e. exactly what the exported graph sees at inference.
    """
    import torch

    from ..audio import read_audio
    from ..data.manifest import read_manifest

    entries = read_manifest(manifest)
    if not entries:
        raise DataError(f"{manifest}: no utterances to calibrate on (give a manifest of in-domain audio)")
    pre = loaded.model.preprocessor.eval()
    sr = loaded.config.preprocessor.sample_rate
    items = []
    for e in entries[: options.max_utterances]:
        dur = min(e.duration, options.max_seconds)
        audio = read_audio(e.audio_filepath, sample_rate=sr, offset=e.offset, duration=dur)
        with torch.no_grad():
            x = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))[None]
            feats, lengths = pre(x, torch.tensor([x.shape[1]], dtype=torch.int64))
        items.append((feats.numpy().astype(np.float32), lengths.numpy().astype(np.int64)))
    return items


class FeatureReader:
    """An onnxruntime ``CalibrationDataReader`` over precomputed feature items (see :func:`calibration_features`)."""

    def __init__(self, items: Sequence[tuple[np.ndarray, np.ndarray]]):
        from .onnx_export import INPUT_FEATURES, INPUT_LENGTH

        self._feeds = [{INPUT_FEATURES: f, INPUT_LENGTH: n} for f, n in items]
        self._i = 0

    def get_next(self) -> dict | None:
        if self._i >= len(self._feeds):
            return None
        self._i += 1
        return self._feeds[self._i - 1]

    def rewind(self) -> None:
        self._i = 0

    def __len__(self) -> int:
        return len(self._feeds)

    def __iter__(self):
        return self

    def __next__(self) -> dict:
        item = self.get_next()
        if item is None:
            raise StopIteration
        return item


def _ort_method(method: str):
    from onnxruntime.quantization import CalibrationMethod

    return {
        "minmax": CalibrationMethod.MinMax,
        "entropy": CalibrationMethod.Entropy,
        "percentile": CalibrationMethod.Percentile,
    }[method]


def _kl_after_quantizing(hist: np.ndarray, start: int, end: int, n_quant: int) -> float:
    """KL divergence between the histogram slice ``hist[start:end]`` (outside counts folded into its end bins) and
    that slice requantized to ``n_quant`` levels: the cost of an entropy calibration threshold at
    ``(edges[start], edges[end])``. The same quantity as onnxruntime's HistogramCollector (smoothing, the
    truncation of expanded bins to integers), computed with array operations instead of per-bin Python loops."""
    sliced = hist[start:end]
    p = sliced.astype(np.float64)
    p[0] += hist[:start].sum()
    p[-1] += hist[end:].sum()
    merged = sliced.size // n_quant
    used = merged * n_quant
    qbins = sliced[:used].reshape(n_quant, merged).sum(axis=1)
    qbins[-1] += sliced[used:].sum()
    norm = (p[:used] != 0).reshape(n_quant, merged).sum(axis=1)
    q = np.zeros(p.size, dtype=np.int64)
    q[:used] = np.repeat(np.where(norm > 0, qbins / np.maximum(norm, 1), 0), merged).astype(np.int64)
    smoothed = []
    for d in (p, q):
        zeros = d == 0
        n_zeros = int(zeros.sum())
        if n_zeros == d.size:
            return float("inf")
        eps1 = 1e-4 * n_zeros / (d.size - n_zeros)
        smoothed.append(d.astype(np.float32) + np.where(zeros, 1e-4, -eps1).astype(np.float32))
    ps, qs = (x.astype(np.float64) / x.sum(dtype=np.float64) for x in smoothed)
    return float(np.sum(ps * np.log(ps / qs)))


def entropy_thresholds(histograms: dict, n_quant: int = 128, max_candidates: int | None = None) -> dict:
    """Entropy-calibrated ``(low, high, hist, edges)`` per tensor from onnxruntime's collected symmetric histograms
    (``HistogramCollector.histogram_dict``: ``(hist, edges, min, max, threshold)``).

    onnxruntime keeps the bin width of the first calibration batch and adds bins when a later batch reaches
    further, so a tensor with rare outliers ends with tens of thousands of bins (the flow's retrained QuartzNet:
    a range of 7 on the first utterance, 465 later), and its per-threshold Python loops then took 216 s for one
    export. Here every candidate threshold costs a few array operations: every candidate, as onnxruntime tries
    (the same thresholds; that export 41 s at load 2.5), or ``max_candidates`` geometrically spaced ones (400: 18 s,
    but thresholds that moved cost that model 2.9 test WER points, so the default is every one)."""
    out = {}
    half = n_quant // 2
    for name, (hist, edges, lo, hi, _) in histograms.items():
        zero = hist.size // 2
        cands = np.arange(half, zero + 1)
        if max_candidates is not None and cands.size > max_candidates:
            cands = np.unique(np.geomspace(half, zero, max_candidates).round().astype(np.int64))
        best, best_kl = None, float("inf")
        for i in cands:
            start, end = zero - i, min(zero + i + 1, hist.size)
            kl = _kl_after_quantizing(hist, start, end, n_quant)
            if best is None or kl < best_kl:
                best, best_kl = (start, end), kl
        if best is None:  # a histogram narrower than the quantized bins: keep the observed range
            low, high = np.array(lo, dtype=edges.dtype), np.array(hi, dtype=edges.dtype)
        else:
            low, high = edges[best[0]], edges[best[1]]
            low = np.array(lo, dtype=edges.dtype) if low < lo else low
            high = np.array(hi, dtype=edges.dtype) if high > hi else high
        out[name] = (low, high, hist, edges)
    return out


def _calibrate(model_path: Path, items, options: QuantOptions, workdir: Path):
    """ORT's calibrator over every float tensor of the graph -> ``TensorsData``."""
    from onnxruntime.quantization.calibrate import create_calibrator

    extra: dict[str, Any] = {}
    if options.method == "percentile":
        extra = {"percentile": options.percentile, "symmetric": True}
    elif options.method == "entropy":
        extra = {"symmetric": True}
    if options.num_bins is not None and options.method != "minmax":
        extra["num_bins"] = options.num_bins
    op_types = list(options.op_types) or None  # the inputs and outputs of these nodes get ranges
    calibrator = create_calibrator(
        model_path,
        op_types,
        augmented_model_path=str(workdir / "augmented.onnx"),
        calibrate_method=_ort_method(options.method),
        extra_options=extra,
    )
    with contextlib.redirect_stdout(io.StringIO()):  # ORT's calibrators print progress notes
        for item in items:  # one utterance per call: the histogram collectors need equal shapes within a call
            calibrator.collect_data(FeatureReader([item]))
        if options.method == "entropy":  # onnxruntime's own search is too slow on grown histograms
            from onnxruntime.quantization.calibrate import CalibrationMethod, TensorsData

            collector = calibrator.collector
            data = TensorsData(
                CalibrationMethod.Entropy, entropy_thresholds(collector.histogram_dict, collector.num_quantized_bins)
            )
        else:
            data = calibrator.compute_data()
    del calibrator
    return data


def float_end_nodes(model_path: str | Path, op_types: Sequence[str]) -> list[str]:
    """Names of the first and the last node of ``op_types`` (``()``: Conv, MatMul, Gemm) in graph order.

    ONNX graphs are topologically sorted, so these are the node that reads the features first and the one that
    produces the logits (the CTC classifier).
    """
    import onnx

    types = set(op_types or ("Conv", "MatMul", "Gemm"))
    names = [n.name for n in onnx.load(str(model_path), load_external_data=False).graph.node if n.op_type in types]
    if names and not all(names):
        raise DataError(
            f"{model_path}: a {'/'.join(sorted(types))} node has no name; cannot exclude it from "
            "quantization (export with speechtao asr export, which names every node)"
        )
    return list(dict.fromkeys(names[:1] + names[-1:]))


def _range(td) -> tuple[float, float]:
    lo, hi = td.range_value
    return float(np.asarray(lo).reshape(-1)[0]), float(np.asarray(hi).reshape(-1)[0])


# -- the whole pipeline ---------------------------------------------------------------------------------------


def quantize_model(
    fp32_path: str | Path,
    out: str | Path,
    items: Sequence[tuple[np.ndarray, np.ndarray]],
    options: QuantOptions = QuantOptions(),
    range_overrides: dict[str, tuple[float, float]] | Callable[[Path], dict] | None = None,
) -> QuantResult:
    """Quantize the FP32 ONNX at ``fp32_path`` into ``out`` (see the module docstring for the files written).

    Args:
        items: calibration inputs from :func:`calibration_features`.
        range_overrides: ``{tensor name in the optimized graph: (min, max)}`` replacing calibrated ranges, or a
            function of the optimized graph's path returning them (quantization-aware training supplies these;
            see :func:`speechtao.export.qat.onnx_range_overrides`).
    """
    import onnx
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.calibrate import TensorData, TensorsData, save_tensors_data
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from .onnx_export import read_metadata, set_metadata

    if not items:
        raise DataError("no calibration utterances (give --calib a manifest with at least one utterance)")
    fp32_path, out = Path(fp32_path), Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    stem = out.name[: -len(".onnx")] if out.name.endswith(".onnx") else out.name
    opt_path = out.with_name(stem + ".fp32.onnx")
    cache_path = out.with_name(stem + ".calib")
    meta = read_metadata(fp32_path)
    with tempfile.TemporaryDirectory(prefix="speechtao-quant-") as tmp:
        work = Path(tmp)
        # CitriNet's masks defeat ORT's symbolic shape inference; ONNX shape inference is enough here.
        quant_pre_process(str(fp32_path), str(opt_path), skip_symbolic_shape=True)
        data = _calibrate(opt_path, items, options, work)
        if callable(range_overrides):
            range_overrides = range_overrides(opt_path)
        overridden = []
        for name, (lo, hi) in (range_overrides or {}).items():
            if name not in data.data:
                raise InputError(
                    f"range override for tensor {name!r}: no such float tensor in {opt_path} "
                    "(the QAT checkpoint and the exported graph differ; export from the same checkpoint)"
                )
            data.data[name] = TensorData(lowest=np.array(lo, dtype=np.float32), highest=np.array(hi, dtype=np.float32))
            overridden.append(name)
        ranges = {k: _range(v) for k, v in data.data.items()}
        ort_cache = work / "ranges.json"
        save_tensors_data(TensorsData(data.calibration_method, data.data), ort_cache)
        symmetric = options.activations == "int8"
        extra = {"ActivationSymmetric": symmetric, "WeightSymmetric": True}
        float_nodes = float_end_nodes(opt_path, options.op_types) if options.float_ends else []
        quantize_static(
            str(opt_path),
            str(out),
            None,
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=list(options.op_types) or None,
            per_channel=options.per_channel,
            activation_type=QuantType.QInt8 if symmetric else QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=float_nodes,
            calibrate_method=_ort_method(options.method),
            calibration_cache_path=str(ort_cache),
            extra_options=extra,
        )
    quant_meta = {
        "quantization": json.dumps(
            {
                "format": "QDQ",
                "weights": "int8 per-channel symmetric" if options.per_channel else "int8 per-tensor symmetric",
                "activations": "int8 per-tensor symmetric" if symmetric else "uint8 per-tensor asymmetric",
                "float_nodes": float_nodes,
                "method": options.method,
                "op_types": list(options.op_types),
                "calibration_utterances": len(items),
                "qat_ranges": len(overridden),
            }
        )
    }
    set_metadata(out, {**meta, **quant_meta})
    set_metadata(opt_path, meta)
    write_trt_cache(cache_path, ranges, version=options.trt_version, graph=onnx.load(str(opt_path)))
    return QuantResult(out, opt_path, cache_path, ranges, overridden, len(items), float_nodes=float_nodes)


def quantize_dynamic_model(
    fp32_path: str | Path,
    out: str | Path,
    op_types: Sequence[str] = ("MatMul",),
    per_channel: bool = True,
    keep_float: Sequence[str] = (),
) -> QuantResult:
    """Dynamic INT8 of the FP32 ONNX at ``fp32_path`` into ``out``: weights of ``op_types`` nodes INT8 (per output
    channel), activations quantized per call from their own range (ORT's ``MatMulInteger``); no calibration.

    For transformer encoders (Whisper) whose residual stream and attention scores span ranges that one calibrated
    per-tensor scale resolves poorly: on the Whisper-base starter and the 18 Debian recordings, static QDQ lost 14
    WER points against FP32 and this scheme none, at the same streaming speed (docs/asr.md). The FP32 graph is
    copied to ``<stem>.fp32.onnx`` as for the static scheme. ``keep_float``: names of nodes left in float
    (listed in the metadata's ``float_nodes``).
    """
    import shutil

    from onnxruntime.quantization import QuantType, quantize_dynamic

    from .onnx_export import read_metadata, set_metadata

    fp32_path, out = Path(fp32_path), Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    stem = out.name[: -len(".onnx")] if out.name.endswith(".onnx") else out.name
    opt_path = out.with_name(stem + ".fp32.onnx")
    if opt_path.resolve() != fp32_path.resolve():
        shutil.copyfile(fp32_path, opt_path)
    meta = read_metadata(fp32_path)
    quantize_dynamic(
        str(fp32_path),
        str(out),
        weight_type=QuantType.QInt8,
        per_channel=per_channel,
        op_types_to_quantize=list(op_types),
        nodes_to_exclude=list(keep_float),
    )
    info = {
        "format": "dynamic",
        "weights": "int8 per-channel symmetric" if per_channel else "int8 per-tensor symmetric",
        "activations": "uint8 per-tensor asymmetric, range computed at run time",
        "float_nodes": list(keep_float),
        "method": "dynamic",
        "op_types": list(op_types),
        "calibration_utterances": 0,
        "qat_ranges": 0,
    }
    set_metadata(out, {**meta, "quantization": json.dumps(info)})
    return QuantResult(out, opt_path, None, scheme="dynamic", float_nodes=list(keep_float))


# -- TensorRT calibration cache -------------------------------------------------------------------------------


def scale_to_hex(scale: float) -> str:
    """``0.0078125 -> "3c000000"``: the big-endian IEEE-754 float32 bits as 8 lowercase hex digits."""
    return struct.pack(">f", scale).hex()


def hex_to_scale(text: str) -> float:
    if len(text) != 8:
        raise ValueError(f"expected 8 hex digits, got {text!r}")
    return struct.unpack(">f", bytes.fromhex(text))[0]


def trt_scales(ranges: dict[str, tuple[float, float]]) -> dict[str, float]:
    """``{name: (min, max)} -> {name: amax / 127}`` (symmetric INT8, as TensorRT uses)."""
    out = {}
    for name, (lo, hi) in ranges.items():
        amax = max(abs(lo), abs(hi))
        out[name] = amax / 127.0 if amax > 0 else 1.0 / 127.0  # a constant-zero tensor: any scale works
    return out


def write_trt_cache(
    path: str | Path, ranges: dict[str, tuple[float, float]], version: str = TRT_CACHE_VERSION, graph: Any = None
) -> Path:
    """Write a TensorRT calibration cache for ``ranges`` (``{tensor: (min, max)}``).

    With ``graph`` (an ``onnx.ModelProto``) only tensors of that graph that carry activations are written:
    initializers (weights) are left out, as TensorRT computes weight scales itself.
    """
    names = list(ranges)
    if graph is not None:
        inits = {i.name for i in graph.graph.initializer}
        produced = {o for n in graph.graph.node for o in n.output} | {i.name for i in graph.graph.input}
        names = [n for n in names if n in produced and n not in inits]
    scales = trt_scales({n: ranges[n] for n in names})
    lines = [f"TRT-{version}-{TRT_ALGORITHM}"] + [f"{n}: {scale_to_hex(s)}" for n, s in scales.items()]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text("\n".join(lines) + "\n")
    os.replace(tmp, path)
    return path


@dataclass(frozen=True)
class TrtCache:
    version: str  # "8601"
    algorithm: str  # "EntropyCalibration2"
    scales: dict[str, float]


def read_trt_cache(path: str | Path) -> TrtCache:
    """Parse a TensorRT calibration cache; a malformed line raises :class:`InputError` naming it."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: calibration cache not found (export with --format onnx-int8 --calib MANIFEST)")
    lines = p.read_text().splitlines()
    if not lines or not lines[0].startswith("TRT-") or lines[0].count("-") < 2:
        raise InputError(
            f"{p}:1: header {lines[0] if lines else ''!r} is not 'TRT-<version>-<algorithm>' "
            "(not a TensorRT calibration cache)"
        )
    _, version, algorithm = lines[0].split("-", 2)
    scales = {}
    for i, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        name, sep, value = line.rpartition(":")
        try:
            if not sep:
                raise ValueError("no ':'")
            scales[name.strip()] = hex_to_scale(value.strip())
        except ValueError as exc:
            raise InputError(f"{p}:{i}: {line!r} is not '<tensor>: <8 hex digits>' ({exc})") from None
    return TrtCache(version, algorithm, scales)


def argmax_agreement(a: np.ndarray, b: np.ndarray, lengths: Iterable[int]) -> float:
    """Share of valid frames where two ``(B, T, C)`` log-prob arrays pick the same class."""
    same = total = 0
    for i, n in enumerate(lengths):
        same += int((a[i, :n].argmax(-1) == b[i, :n].argmax(-1)).sum())
        total += int(n)
    return same / max(total, 1)
