"""What a bf16 encoder costs and changes in Whisper decoding: float32 against the encoder under bf16 autocast
(``speechtao serve --bf16-encoder``), on the same recordings in the same run.

    SPEECHTAO_THREADS=1 nice -n 10 python bench/whisper_bf16.py [--manifest manifests/realspeech/all.jsonl]
        [--models tiny.en base] [--beam 1]

For each model: CPU seconds of this thread (one PyTorch thread) for decoding every recording of the manifest with
a float32 encoder and with a bf16 encoder (decoder float32 in both), their ratio, and on how many recordings the
two texts are equal. bf16 pays where the CPU computes it natively (avx512_bf16, AMX); elsewhere it is slower.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--manifest", default="manifests/realspeech/all.jsonl")
    ap.add_argument("--models", nargs="+", default=["tiny.en", "base"])
    ap.add_argument("--beam", type=int, default=1, help="beam of the decodes (1: greedy, as interims decode)")
    args = ap.parse_args()

    import torch

    from speechtao.audio import read_audio
    from speechtao.serve.backends import WhisperSeqBackend
    from speechtao.train.precision import cpu_has_native_bf16

    torch.set_num_threads(1)
    rows = [json.loads(line) for line in Path(args.manifest).read_text().splitlines() if line.strip()]
    audios = [read_audio(r["audio_filepath"], 16000) for r in rows]
    print(f"{len(audios)} recordings of {args.manifest}, beam {args.beam}, native bf16: {cpu_has_native_bf16()}")
    for name in args.models:
        backend = WhisperSeqBackend(f"whisper:{name}")
        backend.transcribe(audios[0], args.beam)  # first-call costs
        seconds, texts = {}, {}
        for bf16 in (False, True):
            t0 = time.thread_time()
            texts[bf16] = [backend.transcribe(x, args.beam, bf16=bf16).text for x in audios]
            seconds[bf16] = time.thread_time() - t0
        same = sum(a == b for a, b in zip(texts[False], texts[True]))
        print(
            f"whisper:{name}: float32 {seconds[False]:.1f} s, bf16 encoder {seconds[True]:.1f} s CPU "
            f"({seconds[False] / seconds[True]:.2f}x); same text on {same} of {len(audios)}"
        )
        for a, b in zip(texts[False], texts[True]):
            if a != b:
                print(f"  float32: {a}\n  bf16:    {b}")


if __name__ == "__main__":
    main()
