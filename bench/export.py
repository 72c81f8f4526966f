"""Size, speed and accuracy of one model across runtimes: PyTorch, ONNX Runtime FP32/INT8 (PTQ and QAT ranges),
a pruned copy, and the peers NeMo (same weights through a .nemo) and sherpa-onnx (same ONNX file).

    python bench/export.py --model quartznet_15x5 [--eval test.jsonl] [--calib calib.jsonl] [--threads 1 2]

Every row is timed end to end from a 16 kHz waveform of ``--seconds`` (features included; sherpa-onnx computes
its own features) and reports the median of ``--repeats`` runs after one warm-up as a real-time factor (wall
seconds / audio seconds); rows that run the network on features also report it without the feature front end
("network only": for a small model the PyTorch log-mel front end costs as much as the FP32 network). WER comes
from :func:`speechtao.asr.evaluate.evaluate` (the same batching, decoding and normalization as
``speechtao asr evaluate``) on ``--eval``. A preset name gives random weights: speed figures
hold (they do not depend on the weights) but WER is meaningless, and the table says so.

The QAT row: with ``--qat-model`` (a checkpoint of ``speechtao asr finetune ... qat.enabled=true``) its learned ranges;
otherwise the ranges the QAT observers record over the calibration audio with no training steps.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from speechtao.asr.checkpoint import LoadedModel, load_model  # noqa: E402
from speechtao.asr.models import PRESETS, parameter_counts  # noqa: E402

SPEECH = ROOT / "tests" / "fixtures" / "audio_speech_16k.wav"


def waveform(seconds: float, sr: int = 16000) -> np.ndarray:
    """The fixture's speech repeated to ``seconds`` (real speech, so activations look like real inference)."""
    from speechtao.audio import read_audio

    x = read_audio(SPEECH, sr)
    reps = int(np.ceil(seconds * sr / len(x)))
    return np.tile(x, reps)[: int(seconds * sr)].astype(np.float32)


def default_calib(folder: Path) -> Path:
    p = folder / "calib.jsonl"
    lines = [{"audio_filepath": str(SPEECH), "duration": 2.548, "text": "x"}]
    lines += [{"audio_filepath": str(SPEECH), "offset": o, "duration": 1.2, "text": "x"} for o in (0.2, 0.7, 1.2)]
    p.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return p


