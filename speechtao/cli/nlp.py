"""``speechtao qa|punct|ner|textcls ACTION``: the four NLP command groups, built from one table.

Every group has ``finetune``, ``evaluate``, ``infer``, ``prune``, ``export`` and ``make-data`` (``ner`` also
``convert-conll``). :data:`TASKS` holds what differs between the groups (help texts, how a dataset is scored,
how an answer is printed); the shared actions below map flags to the library's typed calls and nothing else.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .nlp_tasks import (
    add_ner_convert_conll,
    add_ner_make_data,
    add_punct_make_data,
    add_qa_evaluate,
    add_qa_infer,
    add_qa_make_data,
    add_textcls_make_data,
)

FINETUNE_DESCRIPTION = (
    "Writes trainer.out_dir/{best,final}.pt, checkpoints/, spec.yaml, metrics.json and the model folder "
    "trainer.out_dir/model."
)
QA_FINETUNE_DESCRIPTION = """Fine-tune model.encoder (or continue model.init_from) on SQuAD 1.1/2.0 JSON. Writes
trainer.out_dir/model (model.pt, tokenizer files, speechtao.json), best.pt, final.pt, checkpoints/, spec.yaml and
metrics.json. With SQuAD 2.0 data the no-answer threshold that maximizes validation F1 is saved with the model."""
PRUNE_DESCRIPTION = (
    "Score every attention head and FFN neuron by first-order importance on training batches, keep the most "
    "important fractions (or drop top layers), retrain for retrain_steps on the training data and write a model "
    "folder with prune_report.json and spec.yaml. Options come from --spec prune.yaml, then the flags, then "
    "key=value overrides (the keys of speechtao.nlp.prune.PruneSpec)."
)


@dataclass(frozen=True)
class Task:
    """What one NLP group's commands say and call (the library module is ``speechtao.nlp.<name>``)."""

    help: str  # the group's line in `speechtao --help`
    spec_class: str  # the fine-tuning spec class in the task module
    finetune_help: str
    evaluate_help: str = ""  # "" when the group has its own evaluate (qa)
    data_help: str = "folder with text.txt and labels.txt"
    unit: str = "sentences"  # what --max-samples counts
    text_unit: str = "sentence"  # what infer reads per line of --file
    infer_help: str = ""
    texts_help: str = ""
    export_help: str = ""
    prune_help: str = ""
    actions: dict[str, Callable[[Any], None]] = field(default_factory=dict)  # group-specific: name -> register


# ------------------------------------------------------------------------------------------- shared actions


def _threads() -> None:
    from . import set_threads

    set_threads()


def _module(task: str):
    import importlib

    return importlib.import_module(f"speechtao.nlp.{task}")


def _add_finetune(actions, task: str, t: Task) -> None:
    from . import add_spec_args

    description = QA_FINETUNE_DESCRIPTION if task == "qa" else FINETUNE_DESCRIPTION
    p = actions.add_parser("finetune", help=t.finetune_help, description=description)
    add_spec_args(p)
    p.add_argument(
        "--resume", action="store_true", help="continue the run in trainer.out_dir from its newest checkpoint"
    )
    p.set_defaults(func=lambda args: _run_finetune(args, task, t))


def _run_finetune(args, task: str, t: Task) -> int:
    from ..spec import load_spec

    _threads()
    mod = _module(task)
    mod.finetune(load_spec(getattr(mod, t.spec_class), args.spec, args.overrides), resume=args.resume)
    return 0


def _add_evaluate(actions, task: str, t: Task) -> None:
    p = actions.add_parser("evaluate", help=t.evaluate_help)
    p.add_argument("--model", required=True, help="model folder, export folder or .onnx file")
    p.add_argument("--data", required=True, help=t.data_help)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-samples", type=int, default=None, help=f"score only the first N {t.unit}")
    p.add_argument("--out", help="write the full report as JSON here")
    p.set_defaults(func=lambda args: _run_evaluate(args, task))


