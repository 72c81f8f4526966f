"""``speechtao ner evaluate``: entity-level precision, recall and F1 per type on a text.txt/labels.txt folder."""

from __future__ import annotations

from .._nlp import add_evaluate_args


def register(actions) -> None:
    p = actions.add_parser("evaluate", help="entity-level P/R/F1 on a dataset folder")
    add_evaluate_args(p, "folder with text.txt and labels.txt", "sentences")
    p.set_defaults(func=run)


def run(args) -> int:
    from ...nlp.ner import TASK, evaluate, format_entity_report, read_dataset
    from .._nlp import run_evaluate

    def report(result: dict) -> str:
        return (
            format_entity_report(result) + f"\nentity F1 {result['f1']:.4f}; tag accuracy "
            f"{result['tag_accuracy']:.4f}; {result['sentences']} sentences"
        )

    return run_evaluate(
        args, TASK, lambda model: evaluate(model, read_dataset(args.data, args.max_samples), args.batch_size), report
    )
