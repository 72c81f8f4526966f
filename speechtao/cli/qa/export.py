"""``speechtao qa export``: ONNX FP32 (and INT8) of a QA model, checked against PyTorch."""

from __future__ import annotations


def register(actions) -> None:
    p = actions.add_parser(
        "export", help="export a QA model to ONNX (FP32, or FP32 + INT8)",
        description="Write OUT/model.onnx (and model.int8.onnx for onnx-int8: ONNX Runtime dynamic quantization) "
                    "with the tokenizer files and speechtao.json. Inputs input_ids, attention_mask, token_type_ids "
                    "(B, T); output span_logits (B, T, 2). The FP32 graph must match PyTorch. Every QA command "
                    "reads the folder or the .onnx file like a model folder.")
    p.add_argument("--model", required=True, help="model folder written by `speechtao qa finetune`")
    p.add_argument("--out", required=True, help="export folder")
    p.add_argument("--format", choices=["onnx", "onnx-int8"], default="onnx")
    p.set_defaults(func=run)


def run(args) -> int:
    from ...nlp.qa import QAModel, export

    result = export(QAModel.load(args.model), args.out, int8=args.format == "onnx-int8")
    print(f"wrote {result.fp32} (max |ORT - PyTorch| {result.fp32_max_diff:.2e})")
    if result.int8 is not None:
        print(f"wrote {result.int8} (max |INT8 - PyTorch| {result.int8_max_diff:.3f}, argmax agreement "
              f"{100 * result.int8_agreement:.1f}%)")
    return 0
