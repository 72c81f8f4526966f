"""``speechtao ner evaluate``: entity-level precision, recall and F1 per type on a text.txt/labels.txt folder."""

from __future__ import annotations


def register(actions) -> None:
    p = actions.add_parser("evaluate", help="entity-level P/R/F1 on a dataset folder")
    p.add_argument("--model", required=True, help="model folder, export folder or .onnx file")
    p.add_argument("--data", required=True, help="folder with text.txt and labels.txt")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-samples", type=int, default=None, help="score only the first N sentences")
    p.add_argument("--out", help="write the full report as JSON here")
    p.set_defaults(func=run)


def run(args) -> int:
    from ...nlp.common import load_model
    from ...nlp.ner import TASK, evaluate, format_entity_report, read_dataset
    from .. import set_threads
    from .._nlp import write_json

    set_threads()
    model = load_model(args.model, TASK)
    result = evaluate(model, read_dataset(args.data, args.max_samples), args.batch_size)
    print(format_entity_report(result))
    print(f"entity F1 {result['f1']:.4f}; tag accuracy {result['tag_accuracy']:.4f}; {result['sentences']} sentences")
    write_json(args.out, result)
    return 0
