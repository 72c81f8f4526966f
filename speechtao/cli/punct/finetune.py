"""``speechtao punct finetune``: fine-tune an encoder with punctuation and capitalization heads."""

from __future__ import annotations

from .._nlp import FINETUNE_DESCRIPTION, add_finetune_args


def register(actions) -> None:
    p = actions.add_parser(
        "finetune",
        help="fine-tune punctuation + capitalization (recipes/punct_finetune.yaml)",
        description=FINETUNE_DESCRIPTION,
    )
    add_finetune_args(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from ...nlp.punct import PunctFinetuneSpec, finetune
    from .._nlp import run_finetune

    return run_finetune(args, PunctFinetuneSpec, finetune)
