"""``speechtao qa export``: ONNX FP32 (and INT8) of a QA model, checked against PyTorch."""

from __future__ import annotations

from .._nlp import add_export_args


def register(actions) -> None:
    p = actions.add_parser(
        "export",
        help="export a QA model to ONNX (FP32, or FP32 + INT8)",
        description="Write OUT/model.onnx (and model.int8.onnx for onnx-int8: ONNX Runtime dynamic quantization) "
        "with the tokenizer files and speechtao.json. Inputs input_ids, attention_mask, token_type_ids "
        "(B, T); output span_logits (B, T, 2). The FP32 graph must match PyTorch. Every QA command "
        "reads the folder or the .onnx file like a model folder (the QA options travel in the "
        "metadata).",
    )
    add_export_args(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from .. import set_threads
    from .._nlp import run_export

    set_threads()
    return run_export(args, "qa")
