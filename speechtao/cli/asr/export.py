"""``speechtao asr export --model CKPT --format FORMAT --out PATH``: write a model for another runtime.

Each format is one function ``(loaded, out, args) -> Path`` in :data:`FORMATS`; add a format by adding an entry.
"""

from __future__ import annotations

from pathlib import Path

from ...export.asr import FORMATS as ONNX_FORMATS  # onnx, onnx-int8, tensorrt, triton (light: no torch import)
from ...export.asr import add_arguments as add_onnx_arguments


def _export_nemo(loaded, out: Path, args) -> Path:
    from ...asr.nemo_io import export_nemo

    return export_nemo(loaded, out)


FORMATS = {
    "nemo": (_export_nemo, "NeMo .nemo archive (ASRModel.restore_from loads it)"),
    **ONNX_FORMATS,
}


def register(actions) -> None:
    p = actions.add_parser("export", help="export a model: " + ", ".join(FORMATS))
    p.add_argument("--model", required=True, help="a speechtao checkpoint, a .nemo archive or a preset name")
    p.add_argument(
        "--format", required=True, choices=sorted(FORMATS), help="; ".join(f"{k}: {v[1]}" for k, v in FORMATS.items())
    )
    p.add_argument("--out", required=True, help="file to write (triton: the model's folder)")
    add_onnx_arguments(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from ...asr.checkpoint import load_model

    loaded = load_model(args.model)
    export, _ = FORMATS[args.format]
    out = export(loaded, Path(args.out), args)
    print(f"wrote {out} ({args.format}, {loaded.config.family}, {loaded.tokenizer.vocab_size}-token vocabulary)")
    return 0
