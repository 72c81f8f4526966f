"""``speechtao qa finetune``: fine-tune an encoder for extractive QA from a recipe (recipes/qa_finetune.yaml)."""

from __future__ import annotations

from .. import add_spec_args

DESCRIPTION = """Fine-tune model.encoder (or continue model.init_from) on SQuAD 1.1/2.0 JSON. Writes
trainer.out_dir/model (model.pt, tokenizer files, speechtao.json), best.pt, final.pt, checkpoints/, spec.yaml and
metrics.json. With SQuAD 2.0 data the no-answer threshold that maximizes validation F1 is saved with the model."""


def register(actions) -> None:
    p = actions.add_parser("finetune", help="fine-tune a QA model (recipes/qa_finetune.yaml)", description=DESCRIPTION)
    add_spec_args(p)
    p.add_argument("--resume", action="store_true", help="continue the run in trainer.out_dir from its newest checkpoint")
    p.set_defaults(func=run)


def run(args) -> int:
    from ...nlp.qa import QAFinetuneSpec, finetune
    from ...spec import load_spec
    from .. import set_threads

    set_threads()
    spec = load_spec(QAFinetuneSpec, args.spec, args.overrides)
    finetune(spec, resume=args.resume)
    return 0
