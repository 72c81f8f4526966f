"""ORT FP32 against two static INT8 schemes of the same model, timed back to back on one thread.

    python bench/int8_schemes.py MODEL [MODEL ...] --eval data/domain/test.jsonl --calib data/domain/train.jsonl

Schemes (see speechtao/export/quantize.py for why they differ in speed):

- ``int8 act, all convs``: INT8 symmetric activations, every conv quantized (the export before the change)
- ``uint8 act, ends float``: UINT8 asymmetric activations, first conv and CTC classifier float (the default)

The variants run in interleaved rounds (one call of each per round), so a change of machine load hits all alike;
the median of ``--rounds`` is reported as a real-time factor end to end from the waveform (PyTorch log-mel front
end included) and in milliseconds for the network alone, with each one's speed-up over ORT FP32 and its WER.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from export import waveform  # noqa: E402

from speechtao.asr.checkpoint import LoadedModel, load_model  # noqa: E402

SCHEMES = {
    "int8 act, all convs": dict(activations="int8", float_ends=False),
    "uint8 act, ends float": dict(activations="uint8", float_ends=True),
}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("models", nargs="+", help="checkpoints, .nemo archives or preset names")
    ap.add_argument("--eval", help="manifest for WER (omit: no WER)")
    ap.add_argument("--calib", required=True, help="calibration manifest (in-domain audio, not the --eval set)")
    ap.add_argument("--calib-utterances", type=int, default=64)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--rounds", type=int, default=30)
    args = ap.parse_args(argv)

    from speechtao.asr.evaluate import EvalOptions, evaluate
    from speechtao.export.onnx_export import OnnxCTCModel, export_onnx
    from speechtao.export.quantize import QuantOptions, calibration_features, quantize_model

    torch.set_num_threads(1)
    tmp = Path(tempfile.mkdtemp(prefix="bench-int8-"))
    audio = torch.from_numpy(waveform(args.seconds))[None]
    lengths = torch.tensor([audio.shape[1]])
    for i, ref in enumerate(args.models):
        loaded = load_model(ref)
        pre, sub = loaded.model.preprocessor.eval(), loaded.model.subsampling_factor
        fp32 = export_onnx(loaded, tmp / f"m{i}.onnx")
        items = calibration_features(loaded, args.calib, QuantOptions(max_utterances=args.calib_utterances))
        models = {"ORT FP32": OnnxCTCModel(fp32, pre, sub)}
        for j, (name, kw) in enumerate(SCHEMES.items()):
            path = quantize_model(fp32, tmp / f"m{i}.s{j}.onnx", items, QuantOptions(**kw)).int8_path
            models[f"ORT INT8 ({name})"] = OnnxCTCModel(path, pre, sub)
        e2e: dict[str, list[float]] = {k: [] for k in models}
        net: dict[str, list[float]] = {k: [] for k in models}
        with torch.inference_mode():
            feats, feat_lengths = pre(audio, lengths)
            for m in models.values():  # warm-up
                m(audio, lengths)
            for _ in range(args.rounds):
                for k, m in models.items():
                    t = time.perf_counter()
                    m(audio, lengths)
                    e2e[k].append(time.perf_counter() - t)
                    t = time.perf_counter()
                    m.forward_features(feats, feat_lengths)
                    net[k].append(time.perf_counter() - t)
        base_e, base_n = statistics.median(e2e["ORT FP32"]), statistics.median(net["ORT FP32"])
        print(f"{ref}: {args.seconds:g} s of audio, 1 thread, median of {args.rounds} interleaved rounds")
        print(
            "| variant | RTF end to end | speed-up | network ms | speed-up | size MB |"
            + (" WER |" if args.eval else "")
        )
        print("|---|---|---|---|---|---|" + ("---|" if args.eval else ""))
        for k, m in models.items():
            me, mn = statistics.median(e2e[k]), statistics.median(net[k])
            line = (
                f"| {k} | {me / args.seconds:.5f} | {base_e / me:.2f}x | {1e3 * mn:.2f} | {base_n / mn:.2f}x | "
                f"{m.path.stat().st_size / 1e6:.2f} |"
            )
            if args.eval:
                res = evaluate(LoadedModel(m, loaded.tokenizer, loaded.config), args.eval, EvalOptions(batch_size=8))
                line += f" {100 * res.metrics['wer']:.2f}% |"
            print(line, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