def _run_evaluate(args, task: str) -> int:
    """Load ``--model`` of ``task``, print its report on ``--data`` and write the result to ``--out``."""
    from ..nlp.model_io import load_model

    _threads()
    mod = _module(task)
    model = load_model(args.model, task)
    say_model(model.source)
    if task == "textcls":
        examples = mod.read_tsv(args.data, model.labels["label"], args.max_samples)
    else:
        examples = mod.read_dataset(args.data, args.max_samples)
    result = mod.evaluate(model, examples, args.batch_size)
    if task == "ner":
        print(
            mod.format_entity_report(result) + f"\nentity F1 {result['f1']:.4f}; tag accuracy "
            f"{result['tag_accuracy']:.4f}; {result['sentences']} sentences"
        )
    else:
        print(mod.format_evaluation(result))
    _write_json(args.out, result)
    return 0


def _add_infer(actions, task: str, t: Task) -> None:
    p = actions.add_parser("infer", help=t.infer_help)
    p.add_argument("texts", nargs="*", help=t.texts_help)
    p.add_argument("--model", required=True, help="model folder, export folder or .onnx file")
    p.add_argument("--file", help=f"read one {t.text_unit} per line from this file ('-': stdin)")
    if task == "ner":
        p.add_argument("--json", action="store_true", help="print one JSON object per sentence (words, tags, entities)")
    p.set_defaults(func=lambda args: _run_infer(args, task))


def _run_infer(args, task: str) -> int:
    from ..errors import InputError
    from ..nlp.model_io import load_model

    _threads()
    mod = _module(task)
    texts = _read_texts(args, skip_blank=task == "textcls")
    empty = not any(t.split() for t in texts) if task == "ner" else not texts  # ner: some word at all
    if empty:
        what = "text arguments" if task == "punct" else "sentences as arguments"
        raise InputError(f"no text given (pass {what} or --file FILE)")
    if task == "punct":
        model = mod.PunctCapModel.load(args.model)
        say_model(model.model.source)
        for line in model.punctuate(texts):
            print(line)
        return 0
    model = load_model(args.model, task)
    say_model(model.source)
    if task == "textcls":
        for text, (label, prob) in zip(texts, mod.predict(model, texts)):
            print(f"{label}\t{prob:.3f}\t{text}")
        return 0
    lines = [w for w in (t.split() for t in texts) if w]
    for words, tags in zip(lines, mod.predict(model, lines)):
        spans = sorted(mod.entities(tags))
        ents = [{"text": " ".join(words[s:e]), "type": k, "start": s, "end": e} for s, e, k in spans]
        if args.json:
            print(json.dumps({"words": words, "tags": tags, "entities": ents}))
        else:
            print(" ".join(f"{w}/{t}" if t != "O" else w for w, t in zip(words, tags)))
    return 0


# Flags of `prune` -> PruneSpec keys (every flag defaults to None: unset flags leave the spec file's values).
PRUNE_FLAGS: tuple[tuple[str, type, str], ...] = (
    ("--model", str, "model folder to prune (written by finetune)"),
    ("--data", str, "training data for importance scores and retraining"),
    ("--validation", str, "validation data that picks the retrained weights (default: --data)"),
    ("--out", str, "folder for the pruned model"),
    ("--keep-heads", float, "fraction of attention heads kept (default 0.5)"),
    ("--keep-ffn", float, "fraction of FFN neurons kept per layer (default 0.5)"),
    ("--drop-layers", int, "top transformer layers removed (default 0)"),
    ("--score-batches", int, "batches used to score importance (default 16)"),
    ("--retrain-steps", int, "fine-tuning steps after pruning (default 200; 0: none)"),
    ("--lr", float, "peak learning rate of the retraining (default 5e-5)"),
    ("--batch-size", int, "training batch size (default: the task's, 32; QA 16 windows)"),
    ("--max-train-samples", int, "use only the first N training examples"),
    ("--max-val-samples", int, "score only the first N validation examples"),
    ("--seed", int, "shuffling seed (default 0)"),
)


