"""``speechtao punct finetune``: fine-tune an encoder with punctuation and capitalization heads."""

from __future__ import annotations

from .. import add_spec_args


def register(actions) -> None:
    p = actions.add_parser("finetune", help="fine-tune punctuation + capitalization (recipes/punct_finetune.yaml)",
                           description="Writes trainer.out_dir/{best,final}.pt, checkpoints/, metrics.json and the "
                           "model folder trainer.out_dir/model.")
    add_spec_args(p)
    p.add_argument("--resume", action="store_true", help="continue the run in trainer.out_dir")
    p.set_defaults(func=run)


def run(args) -> int:
    from ...nlp.punct import PunctFinetuneSpec, finetune
    from ...spec import load_spec
    from .. import set_threads

    set_threads()
    finetune(load_spec(PunctFinetuneSpec, args.spec, args.overrides), resume=args.resume)
    return 0
