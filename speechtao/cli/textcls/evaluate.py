"""``speechtao textcls evaluate``: accuracy and per-class F1 on a TSV file."""

from __future__ import annotations


def register(actions) -> None:
    p = actions.add_parser("evaluate", help="accuracy and per-class P/R/F1 on a sentence<TAB>label file")
    p.add_argument("--model", required=True, help="model folder, export folder or .onnx file")
    p.add_argument("--data", required=True, help="TSV file: sentence<TAB>label")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-samples", type=int, default=None, help="score only the first N lines")
    p.add_argument("--out", help="write the full report as JSON here")
    p.set_defaults(func=run)


def run(args) -> int:
    from ...nlp.common import load_model
    from ...nlp.textcls import TASK, evaluate, format_evaluation, read_tsv
    from .. import set_threads
    from .._nlp import write_json

    set_threads()
    model = load_model(args.model, TASK)
    result = evaluate(model, read_tsv(args.data, model.labels["label"], args.max_samples), args.batch_size)
    print(format_evaluation(result))
    write_json(args.out, result)
    return 0