def _add_prune(actions, task: str, t: Task) -> None:
    p = actions.add_parser("prune", help=t.prune_help, description=PRUNE_DESCRIPTION)
    p.add_argument("--spec", help="prune recipe YAML (keys of PruneSpec); flags and overrides win over it")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="PruneSpec overrides, parsed as YAML")
    for flag, kind, help in PRUNE_FLAGS:
        names = [flag, "--train"] if task == "qa" and flag == "--data" else [flag]  # qa's former --train
        p.add_argument(*names, dest=flag[2:].replace("-", "_"), type=kind, default=None, help=help)
    p.set_defaults(func=lambda args: _run_prune(args, task))


def prune_spec_from_args(args: argparse.Namespace):
    """The :class:`PruneSpec` of ``--spec``, then the flags given, then the ``key=value`` overrides."""
    from ..nlp.prune import PruneSpec
    from ..spec import load_spec

    keys = [flag[2:].replace("-", "_") for flag, _, _ in PRUNE_FLAGS]
    given = [f"{k}={json.dumps(getattr(args, k))}" for k in keys if getattr(args, k) is not None]
    return load_spec(PruneSpec, args.spec, [*given, *args.overrides])


def _run_prune(args, task: str) -> int:
    _threads()
    spec = prune_spec_from_args(args)
    report = _module(task).prune(spec)
    print(json.dumps({k: report[k] for k in ("before", "after", "parameters_before", "parameters_after")}))
    ev = report.get("eval") or {}
    if task == "qa" and ev:
        print(f"pruned model: EM {ev['exact']:.2f} F1 {ev['f1']:.2f} on {spec.validation or spec.data}")
    print(f"pruned model folder: {spec.out} (spec.yaml, prune_report.json)")
    return 0


def _add_export(actions, task: str, t: Task) -> None:
    p = actions.add_parser("export", help=t.export_help, description=EXPORT_DESCRIPTIONS.get(task))
    p.add_argument("--model", required=True, help="model folder (written by finetune or prune)")
    p.add_argument("--out", required=True, help="export folder: model.onnx [+ model.int8.onnx], tokenizer files")
    p.add_argument(
        "--format",
        choices=["onnx", "onnx-int8"],
        default="onnx",
        help="onnx: FP32; onnx-int8: FP32 and ONNX Runtime dynamic INT8 (default onnx)",
    )
    p.add_argument("--no-check", action="store_true", help="skip the ONNX Runtime vs PyTorch comparison")
    p.set_defaults(func=lambda args: _run_export(args, task))


EXPORT_DESCRIPTIONS = {
    "qa": "Write OUT/model.onnx (and model.int8.onnx for onnx-int8: ONNX Runtime dynamic quantization) with the "
    "tokenizer files and speechtao.json. Inputs input_ids, attention_mask, token_type_ids (B, T); output "
    "span_logits (B, T, 2). The FP32 graph must match PyTorch. Every QA command reads the folder or the .onnx "
    "file like a model folder (the QA options travel in the metadata).",
}


def _run_export(args, task: str) -> int:
    from ..export.nlp import export_onnx
    from ..nlp.model_io import load_model

    _threads()
    model = load_model(args.model, task)
    res = export_onnx(model, args.out, int8=args.format == "onnx-int8", check=not args.no_check)
    print(f"wrote {res.fp32} (max |ORT - PyTorch| {res.fp32_max_diff:.2e})")
    if res.int8 is not None:
        print(
            f"wrote {res.int8} (max |INT8 - PyTorch| {res.int8_max_diff:.3f}, argmax agreement "
            f"{res.int8_agreement:.4f})"
        )
    return 0


def say_model(source: str) -> None:
    """Which file answers (on stderr, so that the answers on stdout stay machine-readable)."""
    print(f"model: {source}", file=sys.stderr)