def time_it(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def state_bytes(model: torch.nn.Module) -> int:
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    return buf.tell()


class NemoRunner(torch.nn.Module):
    """NeMo's EncDecCTCModel behind speechtao's call signature (for timing and for evaluate())."""

    def __init__(self, nemo_model, subsampling_factor: int):
        super().__init__()
        self.nemo_model = nemo_model.eval()
        self.subsampling_factor = subsampling_factor

    def forward(self, audio, lengths):
        log_probs, enc_len, _ = self.nemo_model.forward(input_signal=audio, input_signal_length=lengths)
        return log_probs, enc_len


class NemoOnnxRunner(torch.nn.Module):
    """NeMo's own ONNX export (``ASRModel.export``), fed our features. Its graph may lack the ``length`` input
    (QuartzNet: masks off) and the lengths output; lengths are then ceil(frames / subsampling)."""

    def __init__(self, path: Path, preprocessor, subsampling_factor: int, threads: int = 1):
        super().__init__()
        from speechtao.export.onnx_export import ort_session

        self.path, self.preprocessor, self.subsampling_factor = path, preprocessor.eval(), subsampling_factor
        self.session = ort_session(path, threads)
        self.inputs = [i.name for i in self.session.get_inputs()]

    def forward(self, audio, lengths):
        feats, n = self.preprocessor(audio, lengths)
        feed = {self.inputs[0]: feats.numpy()}
        if len(self.inputs) > 1:
            feed[self.inputs[1]] = n.numpy().astype(np.int64)
        out = self.session.run(None, feed)
        lp = torch.from_numpy(out[0])
        enc = torch.from_numpy(out[1]) if len(out) > 1 else -(-n // self.subsampling_factor)
        return lp, enc


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="quartznet_15x5", help="checkpoint, .nemo or preset (random weights)")
    ap.add_argument("--eval", help="manifest for WER (omit: no WER column)")
    ap.add_argument("--calib", help="calibration manifest (default: --eval, else the test fixture's speech)")
    ap.add_argument("--calib-method", default="entropy", choices=["minmax", "entropy", "percentile"])
    ap.add_argument("--qat-model", help="a QAT fine-tuned checkpoint for the QAT row")
    ap.add_argument(
        "--int8-activations",
        default="uint8",
        choices=["uint8", "int8"],
        help="INT8 rows: activation type (int8: symmetric, where ORT leaves many convs float)",
    )
    ap.add_argument(
        "--int8-all-convs",
        action="store_true",
        help="INT8 rows: quantize the first and last conv too (default: they stay float)",
    )
    ap.add_argument("--prune-ratio", type=float, default=0.5)
    ap.add_argument(
        "--pruned-model",
        help="a pruned (and retrained) checkpoint for the pruned rows; default: --model "
        "pruned by --prune-ratio here, without retraining",
    )
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--no-nemo", action="store_true")
    ap.add_argument("--no-sherpa", action="store_true")
    ap.add_argument("--out", help="also write the table (markdown) and rows (JSON) here (.md and .json)")
    args = ap.parse_args(argv)

    from speechtao.asr.evaluate import EvalOptions, evaluate
    from speechtao.asr.prune import PruneOptions, prune_model
    from speechtao.export.onnx_export import OnnxCTCModel, export_onnx
    from speechtao.export.qat import observe_ranges, prepare_qat, qat_payload, range_overrides_for, strip_qat
    from speechtao.export.quantize import QuantOptions, calibration_features, quantize_model

    random_weights = str(args.model) in PRESETS and not Path(args.model).exists()
    loaded = load_model(args.model)
    tmp = Path(tempfile.mkdtemp(prefix="bench-export-"))
    calib = Path(args.calib or args.eval or default_calib(tmp))
    from speechtao.export.asr import int8_op_types

    qopts = QuantOptions(
        method=args.calib_method,
        activations=args.int8_activations,
        float_ends=not args.int8_all_convs,
        op_types=int8_op_types(loaded),
    )  # Whisper: MatMuls too
    audio = torch.from_numpy(waveform(args.seconds))[None]
    lengths = torch.tensor([audio.shape[1]])
    with torch.inference_mode():
        feats, feat_lengths = loaded.model.preprocessor.eval()(audio, lengths)
    rows: list[dict] = []

    def add(name: str, model: torch.nn.Module, params: int, size: int, note: str = "") -> None:
        row = {"variant": name, "params": params, "size_mb": size / 1e6, "note": note}
        for t in args.threads:
            torch.set_num_threads(t)
            runner = model
            if isinstance(model, (OnnxCTCModel, NemoOnnxRunner)):
                runner = type(model)(model.path, model.preprocessor, model.subsampling_factor, threads=t)

            def run(runner=runner):
                with torch.inference_mode():
                    runner(audio, lengths)

            row[f"rtf_{t}t"] = time_it(run, args.repeats) / args.seconds
            if hasattr(runner, "forward_features"):  # the network alone, on precomputed features

                def net(runner=runner):
                    with torch.inference_mode():
                        runner.forward_features(feats, feat_lengths)

                row[f"net_{t}t"] = time_it(net, args.repeats) / args.seconds
        if args.eval:
            torch.set_num_threads(max(args.threads))
            res = evaluate(LoadedModel(model, loaded.tokenizer, loaded.config), args.eval, EvalOptions(batch_size=8))
            row["wer"] = res.metrics["wer"]
        rows.append(row)
        print(json.dumps(row), flush=True)

    def onnx_rows(tag: str, src: LoadedModel, qat_src: LoadedModel | None) -> None:
        params = parameter_counts(src.model)["total"]
        add(f"PyTorch FP32{tag}", src.model, params, state_bytes(src.model))
        fp32 = export_onnx(src, tmp / f"model{tag.strip()}.onnx")
        pre = src.model.preprocessor
        sub = src.model.subsampling_factor
        add(f"ORT FP32{tag}", OnnxCTCModel(fp32, pre, sub), params, fp32.stat().st_size)
        items = calibration_features(src, calib, qopts)
        r = quantize_model(fp32, tmp / f"model{tag.strip()}.int8.onnx", items, qopts)
        add(
            f"ORT INT8 PTQ{tag}",
            OnnxCTCModel(r.int8_path, pre, sub),
            params,
            r.int8_path.stat().st_size,
            f"{args.calib_method}, {len(items)} utts",
        )
        if qat_src is not None:
            fp32q = export_onnx(qat_src, tmp / f"qat{tag.strip()}.onnx")
            rq = quantize_model(
                fp32q, tmp / f"qat{tag.strip()}.int8.onnx", items, qopts, range_overrides=range_overrides_for(qat_src)
            )
            add(
                f"ORT INT8 QAT{tag}",
                OnnxCTCModel(rq.int8_path, pre, sub),
                params,
                rq.int8_path.stat().st_size,
                f"{len(rq.overridden)} conv-input ranges from QAT"
                + ("" if args.qat_model else " (observed, 0 training steps)"),
            )
        return fp32

    # QAT source: a fine-tuned checkpoint, or ranges observed on the calibration audio.
    if args.qat_model:
        qat_src = load_model(args.qat_model)
    else:
        qat_src = LoadedModel(_clone(loaded.model), loaded.tokenizer, loaded.config, extra={})
        prepare_qat(qat_src.model)
        observe_ranges(qat_src.model, calibration_features(qat_src, calib, qopts))
        qat_src.extra = qat_payload({"extra": qat_src.extra}, qat_src.model)["extra"]
        strip_qat(qat_src.model)
    fp32_path = onnx_rows("", loaded, qat_src)

    if args.pruned_model:
        ploaded = load_model(args.pruned_model)
        if ploaded.tokenizer.vocab_size != loaded.tokenizer.vocab_size:
            ap.error(
                f"--pruned-model {args.pruned_model}: its vocabulary ({ploaded.tokenizer.vocab_size} tokens) is "
                f"not --model's ({loaded.tokenizer.vocab_size}); give a model pruned from --model"
            )
        onnx_rows(" pruned (retrained)", ploaded, None)
    else:
        pruned = prune_model(loaded.model, PruneOptions(ratio=args.prune_ratio))
        ploaded = LoadedModel(pruned.model, loaded.tokenizer, pruned.config)
        onnx_rows(f" pruned {args.prune_ratio:g}", ploaded, None)

    if not args.no_nemo:
        try:
            from nemo.collections.asr.models import ASRModel
        except ImportError as exc:
            print(f"NeMo row skipped: {exc}", file=sys.stderr)
        else:
            from speechtao.asr.nemo_io import export_nemo

            path = export_nemo(loaded, tmp / "model.nemo")
            nm = ASRModel.restore_from(str(path), map_location="cpu")
            nm.preprocessor.featurizer.dither = 0.0
            add(
                "NeMo PyTorch (same weights)",
                NemoRunner(nm, loaded.model.subsampling_factor),
                sum(p.numel() for p in nm.encoder.parameters()) + sum(p.numel() for p in nm.decoder.parameters()),
                path.stat().st_size,
            )
            try:
                nemo_onnx = tmp / "nemo_export.onnx"
                nm.export(str(nemo_onnx))
            except Exception as exc:  # a peer's exporter: report and go on
                print(f"NeMo ONNX row skipped: {type(exc).__name__}: {exc}", file=sys.stderr)
            else:
                runner = NemoOnnxRunner(nemo_onnx, loaded.model.preprocessor, loaded.model.subsampling_factor)
                add(
                    "ORT FP32 of NeMo's export",
                    runner,
                    rows[0]["params"],
                    nemo_onnx.stat().st_size,
                    f"inputs {runner.inputs}",
                )

    if not args.no_sherpa:
        try:
            import sherpa_onnx
        except ImportError as exc:
            print(f"sherpa-onnx row skipped: {exc}", file=sys.stderr)
        else:
            for label, path in (("FP32", fp32_path), ("INT8", tmp / "model.int8.onnx")):
                row = {
                    "variant": f"sherpa-onnx {label} (same ONNX)",
                    "params": rows[0]["params"],
                    "size_mb": path.stat().st_size / 1e6,
                    "note": "own features: 25 ms windows",
                }
                for t in args.threads:
                    rec = sherpa_onnx.OfflineRecognizer.from_nemo_ctc(
                        model=str(path),
                        tokens=str(path.with_name("tokens.txt")),
                        num_threads=t,
                        sample_rate=16000,
                        feature_dim=loaded.config.feat_in,
                        decoding_method="greedy_search",
                    )

                    def run(rec=rec):
                        s = rec.create_stream()
                        s.accept_waveform(16000, audio[0].numpy())
                        rec.decode_stream(s)
                        return s.result.text

                    row[f"rtf_{t}t"] = time_it(run, args.repeats) / args.seconds
                if args.eval:
                    row["wer"] = sherpa_wer(rec, args.eval)
                rows.append(row)
                print(json.dumps(row), flush=True)

    table = format_table(rows, args, random_weights)
    print(table)
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.with_suffix(".md").write_text(table + "\n")
        out.with_suffix(".json").write_text(json.dumps(rows, indent=1) + "\n")
    return 0


def sherpa_wer(rec, manifest: str) -> float:
    """Corpus WER of a sherpa-onnx recognizer, scored like ``speechtao asr evaluate`` (normalized both sides)."""
    from speechtao.asr.metrics import wer
    from speechtao.audio import read_audio
    from speechtao.data.manifest import read_manifest

    refs, hyps = [], []
    for e in read_manifest(manifest):
        s = rec.create_stream()
        s.accept_waveform(16000, read_audio(e.audio_filepath, 16000, e.offset, e.duration if e.segment else None))
        rec.decode_stream(s)
        refs.append(e.text)
        hyps.append(s.result.text)
    return wer(refs, hyps)


def _clone(model: torch.nn.Module) -> torch.nn.Module:
    import copy

    return copy.deepcopy(model)


def _rtf(x: float) -> str:
    return f"{x:.5f}" if x < 0.01 else f"{x:.4f}"


def format_table(rows: list[dict], args, random_weights: bool) -> str:
    cols = ["variant", "params", "size MB"] + [f"RTF {t} thr (network only)" for t in args.threads]
    cols += ["WER"] if args.eval else []
    lines = [
        f"model {args.model}{' (random weights: WER meaningless)' if random_weights else ''}; "
        f"{args.seconds:g} s of audio, median of {args.repeats}; torch {torch.__version__}; INT8: "
        f"{args.int8_activations} activations, {'all convs' if args.int8_all_convs else 'first/last conv float'}",
        "| " + " | ".join(cols) + " | note |",
        "|" + "---|" * (len(cols) + 1),
    ]
    for r in rows:
        cells = [r["variant"], f"{r['params']:,}", f"{r['size_mb']:.1f}"]
        cells += [
            _rtf(r[f"rtf_{t}t"]) + (f" ({_rtf(r[f'net_{t}t'])})" if f"net_{t}t" in r else "") for t in args.threads
        ]
        if args.eval:
            cells.append(f"{100 * r['wer']:.2f}%" if "wer" in r else "-")
        lines.append("| " + " | ".join(cells) + f" | {r.get('note', '')} |")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
