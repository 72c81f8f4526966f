"""``speechtao textcls finetune``: fine-tune an encoder with a pooled classification head."""

from __future__ import annotations

from .._nlp import FINETUNE_DESCRIPTION, add_finetune_args


def register(actions) -> None:
    p = actions.add_parser(
        "finetune",
        help="fine-tune text classification (recipes/textcls_finetune.yaml)",
        description=FINETUNE_DESCRIPTION,
    )
    add_finetune_args(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from ...nlp.textcls import TextclsFinetuneSpec, finetune
    from .._nlp import run_finetune

    return run_finetune(args, TextclsFinetuneSpec, finetune)
