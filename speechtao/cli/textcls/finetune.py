"""``speechtao textcls finetune``: fine-tune an encoder with a pooled classification head."""

from __future__ import annotations

from .. import add_spec_args


def register(actions) -> None:
    p = actions.add_parser("finetune", help="fine-tune text classification (recipes/textcls_finetune.yaml)",
                           description="Writes trainer.out_dir/{best,final}.pt, checkpoints/, metrics.json and the "
                           "model folder trainer.out_dir/model.")
    add_spec_args(p)
    p.add_argument("--resume", action="store_true", help="continue the run in trainer.out_dir")
    p.set_defaults(func=run)


def run(args) -> int:
    from ...nlp.textcls import TextclsFinetuneSpec, finetune
    from ...spec import load_spec
    from .. import set_threads

    set_threads()
    finetune(load_spec(TextclsFinetuneSpec, args.spec, args.overrides), resume=args.resume)
    return 0
