"""``speechtao textcls evaluate``: accuracy and per-class F1 on a TSV file."""

from __future__ import annotations

from .._nlp import add_evaluate_args


def register(actions) -> None:
    p = actions.add_parser("evaluate", help="accuracy and per-class P/R/F1 on a sentence<TAB>label file")
    add_evaluate_args(p, "TSV file: sentence<TAB>label", "lines")
    p.set_defaults(func=run)


def run(args) -> int:
    from ...nlp.textcls import TASK, evaluate, format_evaluation, read_tsv
    from .._nlp import run_evaluate

    return run_evaluate(
        args,
        TASK,
        lambda model: evaluate(model, read_tsv(args.data, model.labels["label"], args.max_samples), args.batch_size),
        format_evaluation,
    )
