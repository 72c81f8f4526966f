"""``speechtao asr prune --model CKPT (--ratio R | --threshold T) --out CKPT``: remove conv channels.

The result is a smaller dense model whose config records the new widths; ``load_model`` reads it alone. Retrain
it with the fine-tune recipe (``init_from: pruned.pt``) to recover accuracy.
"""

from __future__ import annotations


def register(actions) -> None:
    p = actions.add_parser("prune", help="structured channel pruning into a smaller dense model")
    p.add_argument("--model", required=True, help="a speechtao checkpoint, a .nemo archive or a preset name")
    how = p.add_mutually_exclusive_group(required=True)
    how.add_argument("--ratio", type=float, help="share of each block's channels to remove, e.g. 0.5")
    how.add_argument(
        "--threshold",
        type=float,
        help="keep channels whose norm is >= this fraction of their layer's largest, e.g. 0.3",
    )
    p.add_argument("--granularity", type=int, default=8, help="kept widths are multiples of this (default 8)")
    p.add_argument("--min-channels", type=int, default=16, help="fewest channels a block keeps (default 16)")
    p.add_argument("--out", required=True, help="checkpoint to write")
    p.set_defaults(func=run)


def run(args) -> int:
    from ...asr.checkpoint import load_model, model_payload, save_model
    from ...asr.prune import PruneOptions, prune_model

    opts = PruneOptions(
        ratio=args.ratio, threshold=args.threshold, granularity=args.granularity, min_channels=args.min_channels
    )
    loaded = load_model(args.model)
    result = prune_model(loaded.model, opts)
    extra = dict(loaded.extra or {})
    extra.pop("qat", None)  # input ranges of the unpruned model do not carry over
    extra["pruned"] = {
        "from": str(args.model),
        "ratio": args.ratio,
        "threshold": args.threshold,
        "granularity": args.granularity,
        "min_channels": args.min_channels,
        "widths_before": result.widths_before,
        "widths_after": result.widths_after,
        "params_before": result.params_before,
        "params_after": result.params_after,
    }
    out = save_model(args.out, model_payload(result.model, loaded.tokenizer, loaded.spec, extra))
    print(result.summary())
    print(f"wrote {out} (retrain it: the fine-tune recipe with init_from: {out})")
    return 0
