"""Arguments and actions that the NLP command groups (punct, ner, textcls, qa) share: finetune, evaluate,
infer's text input, prune and export. Each group's modules call these with their task's functions."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

FINETUNE_DESCRIPTION = (
    "Writes trainer.out_dir/{best,final}.pt, checkpoints/, metrics.json and the model folder trainer.out_dir/model."
)


def add_finetune_args(p: argparse.ArgumentParser) -> None:
    from . import add_spec_args

    add_spec_args(p)
    p.add_argument(
        "--resume", action="store_true", help="continue the run in trainer.out_dir from its newest checkpoint"
    )


def run_finetune(args, spec_cls: type, finetune: Callable) -> int:
    """``finetune(spec, resume=...)`` on the recipe ``--spec`` with its ``key=value`` overrides."""
    from ..spec import load_spec
    from . import set_threads

    set_threads()
    finetune(load_spec(spec_cls, args.spec, args.overrides), resume=args.resume)
    return 0


def add_evaluate_args(p: argparse.ArgumentParser, data_help: str, unit: str) -> None:
    p.add_argument("--model", required=True, help="model folder, export folder or .onnx file")
    p.add_argument("--data", required=True, help=data_help)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-samples", type=int, default=None, help=f"score only the first N {unit}")
    p.add_argument("--out", help="write the full report as JSON here")


def run_evaluate(args, task: str, score: Callable[[Any], dict], report: Callable[[dict], str]) -> int:
    """Load ``--model`` of ``task``, print ``report(score(model))`` and write the result to ``--out``."""
    from ..nlp.model_io import load_model
    from . import set_threads

    set_threads()
    result = score(load_model(args.model, task))
    print(report(result))
    write_json(args.out, result)
    return 0


def add_text_args(p: argparse.ArgumentParser, texts_help: str, unit: str) -> None:
    p.add_argument("texts", nargs="*", help=texts_help)
    p.add_argument("--model", required=True, help="model folder, export folder or .onnx file")
    p.add_argument("--file", help=f"read one {unit} per line from this file ('-': stdin)")


def read_texts(args, skip_blank: bool = False) -> list[str]:
    """The text arguments, then the lines of ``--file`` (``-``: stdin); blank lines dropped with ``skip_blank``."""
    texts = list(args.texts)
    if args.file:
        src = sys.stdin if args.file == "-" else open(args.file, encoding="utf-8")
        with src:
            texts += [line.rstrip("\n") for line in src if not skip_blank or line.strip()]
    return texts


def write_json(path: str | None, data: dict) -> None:
    if path:
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps(data, indent=2, default=str) + "\n")
        print(f"wrote {p}")


def add_prune_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="model folder to prune (written by finetune)")
    p.add_argument("--data", required=True, help="training data for importance scores and retraining")
    p.add_argument("--validation", help="validation data for the retraining (default: --data)")
    p.add_argument("--out", required=True, help="folder for the pruned model")
    p.add_argument("--keep-heads", type=float, default=0.5, help="fraction of attention heads kept (default 0.5)")
    p.add_argument("--keep-ffn", type=float, default=0.5, help="fraction of FFN neurons kept per layer (default 0.5)")
    p.add_argument("--drop-layers", type=int, default=0, help="top transformer layers removed (default 0)")
    p.add_argument("--score-batches", type=int, default=16, help="batches used to score importance (default 16)")
    p.add_argument("--retrain-steps", type=int, default=200, help="fine-tuning steps after pruning (0: none)")
    p.add_argument("--lr", type=float, default=5e-5, help="peak learning rate of the retraining (default 5e-5)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-train-samples", type=int, default=None, help="use only the first N training examples")
    p.add_argument("--seed", type=int, default=0)


def run_prune(args, task: str, make_task: Callable, monitor: str, evaluate: Callable | None = None) -> int:
    """``make_task(model, train, validation, batch_size, seed, max_train) -> EncoderTask``."""
    from ..nlp.model_io import load_model
    from ..nlp.prune import PruneOptions, prune_and_retrain
    from ..spec import SpecError

    try:
        options = PruneOptions(args.keep_heads, args.keep_ffn, args.drop_layers, args.score_batches)
    except ValueError as exc:
        raise SpecError(f"prune options: {exc}") from None
    model = load_model(args.model, task)
    train = Path(args.data)
    task_obj = make_task(
        model, train, Path(args.validation or args.data), args.batch_size, args.seed, args.max_train_samples
    )
    report = prune_and_retrain(model, task_obj, options, args.out, args.retrain_steps, args.lr, monitor, evaluate)
    print(json.dumps({k: report[k] for k in ("before", "after", "parameters_before", "parameters_after")}))
    print(f"pruned model folder: {args.out}")
    return 0


def add_export_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="model folder (written by finetune or prune)")
    p.add_argument("--out", required=True, help="export folder: model.onnx [+ model.int8.onnx], tokenizer files")
    p.add_argument(
        "--format",
        choices=["onnx", "onnx-int8"],
        default="onnx",
        help="onnx: FP32; onnx-int8: FP32 and ONNX Runtime dynamic INT8 (default onnx)",
    )
    p.add_argument("--no-check", action="store_true", help="skip the ONNX Runtime vs PyTorch comparison")


def run_export(args, task: str) -> int:
    from ..export.nlp import export_onnx
    from ..nlp.model_io import load_model

    model = load_model(args.model, task)
    res = export_onnx(model, args.out, int8=args.format == "onnx-int8", check=not args.no_check)
    print(f"wrote {res.fp32} (max |ORT - PyTorch| {res.fp32_max_diff:.2e})")
    if res.int8 is not None:
        print(
            f"wrote {res.int8} (max |INT8 - PyTorch| {res.int8_max_diff:.3f}, argmax agreement "
            f"{res.int8_agreement:.4f})"
        )
    return 0
