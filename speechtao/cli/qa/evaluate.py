"""``speechtao qa evaluate``: SQuAD exact match and F1 of a QA model (PyTorch or ONNX) on SQuAD JSON."""

from __future__ import annotations

import sys


def register(actions) -> None:
    p = actions.add_parser(
        "evaluate",
        help="exact match and F1 of a QA model on SQuAD 1.1/2.0 JSON",
        description="Answer every question of a SQuAD file with the model's own no-answer threshold and score it "
        "as the official SQuAD evaluation does. The last line reads: EM x F1 y (N questions).",
    )
    p.add_argument("--model", required=True, help="model folder (model.pt), export folder or .onnx file")
    p.add_argument("--data", required=True, help="SQuAD JSON with gold answers")
    p.add_argument("--out", default=None, metavar="DIR", help="write metrics.json and predictions.json ({id: text})")
    p.add_argument(
        "--min-f1",
        type=float,
        default=None,
        metavar="PERCENT",
        help="exit with status 1 when F1 is below this (percent, e.g. 80)",
    )
    p.add_argument("--batch-size", type=int, default=32, help="windows per forward pass (default 32)")
    p.add_argument("--max-samples", type=int, default=None, help="score only the first N questions")
    p.set_defaults(func=run)


def run(args) -> int:
    import json
    from pathlib import Path

    from ...nlp.qa import QAModel, evaluate, read_examples
    from .. import set_threads

    set_threads()
    qa = QAModel.load(args.model)
    examples = read_examples(args.data, args.max_samples)
    metrics, answers = evaluate(qa, examples, args.batch_size)
    for key in ("has_ans", "no_ans"):
        if f"{key}_total" in metrics:
            print(
                f"{key}: EM {metrics[f'{key}_exact']:.2f} F1 {metrics[f'{key}_f1']:.2f} "
                f"({int(metrics[f'{key}_total'])} questions)"
            )
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
        (out / "predictions.json").write_text(json.dumps(answers, indent=1, ensure_ascii=False) + "\n")
        print(f"wrote {out / 'metrics.json'}, {out / 'predictions.json'}")
    print(
        f"EM {metrics['exact']:.2f} F1 {metrics['f1']:.2f} ({int(metrics['total'])} questions, "
        f"{metrics['seconds']:.1f} s)",
        flush=True,
    )
    if args.min_f1 is not None and metrics["f1"] < args.min_f1:
        print(f"error: F1 {metrics['f1']:.2f} is below --min-f1 {args.min_f1:g}", file=sys.stderr)
        return 1
    return 0
