"""``speechtao qa finetune``: fine-tune an encoder for extractive QA from a recipe (recipes/qa_finetune.yaml)."""

from __future__ import annotations

from .._nlp import add_finetune_args

DESCRIPTION = """Fine-tune model.encoder (or continue model.init_from) on SQuAD 1.1/2.0 JSON. Writes
trainer.out_dir/model (model.pt, tokenizer files, speechtao.json), best.pt, final.pt, checkpoints/, spec.yaml and
metrics.json. With SQuAD 2.0 data the no-answer threshold that maximizes validation F1 is saved with the model."""


def register(actions) -> None:
    p = actions.add_parser("finetune", help="fine-tune a QA model (recipes/qa_finetune.yaml)", description=DESCRIPTION)
    add_finetune_args(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from ...nlp.qa import QAFinetuneSpec, finetune
    from .._nlp import run_finetune

    return run_finetune(args, QAFinetuneSpec, finetune)
