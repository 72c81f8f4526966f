"""``speechtao ner prune``: remove attention heads, FFN neurons and layers by importance, then retrain."""

from __future__ import annotations

from .._nlp import add_prune_args


def register(actions) -> None:
    p = actions.add_parser("prune", help="prune heads/FFN neurons/layers of an NER model and retrain it")
    add_prune_args(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from ...nlp import ner
    from .. import set_threads
    from .._nlp import run_prune

    set_threads()
    return run_prune(args, ner.TASK, ner.training_task, "f1")
