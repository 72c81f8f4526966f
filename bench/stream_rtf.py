"""CPU real-time factor of one model streamed through speechtao's recognizer (the server's decoding), one thread.

    python bench/stream_rtf.py --model exports/model.int8.onnx --manifest manifests/realspeech/all.jsonl \\
        [--settings 160,1200,480 480,960,480 960,480,480]

Each setting (chunk, left context, right context in ms) builds :class:`speechtao.serve.recognizer.Recognizer`
as ``speechtao serve`` does (ONNX Runtime, ``--threads 1``, final pass over each utterance) and streams every
utterance of the manifest in 160 ms pieces, one stream at a time, decoding as soon as a window is ready. Reported:
CPU seconds of this process per second of audio (RTF, reading excluded), WER / CER of the final transcripts
(the scorer of ``speechtao asr evaluate``) and, for comparison in the same run, the RTF of one offline pass per
utterance (``Recognizer.recognize``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from speechtao.asr.metrics import cer, wer  # noqa: E402
from speechtao.audio import read_audio  # noqa: E402
from speechtao.data.manifest import read_manifest  # noqa: E402
from speechtao.serve.recognizer import Recognizer, StreamingOptions  # noqa: E402

SR = 16000


def stream_one(rec: Recognizer, x: np.ndarray) -> str:
    s = rec.create_stream()
    piece = int(0.16 * SR)
    for pos in range(0, len(x), piece):
        s.accept_waveform(SR, x[pos : pos + piece])
        while rec.is_ready(s):
            rec.decode_stream(s)
    s.input_finished()
    while rec.is_ready(s):
        rec.decode_stream(s)
    return " ".join(r.text for r in s.pop_results() if r.is_final).strip()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="ONNX export or checkpoint")
    ap.add_argument("--manifest", required=True)
    ap.add_argument("--settings", nargs="+", default=["160,1200,480", "480,960,480", "960,480,480"])
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    entries = read_manifest(args.manifest)
    audios = [read_audio(e.audio_filepath, SR) for e in entries]
    refs = [e.text for e in entries]
    seconds = sum(len(a) for a in audios) / SR
    print(f"{args.model}; {args.manifest}: {len(entries)} utterances, {seconds:.1f} s; 1 thread")
    print("| setting (chunk/left/right ms) | CPU RTF | WER | CER |\n|---|---|---|---|")
    rec = Recognizer.from_path(args.model, StreamingOptions(), threads=1)
    cpu0 = time.process_time()
    hyps = [" ".join(r.text for r in rec.recognize(a, SR)) for a in audios]
    rtf = (time.process_time() - cpu0) / seconds
    print(
        f"| offline, one pass per utterance | {rtf:.4f} | {100 * wer(refs, hyps):.2f}% | {100 * cer(refs, hyps):.2f}% |"
    )
    for setting in args.settings:
        chunk, left, right = (int(v) for v in setting.split(","))
        opts = StreamingOptions(chunk_ms=chunk, left_context_ms=left, right_context_ms=right)
        rec = Recognizer.from_path(args.model, opts, threads=1)
        stream_one(rec, audios[0])  # warm-up
        cpu0 = time.process_time()
        hyps = [stream_one(rec, a) for a in audios]
        rtf = (time.process_time() - cpu0) / seconds
        print(f"| {chunk}/{left}/{right} | {rtf:.4f} | {100 * wer(refs, hyps):.2f}% | {100 * cer(refs, hyps):.2f}% |")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
