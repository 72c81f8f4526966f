"""Greedy against LM beam-search decoding of one model on one manifest: WER, CER and the evaluation's RTF, in one
run, alternating the two so that both see the same machine load.

    python bench/lm_decode.py --model results/finetune_asr/export/model.int8.onnx --manifest test.jsonl \
        --lm results/finetune_asr/export/lm [--repeats 3] [--threads 1]

Each repeat evaluates greedily, then with the LM (``speechtao.asr.evaluate.evaluate``: audio reading, the
model and decoding, as ``speechtao asr evaluate`` times them). Prints one row per decoding with the median RTF
and, last, the relative WER reduction and the RTF the LM adds (median LM RTF / median greedy RTF - 1).
"""

from __future__ import annotations

import argparse
import os
import statistics


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="checkpoint, .nemo, ONNX file or preset")
    ap.add_argument("--manifest", required=True)
    ap.add_argument("--lm", required=True, help="LM folder (speechtao lm build)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from speechtao.asr.backends import open_model
    from speechtao.asr.evaluate import EvalOptions, evaluate
    from speechtao.lm.decode import LMDecoder

    backend = open_model(args.model, threads=args.threads)
    decoder = LMDecoder(args.lm, backend.tokenizer)
    runs: dict[str, list[dict]] = {"greedy": [], "lm": []}
    for _ in range(args.repeats):
        for name in ("greedy", "lm"):
            backend.decoder = decoder if name == "lm" else None
            runs[name].append(evaluate(backend, args.manifest, EvalOptions(threads=args.threads)).metrics)
    backend.close()
    rtf = {k: statistics.median(m["rtf"] for m in v) for k, v in runs.items()}
    spec = decoder.spec
    print(f"model {args.model}; LM {args.lm} (alpha {spec.alpha:g}, beta {spec.beta:g}, beam {spec.beam_size})")
    print(f"load {os.getloadavg()[0]:.2f}; {args.repeats} alternating runs each; RTF median of all")
    print("| decoding | WER | CER | RTF |\n|---|---|---|---|")
    for k, v in runs.items():
        print(f"| {k} | {100 * v[0]['wer']:.2f}% | {100 * v[0]['cer']:.2f}% | {rtf[k]:.4f} |")
    wg, wl = runs["greedy"][0]["wer"], runs["lm"][0]["wer"]
    print(
        f"relative WER reduction {100 * (1 - wl / wg):.1f}%; the LM adds {100 * (rtf['lm'] / rtf['greedy'] - 1):.1f}% RTF"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
