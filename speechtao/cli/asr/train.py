"""``speechtao asr train``: train a CTC model from scratch (a preset or a full model config) from a recipe."""

from __future__ import annotations

from .. import add_spec_args

DESCRIPTION = """Train a QuartzNet/CitriNet CTC model from random weights. Writes trainer.out_dir/final.pt and
best.pt (lowest validation WER), checkpoints/, spec.yaml and metrics.json; prints a line every trainer.log_every
steps: `epoch 3 step 400 loss 0.512 lr 3.0e-04 wer 0.081`. Under torchrun (`torchrun --nproc_per_node=N -m
speechtao asr train ...`) each process takes its share of every batch."""


def register(actions) -> None:
    p = actions.add_parser(
        "train", help="train a CTC model from scratch (recipes/asr_quartznet_train.yaml)", description=DESCRIPTION
    )
    add_spec_args(p)
    p.add_argument(
        "--resume", action="store_true", help="continue the run in trainer.out_dir from its newest checkpoint"
    )
    p.set_defaults(func=run)


def run(args) -> int:
    from ...asr.train import ASRTrainSpec
    from ...asr.train import run as run_training
    from ...spec import load_spec
    from .. import set_threads

    set_threads()
    spec = load_spec(ASRTrainSpec, args.spec, args.overrides)
    run_training(spec, resume=args.resume)
    return 0