def _read_texts(args, skip_blank: bool = False) -> list[str]:
    """The text arguments, then the lines of ``--file`` (``-``: stdin); blank lines dropped with ``skip_blank``."""
    texts = list(args.texts)
    if args.file:
        src = sys.stdin if args.file == "-" else open(args.file, encoding="utf-8")
        with src:
            texts += [line.rstrip("\n") for line in src if not skip_blank or line.strip()]
    return texts


def _write_json(path: str | None, data: dict) -> None:
    if path:
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps(data, indent=2, default=str) + "\n")
        print(f"wrote {p}")


# ------------------------------------------------------------------------------------------------ the table

TASKS: dict[str, Task] = {
    "qa": Task(
        help="extractive question answering (SQuAD 1.1/2.0): make-data, finetune, evaluate, infer, prune, export",
        spec_class="QAFinetuneSpec",
        finetune_help="fine-tune a QA model (recipes/qa_finetune.yaml)",
        export_help="export a QA model to ONNX (FP32, or FP32 + INT8)",
        prune_help="prune a QA model (heads, FFN neurons, layers) and retrain it",
        actions={"evaluate": add_qa_evaluate, "infer": add_qa_infer, "make-data": add_qa_make_data},
    ),
    "punct": Task(
        help="punctuation and capitalization: make-data, finetune, evaluate, infer, prune, export",
        spec_class="PunctFinetuneSpec",
        finetune_help="fine-tune punctuation + capitalization (recipes/punct_finetune.yaml)",
        evaluate_help="punctuation and capitalization F1 on a dataset folder",
        unit="lines",
        text_unit="segment",
        infer_help="punctuate and capitalize text (arguments, or lines of --file / stdin)",
        texts_help="raw lowercased text, one argument per segment",
        export_help="export a punctuation model to ONNX (FP32 or FP32 + INT8)",
        prune_help="prune heads/FFN neurons/layers of a punctuation model and retrain it",
        actions={"make-data": add_punct_make_data},
    ),
    "ner": Task(
        help="named entities: make-data, convert-conll, finetune, evaluate, infer, prune, export",
        spec_class="NerFinetuneSpec",
        finetune_help="fine-tune NER (recipes/ner_finetune.yaml)",
        evaluate_help="entity-level P/R/F1 on a dataset folder",
        infer_help="tag entities in text (arguments, or lines of --file / stdin)",
        texts_help="sentences, words separated by spaces",
        export_help="export an NER model to ONNX (FP32 or FP32 + INT8)",
        prune_help="prune heads/FFN neurons/layers of an NER model and retrain it",
        actions={"convert-conll": add_ner_convert_conll, "make-data": add_ner_make_data},
    ),
    "textcls": Task(
        help="text classification: make-data, finetune, evaluate, infer, prune, export",
        spec_class="TextclsFinetuneSpec",
        finetune_help="fine-tune text classification (recipes/textcls_finetune.yaml)",
        evaluate_help="accuracy and per-class P/R/F1 on a sentence<TAB>label file",
        data_help="TSV file: sentence<TAB>label",
        unit="lines",
        infer_help="classify sentences (arguments, or lines of --file / stdin)",
        texts_help="sentences",
        export_help="export a text classification model to ONNX (FP32 or FP32 + INT8)",
        prune_help="prune heads/FFN neurons/layers of a text classification model and retrain it",
        actions={"make-data": add_textcls_make_data},
    ),
}

SHARED: dict[str, Callable[[Any, str, Task], None]] = {
    "evaluate": _add_evaluate,
    "export": _add_export,
    "finetune": _add_finetune,
    "infer": _add_infer,
    "prune": _add_prune,
}


def register(sub, task: str) -> None:
    """Add the group ``task`` with its actions in alphabetical order (a group's own action replaces a shared one)."""
    t = TASKS[task]
    parser = sub.add_parser(task, help=t.help)
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    for name in sorted({*SHARED, *t.actions}):
        if name in t.actions:
            t.actions[name](actions)
        else:
            SHARED[name](actions, task, t)
