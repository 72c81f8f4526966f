"""``speechtao punct evaluate``: per-class reports of both heads on a text.txt/labels.txt folder."""

from __future__ import annotations


def register(actions) -> None:
    p = actions.add_parser("evaluate", help="punctuation and capitalization F1 on a dataset folder")
    p.add_argument("--model", required=True, help="model folder, export folder or .onnx file")
    p.add_argument("--data", required=True, help="folder with text.txt and labels.txt")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-samples", type=int, default=None, help="score only the first N lines")
    p.add_argument("--out", help="write the full report as JSON here")
    p.set_defaults(func=run)


def run(args) -> int:
    from ...nlp.common import load_model
    from ...nlp.punct import TASK, evaluate, format_evaluation, read_dataset
    from .. import set_threads
    from .._nlp import write_json

    set_threads()
    model = load_model(args.model, TASK)
    result = evaluate(model, read_dataset(args.data, args.max_samples), args.batch_size)
    print(format_evaluation(result))
    write_json(args.out, result)
    return 0
