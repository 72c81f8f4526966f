"""Whisper encoder-decoder: PyTorch against its ONNX export, FP32 and INT8, on the same files in one run.

    python bench/whisper_onnx.py --manifest manifests/realspeech/all.jsonl --model whisper:tiny.en [--beam 1]

Exports ``--model`` (``whisper:NAME`` or a fine-tuned checkpoint) with ``speechtao.export.whisper`` into
``--work`` (``whisper-onnx`` and ``whisper-onnx-int8`` folders; kept, and reused when present), then scores the
three through :func:`speechtao.asr.evaluate.evaluate` (the scorer of ``speechtao asr evaluate``), one utterance
at a time, one thread each (torch and ONNX Runtime), the same decoding options. Prints WER / CER, the CPU
seconds of each pass (model load, audio reading and scoring included: the same for all three) and their ratio
to PyTorch's, the wall seconds inside the model, the file sizes, and the machine's load.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from speechtao.asr.evaluate import EvalOptions, evaluate  # noqa: E402
from speechtao.asr.whisper_onnx import is_seq_export  # noqa: E402
from speechtao.asr.whisper_transcribe import PREFIX, load_seq_ref  # noqa: E402
from speechtao.export.whisper import WhisperExportOptions, export_whisper_seq  # noqa: E402


def _size_mb(folder: Path) -> float:
    return sum(f.stat().st_size for f in folder.glob("*.onnx")) / 1e6


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--manifest", required=True)
    ap.add_argument("--model", default="whisper:tiny.en", help="whisper:NAME or a fine-tuned checkpoint")
    ap.add_argument("--beam", type=int, default=1, help="1: greedy (default)")
    ap.add_argument("--work", default="results/bench_whisper_onnx", help="folder for the exports")
    args = ap.parse_args()
    torch.set_num_threads(1)
    ref = args.model if args.model.startswith(PREFIX) else PREFIX + args.model
    work = Path(args.work)
    folders = {"fp32": work / "whisper-onnx", "int8": work / "whisper-onnx-int8"}
    model = None
    for precision, folder in folders.items():
        if not is_seq_export(folder):
            model = model or load_seq_ref(ref).model
            start = time.perf_counter()
            _, check = export_whisper_seq(model, folder, WhisperExportOptions(int8=precision == "int8"), ref)
            print(
                f"exported {folder} in {time.perf_counter() - start:.0f} s; vs PyTorch: max |logit diff| "
                f"{check.max_logit_diff:.3g}, greedy tokens {'equal' if check.same_tokens else 'differ'}"
            )
    print(f"{args.manifest}; {args.model}; beam {args.beam}; 1 thread; load before: {os.getloadavg()[0]:.2f}")
    print("| runtime | WER | CER | CPU s | model wall s | CPU vs PyTorch | ONNX files |\n|---|---|---|---|---|---|---|")
    base = None
    for label, source in (
        ("PyTorch fp32", ref),
        ("ONNX Runtime FP32", f"{PREFIX}{folders['fp32']}"),
        ("ONNX Runtime INT8", f"{PREFIX}{folders['int8']}"),
    ):
        cpu = time.process_time()
        m = evaluate(f"{source}:beam={args.beam}", args.manifest, EvalOptions(batch_size=1, threads=1)).metrics
        cpu = time.process_time() - cpu  # CPU seconds of this process: less sensitive to other jobs than wall time
        base = base or cpu
        wall = m["rtf_model"] * m["hours"] * 3600
        size = "" if label.startswith("PyTorch") else f"{_size_mb(folders[label.split()[-1].lower()]):.0f} MB"
        print(
            f"| {label} | {100 * m['wer']:.2f}% | {100 * m['cer']:.2f}% | {cpu:.1f} | {wall:.1f} | {cpu / base:.2f}x "
            f"| {size} |"
        )
        sys.stdout.flush()
    print(f"load after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
