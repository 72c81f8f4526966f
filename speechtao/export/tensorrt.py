"""TensorRT engines from an exported ONNX model (GPU hosts only).

``tensorrt`` is imported lazily: on a machine without the ``tensorrt`` Python package or without an NVIDIA GPU,
:func:`build_engine` raises :class:`~speechtao.errors.MissingDependencyError` saying which is missing. With a
calibration cache (``<stem>.calib`` from ``--format onnx-int8``) the engine is built in INT8 from the FP32 graph
the cache belongs to (``<stem>.fp32.onnx``), with FP16 allowed for layers without a scale.

Shapes: one optimization profile over ``audio_signal`` (B, n_mels, T) and ``length`` (B,), from
``(1, n_mels, min_frames)`` through ``(1, n_mels, opt_frames)`` to ``(max_batch, n_mels, max_frames)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError, MissingDependencyError
from .onnx_export import INPUT_FEATURES, INPUT_LENGTH


@dataclass(frozen=True)
class EngineOptions:
    int8: bool = True  # with a calibration cache; otherwise FP16
    fp16: bool = True  # allow FP16 kernels (for layers INT8 does not cover)
    max_batch: int = 8
    min_frames: int = 16  # 0.16 s
    opt_frames: int = 1000  # 10 s
    max_frames: int = 3000  # 30 s
    workspace_mib: int = 2048


def import_tensorrt():
    """``tensorrt`` and a CUDA device, or :class:`MissingDependencyError` naming what is missing."""
    try:
        import tensorrt as trt  # noqa: F401
    except ImportError as exc:
        raise MissingDependencyError(
            f"--format tensorrt needs the tensorrt Python package and an NVIDIA GPU; tensorrt is not importable "
            f"here ({exc}). On a GPU host: pip install tensorrt, then run speechtao asr export --format tensorrt "
            "there (or scripts/gpu_tensorrt.py with the exported ONNX and calibration cache)"
        ) from None
    try:
        import torch

        has_gpu = torch.cuda.is_available()
    except ImportError:
        has_gpu = False
    if not has_gpu:
        raise MissingDependencyError(
            "--format tensorrt needs an NVIDIA GPU with a working CUDA driver; none is "
            "visible here (torch.cuda.is_available() is False)"
        )
    return trt


class _CacheCalibrator:
    """Factory for an ``IInt8EntropyCalibrator2`` that only replays a calibration cache (no batches)."""

    @staticmethod
    def make(trt, cache: bytes):
        class Calibrator(trt.IInt8EntropyCalibrator2):
            def __init__(self):
                super().__init__()

            def get_batch_size(self):
                return 1

            def get_batch(self, names):
                return None  # all scales come from the cache

            def read_calibration_cache(self):
                return cache

            def write_calibration_cache(self, data):
                return None

        return Calibrator()


def build_engine(
    onnx_path: str | Path,
    out: str | Path,
    calib_cache: str | Path | None = None,
    options: EngineOptions = EngineOptions(),
) -> Path:
    """Parse ``onnx_path``, build a serialized engine into ``out`` and return ``out``."""
    trt = import_tensorrt()
    onnx_path, out = Path(onnx_path), Path(out)
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0
    if hasattr(trt.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH"):  # TensorRT 8; the default in 10
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_path.read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise InputError(f"{onnx_path}: TensorRT cannot parse the ONNX graph: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, options.workspace_mib << 20)
    n_mels = network.get_input(0).shape[1]
    profile = builder.create_optimization_profile()
    profile.set_shape(
        INPUT_FEATURES,
        (1, n_mels, options.min_frames),
        (1, n_mels, options.opt_frames),
        (options.max_batch, n_mels, options.max_frames),
    )
    profile.set_shape(INPUT_LENGTH, (1,), (1,), (options.max_batch,))
    config.add_optimization_profile(profile)
    if options.fp16:
        config.set_flag(trt.BuilderFlag.FP16)
    if options.int8 and calib_cache is not None:
        cache = Path(calib_cache).read_bytes()
        config.set_flag(trt.BuilderFlag.INT8)
        config.int8_calibrator = _CacheCalibrator.make(trt, cache)
        config.set_calibration_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise InputError(f"{onnx_path}: TensorRT could not build an engine (see the TensorRT log above)")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(bytes(serialized))
    return out
