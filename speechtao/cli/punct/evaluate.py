"""``speechtao punct evaluate``: per-class reports of both heads on a text.txt/labels.txt folder."""

from __future__ import annotations

from .._nlp import add_evaluate_args


def register(actions) -> None:
    p = actions.add_parser("evaluate", help="punctuation and capitalization F1 on a dataset folder")
    add_evaluate_args(p, "folder with text.txt and labels.txt", "lines")
    p.set_defaults(func=run)


def run(args) -> int:
    from ...nlp.punct import TASK, evaluate, format_evaluation, read_dataset
    from .._nlp import run_evaluate

    return run_evaluate(
        args,
        TASK,
        lambda model: evaluate(model, read_dataset(args.data, args.max_samples), args.batch_size),
        format_evaluation,
    )
