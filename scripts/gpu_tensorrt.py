"""Build a TensorRT engine from an exported model and run it next to ONNX Runtime (GPU hosts with tensorrt).

    # on any machine:
    speechtao asr export --model best.pt --format onnx-int8 --calib calib.jsonl --out out/model.int8.onnx
    # on the GPU host (copy out/ there; needs tensorrt, torch with CUDA, onnxruntime, speechtao):
    python scripts/gpu_tensorrt.py --onnx out/model.int8.fp32.onnx --calib out/model.int8.calib \
        --audio tests/fixtures/audio_speech_16k.wav --engine out/model.plan

It builds the engine (INT8 from the calibration cache, FP16 fallback; without --calib FP16 only), runs one
utterance through it, compares the log-probabilities with ONNX Runtime FP32 on the same features (max |diff|
and argmax agreement over the valid frames), times the engine (median of 20) and prints one JSON line. Exit
status 3 when tensorrt or a GPU is missing.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def features(onnx_path: Path, audio: Path, seconds: float):
    """Log-mel features as the exported model expects them, from the settings in its metadata."""
    import torch

    from speechtao.audio import read_audio
    from speechtao.export.onnx_export import read_metadata
    from speechtao.features import AudioToMelSpectrogram, FeatureSpec
    from speechtao.spec import spec_from_dict

    meta = read_metadata(onnx_path)
    spec = spec_from_dict(FeatureSpec, json.loads(meta["features"]))
    x = read_audio(audio, spec.sample_rate)
    if seconds:
        x = np.tile(x, int(np.ceil(seconds * spec.sample_rate / len(x))))[: int(seconds * spec.sample_rate)]
    with torch.no_grad():
        f, n = AudioToMelSpectrogram(spec).eval()(torch.from_numpy(x.astype(np.float32))[None], torch.tensor([len(x)]))
    return f.numpy(), n.numpy().astype(np.int64)


def run_engine(engine_path: Path, feats: np.ndarray, lengths: np.ndarray, repeats: int = 20):
    import tensorrt as trt
    import torch

    from speechtao.export.onnx_export import INPUT_FEATURES, INPUT_LENGTH, OUTPUT_LENGTHS, OUTPUT_LOGPROBS

    logger = trt.Logger(trt.Logger.WARNING)
    engine = trt.Runtime(logger).deserialize_cuda_engine(engine_path.read_bytes())
    ctx = engine.create_execution_context()
    dev = torch.device("cuda")
    inputs = {INPUT_FEATURES: torch.from_numpy(feats).to(dev), INPUT_LENGTH: torch.from_numpy(lengths).to(dev)}
    for name, t in inputs.items():
        ctx.set_input_shape(name, tuple(t.shape))
        ctx.set_tensor_address(name, t.data_ptr())
    outputs = {}
    for name, dtype in ((OUTPUT_LOGPROBS, torch.float32), (OUTPUT_LENGTHS, torch.int64)):
        shape = tuple(ctx.get_tensor_shape(name))
        outputs[name] = torch.empty(shape, dtype=dtype, device=dev)
        ctx.set_tensor_address(name, outputs[name].data_ptr())
    stream = torch.cuda.Stream()
    times = []
    for i in range(repeats + 1):
        torch.cuda.synchronize()
        t = time.perf_counter()
        ok = ctx.execute_async_v3(stream.cuda_stream)
        stream.synchronize()
        if i:
            times.append(time.perf_counter() - t)
        if not ok:
            raise RuntimeError("TensorRT execution failed")
    return outputs[OUTPUT_LOGPROBS].cpu().numpy(), outputs[OUTPUT_LENGTHS].cpu().numpy(), statistics.median(times)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--onnx", required=True, type=Path, help="FP32 ONNX (for INT8: the <stem>.fp32.onnx)")
    ap.add_argument("--calib", type=Path, help="TensorRT calibration cache (<stem>.calib)")
    ap.add_argument("--audio", required=True, type=Path, help="a speech file to run")
    ap.add_argument("--seconds", type=float, default=10.0, help="repeat the audio to this length (0: as is)")
    ap.add_argument("--engine", type=Path, help="where to write the engine (default: beside --onnx, .plan)")
    args = ap.parse_args(argv)

    from speechtao.errors import MissingDependencyError
    from speechtao.export.onnx_export import ort_session
    from speechtao.export.quantize import argmax_agreement
    from speechtao.export.tensorrt import EngineOptions, build_engine

    engine = args.engine or args.onnx.with_suffix(".plan")
    try:
        t = time.perf_counter()
        build_engine(args.onnx, engine, args.calib, EngineOptions(int8=args.calib is not None))
        build_s = time.perf_counter() - t
    except MissingDependencyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    feats, lengths = features(args.onnx, args.audio, args.seconds)
    lp, n, trt_s = run_engine(engine, feats, lengths)
    ref_lp, ref_n = ort_session(args.onnx).run(None, {"audio_signal": feats, "length": lengths})
    valid = int(ref_n[0])
    print(
        json.dumps(
            {
                "engine": str(engine),
                "precision": "int8" if args.calib else "fp16",
                "build_s": round(build_s, 1),
                "audio_s": feats.shape[2] / 100,
                "trt_ms": round(1000 * trt_s, 3),
                "lengths_equal": bool((n == ref_n).all()),
                "max_abs_diff_vs_ort_fp32": float(np.abs(lp[0, :valid] - ref_lp[0, :valid]).max()),
                "argmax_agreement": argmax_agreement(lp, ref_lp, ref_n),
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
