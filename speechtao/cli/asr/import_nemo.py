"""``speechtao asr import-nemo X.nemo --out CKPT``: convert a NeMo CTC archive into a speechtao checkpoint."""

from __future__ import annotations


def register(actions) -> None:
    p = actions.add_parser(
        "import-nemo", help="convert a NeMo QuartzNet/CitriNet .nemo archive to a speechtao checkpoint"
    )
    p.add_argument("nemo", help="the .nemo archive (NeMo itself is not needed)")
    p.add_argument("--out", required=True, help="checkpoint file to write")
    p.set_defaults(func=run)


def run(args) -> int:
    from ...asr.checkpoint import model_payload, save_model
    from ...asr.models import parameter_counts
    from ...asr.nemo_io import import_nemo

    loaded = import_nemo(args.nemo)
    out = save_model(args.out, model_payload(loaded.model, loaded.tokenizer, extra=loaded.extra))
    n = parameter_counts(loaded.model)["total"]
    kind = loaded.tokenizer.to_dict()["type"]
    print(
        f"wrote {out}: {loaded.config.family}, {n:,} parameters, {loaded.tokenizer.vocab_size}-token {kind} "
        f"vocabulary, {loaded.config.subsampling_factor}x subsampling"
    )
    return 0
