"""``speechtao ner export``: ONNX FP32 (+ INT8) with tokenizer files and metadata, checked against PyTorch."""

from __future__ import annotations

from .._nlp import add_export_args


def register(actions) -> None:
    p = actions.add_parser("export", help="export an NER model to ONNX (FP32 or FP32 + INT8)")
    add_export_args(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from .. import set_threads
    from .._nlp import run_export

    set_threads()
    return run_export(args, "ner")
