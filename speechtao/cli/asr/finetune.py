"""``speechtao asr finetune``: adapt a pretrained model (checkpoint, .nemo or preset) to new data from a recipe."""

from __future__ import annotations

from .. import add_spec_args

DESCRIPTION = """Fine-tune from init_from (a speechtao checkpoint, a .nemo archive or a preset name). A tokenizer
other than `pretrained` replaces only the decoder; freeze_encoder trains the decoder and the encoder's BatchNorm
and SE layers. init_from whisper:NAME (or a checkpoint of such a run) fine-tunes a Whisper encoder-decoder with
token cross-entropy (recipes/asr_whisper_seq_finetune.yaml). Outputs as `asr train`: trainer.out_dir/final.pt,
best.pt, checkpoints/, spec.yaml, metrics.json."""


def register(actions) -> None:
    p = actions.add_parser(
        "finetune", help="fine-tune a pretrained model (recipes/asr_quartznet_finetune.yaml)", description=DESCRIPTION
    )
    add_spec_args(p)
    p.add_argument(
        "--resume", action="store_true", help="continue the run in trainer.out_dir from its newest checkpoint"
    )
    p.set_defaults(func=run)


def run(args) -> int:
    from ...asr import whisper_train
    from ...asr.train import run as run_training
    from .. import set_threads

    set_threads()
    spec = whisper_train.load_finetune_spec(args.spec, args.overrides)  # CTC or Whisper encoder-decoder
    if isinstance(spec, whisper_train.WhisperSeqFinetuneSpec):
        whisper_train.run(spec, resume=args.resume)
    else:
        run_training(spec, resume=args.resume)
    return 0
