"""``speechtao qa prune``: remove attention heads, FFN neurons or top layers by importance, then retrain."""

from __future__ import annotations


def register(actions) -> None:
    p = actions.add_parser(
        "prune",
        help="prune a QA model (heads, FFN neurons, layers) and retrain it",
        description="Score every attention head and FFN neuron by first-order importance on training batches, "
        "keep the most important fractions (or drop top layers), retrain for --retrain-steps on the "
        "training data and write a model folder with prune_report.json. Validation F1 picks the "
        "retrained weights and the no-answer threshold.",
    )
    p.add_argument("--model", required=True, help="model folder written by `speechtao qa finetune`")
    p.add_argument("--train", required=True, help="SQuAD JSON for importance scores and retraining")
    p.add_argument("--validation", required=True, help="SQuAD JSON for picking the retrained weights")
    p.add_argument("--out", required=True, help="output model folder")
    p.add_argument("--keep-heads", type=float, default=0.5, help="fraction of attention heads kept (default 0.5)")
    p.add_argument("--keep-ffn", type=float, default=0.5, help="fraction of FFN neurons kept per layer (default 0.5)")
    p.add_argument("--drop-layers", type=int, default=0, help="top transformer layers removed (default 0)")
    p.add_argument("--score-batches", type=int, default=16, help="training batches for importance (default 16)")
    p.add_argument("--retrain-steps", type=int, default=300, help="optimizer steps of retraining (0: none)")
    p.add_argument("--lr", type=float, default=5e-5, help="retraining peak learning rate")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--max-train-samples", type=int, default=None)
    p.add_argument("--max-val-samples", type=int, default=None)
    p.set_defaults(func=run)


def run(args) -> int:
    from ...errors import InputError
    from ...nlp.prune import PruneOptions
    from ...nlp.qa import QAModel, prune
    from .. import set_threads

    set_threads()
    try:
        options = PruneOptions(args.keep_heads, args.keep_ffn, args.drop_layers, args.score_batches)
    except ValueError as exc:
        raise InputError(f"prune options: {exc}") from None
    report = prune(
        QAModel.load(args.model),
        args.train,
        args.validation,
        args.out,
        options,
        args.retrain_steps,
        args.lr,
        args.batch_size,
        args.max_train_samples,
        args.max_val_samples,
    )
    ev = report.get("eval") or {}
    if ev:
        print(f"pruned model: EM {ev['exact']:.2f} F1 {ev['f1']:.2f} on {args.validation}")
    print(f"wrote {args.out} ({report['parameters_after']:,} parameters, was {report['parameters_before']:,})")
    return 0
