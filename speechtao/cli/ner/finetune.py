"""``speechtao ner finetune``: fine-tune an encoder with a token classification head for IOB tags."""

from __future__ import annotations

from .._nlp import FINETUNE_DESCRIPTION, add_finetune_args


def register(actions) -> None:
    p = actions.add_parser(
        "finetune", help="fine-tune NER (recipes/ner_finetune.yaml)", description=FINETUNE_DESCRIPTION
    )
    add_finetune_args(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from ...nlp.ner import NerFinetuneSpec, finetune
    from .._nlp import run_finetune

    return run_finetune(args, NerFinetuneSpec, finetune)
