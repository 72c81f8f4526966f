"""Whisper encoder-decoder: speechtao's PyTorch port against faster-whisper (CTranslate2) on the same files.

    python bench/whisper_seq.py --manifest manifests/realspeech/all.jsonl --models tiny.en base [--beam 5]

For each model, one run of each system over the manifest, one thread each (``SPEECHTAO_THREADS`` /
``cpu_threads=1``), one utterance at a time, no timestamps, English: speechtao through
:func:`speechtao.asr.evaluate.evaluate` with ``whisper:NAME:beam=N`` (the scorer of ``speechtao asr evaluate``),
faster-whisper ``WhisperModel(compute_type=int8 | float32).transcribe`` with the same beam, its words scored by
the same :func:`speechtao.asr.metrics.utterance_report`. Prints WER / CER and the real-time factor (wall seconds
per audio second, audio reading included) of each, and the speed ratio measured in the same run.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from speechtao.asr.evaluate import EvalOptions, evaluate  # noqa: E402
from speechtao.asr.metrics import utterance_report  # noqa: E402
from speechtao.asr.whisper import whisper_model_dir  # noqa: E402
from speechtao.audio import read_audio  # noqa: E402
from speechtao.data.manifest import read_manifest  # noqa: E402


def faster_whisper_row(name: str, entries, beam: int, compute_type: str) -> dict:
    from faster_whisper import WhisperModel

    model = WhisperModel(str(whisper_model_dir(name)), device="cpu", compute_type=compute_type, cpu_threads=1)
    words = errors = chars = char_errors = 0
    seconds = 0.0
    start = time.perf_counter()
    for e in entries:
        audio = read_audio(e.audio_filepath, 16000, offset=e.offset, duration=e.duration if e.segment else None)
        seconds += len(audio) / 16000
        segments, _ = model.transcribe(
            audio, beam_size=beam, language="en", without_timestamps=True, condition_on_previous_text=False
        )
        hyp = " ".join(s.text for s in segments)
        rep = utterance_report(e.text, hyp)
        words += rep["ref_words"]
        errors += rep["errors"]
        chars += rep["ref_chars"]
        char_errors += rep["char_errors"]
    wall = time.perf_counter() - start
    return {"wer": errors / max(words, 1), "cer": char_errors / max(chars, 1), "rtf": wall / seconds}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--manifest", required=True)
    ap.add_argument("--models", nargs="+", default=["tiny.en", "base"])
    ap.add_argument("--beam", type=int, default=5)
    ap.add_argument("--compute-types", nargs="+", default=["int8"], help="faster-whisper compute types")
    args = ap.parse_args()
    torch.set_num_threads(1)
    entries = read_manifest(args.manifest)
    print(f"{args.manifest}: {len(entries)} utterances; beam {args.beam}; 1 thread")
    print("| model | system | WER | CER | RTF |\n|---|---|---|---|---|")
    for name in args.models:
        res = evaluate(f"whisper:{name}:beam={args.beam}", args.manifest, EvalOptions(batch_size=1))
        m = res.metrics
        print(f"| {name} | speechtao PyTorch fp32 | {100 * m['wer']:.2f}% | {100 * m['cer']:.2f}% | {m['rtf']:.3f} |")
        for ct in args.compute_types:
            row = faster_whisper_row(name, entries, args.beam, ct)
            print(
                f"| {name} | faster-whisper {ct} | {100 * row['wer']:.2f}% | {100 * row['cer']:.2f}% | "
                f"{row['rtf']:.3f} | (speechtao / faster-whisper time: {m['rtf'] / row['rtf']:.2f}x)"
            )
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
