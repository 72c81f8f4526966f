"""``speechtao asr evaluate``: WER/CER of a model on a manifest, the worst utterances, metrics.json."""

from __future__ import annotations

import sys

from ._model_args import add_model_arguments, open_from_args


def register(actions) -> None:
    p = actions.add_parser(
        "evaluate",
        help="word/character error rates of a model on a manifest",
        description="Decode a manifest with a checkpoint, .nemo, exported ONNX (FP32/INT8) or a Riva server "
        "and score it, the same way for every form. Prints what it loaded, the worst utterances, then as the "
        "last line: WER x% CER y% (N utterances, H hours).",
    )
    add_model_arguments(p)
    p.add_argument("--manifest", required=True, help="NeMo JSON-lines manifest with reference texts")
    p.add_argument(
        "--max-wer",
        type=float,
        default=None,
        metavar="PERCENT",
        help="exit with status 1 when WER is above this (in percent, e.g. 25)",
    )
    p.add_argument("--out", default=None, metavar="DIR", help="write metrics.json, utterances.jsonl, worst.txt")
    p.add_argument(
        "--batch-size",
        type=int,
        default=16,
        help="utterances per forward pass; with --server, requests in flight (default 16)",
    )
    p.add_argument("--worst", type=int, default=10, metavar="K", help="how many worst utterances to list")
    p.set_defaults(func=run)


def run(args) -> int:
    from ...asr.evaluate import EvalOptions, evaluate, format_worst, summary_line, write_outputs
    from .. import set_threads

    set_threads()
    opts = EvalOptions(
        batch_size=args.batch_size,
        device=args.device,
        threads=args.threads,
        worst=args.worst,
        progress=sys.stderr.isatty(),
    )
    model = open_from_args(args)
    print(f"loaded {model.description}", flush=True)
    try:
        result = evaluate(model, args.manifest, opts)
    finally:
        model.close()
    if args.model is not None:
        result.metrics["model"] = args.model
    worst = result.worst(args.worst)
    if worst:
        print(f"worst {len(worst)} of {result.metrics['n']} utterances:\n")
        print(format_worst(worst))
    where = args.server if args.server else args.device
    print(f"rtf {result.metrics['rtf']:.4f} ({result.metrics['seconds']:.1f} s on {where})")
    if args.out:
        write_outputs(result, args.out, args.worst)
        print(f"wrote {args.out}/metrics.json, utterances.jsonl, worst.txt")
    print(summary_line(result.metrics), flush=True)
    if args.max_wer is not None and 100 * result.metrics["wer"] > args.max_wer:
        print(f"error: WER {100 * result.metrics['wer']:.2f}% is above --max-wer {args.max_wer:g}%", file=sys.stderr)
        return 1
    return 0
