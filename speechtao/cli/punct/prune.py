"""``speechtao punct prune``: remove attention heads, FFN neurons and layers by importance, then retrain."""

from __future__ import annotations

from .._nlp import add_prune_args


def register(actions) -> None:
    p = actions.add_parser("prune", help="prune heads/FFN neurons/layers of a punctuation model and retrain it")
    add_prune_args(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from ...nlp import punct
    from .. import set_threads
    from .._nlp import run_prune

    set_threads()

    def recalibrate(model) -> dict:
        # a model fine-tuned with calibrate_capitalization gets its decoding picked again for the pruned weights
        if args.validation and "capit_decoding" in (model.extra.get("punct") or {}):
            return {"capit_calibration": punct.recalibrate(model, args.validation)}
        return {}

    return run_prune(args, punct.TASK, punct.training_task, "f1", recalibrate)
