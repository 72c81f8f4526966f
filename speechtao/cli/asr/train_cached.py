"""``speechtao asr train-cached``: a CTC starter on a mostly frozen Whisper encoder, trained on cached outputs."""

from __future__ import annotations

from .. import add_spec_args

DESCRIPTION = """Train the top transformer layers, final LayerNorm and a CTC head of a Whisper-encoder CTC model
(model.encoder, e.g. whisper_base) on cached outputs of its frozen lower layers (model.frozen_below). The cache
(cache.dir) holds one float16 array per utterance and augmented copy and is reused by later runs. Outputs as
`asr train`: trainer.out_dir/final.pt, best.pt, checkpoints/, spec.yaml, metrics.json; the checkpoints store the
trained part only and rebuild the frozen part from the installed pip package when loaded."""


def register(actions) -> None:
    p = actions.add_parser(
        "train-cached",
        help="train a Whisper-encoder CTC starter on cached lower-encoder outputs (recipes/asr_whisper_base_ctc.yaml)",
        description=DESCRIPTION,
    )
    add_spec_args(p)
    p.add_argument(
        "--resume", action="store_true", help="continue the run in trainer.out_dir from its newest checkpoint"
    )
    p.set_defaults(func=run)


def run(args) -> int:
    from ...asr.whisper_upper import WhisperUpperSpec
    from ...asr.whisper_upper import run as run_training
    from ...spec import load_spec
    from .. import set_threads

    set_threads()
    spec = load_spec(WhisperUpperSpec, args.spec, args.overrides)
    run_training(spec, resume=args.resume, say=lambda line: print(line, flush=True))
    return 0
