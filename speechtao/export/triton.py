"""Triton Inference Server model folder for an exported ONNX model.

Layout written by :func:`write_triton_model` (``out`` is the model's folder; its name is the model name, and
its parent is what ``tritonserver --model-repository`` takes)::

    out/config.pbtxt        platform onnxruntime_onnx, inputs/outputs with types and shapes (-1: dynamic)
    out/1/model.onnx        the graph (version 1)
    out/tokens.txt          id -> token table, blank last (for the client's CTC decoding)

``max_batch_size: 0``: the graph's own batch axis is dynamic, so Triton passes it through as the first dimension.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError

# ONNX TensorProto element type -> Triton data type
TRITON_TYPES = {
    1: "TYPE_FP32",
    2: "TYPE_UINT8",
    3: "TYPE_INT8",
    5: "TYPE_INT16",
    6: "TYPE_INT32",
    7: "TYPE_INT64",
    9: "TYPE_BOOL",
    10: "TYPE_FP16",
    11: "TYPE_FP64",
    16: "TYPE_BF16",
}


@dataclass(frozen=True)
class TensorSpec:
    name: str
    data_type: str  # Triton name, e.g. TYPE_FP32
    dims: tuple[int, ...]  # -1 for a dynamic axis


def graph_io(onnx_path: str | Path) -> tuple[list[TensorSpec], list[TensorSpec]]:
    """Inputs and outputs of an ONNX file as Triton sees them (dynamic axes -> -1)."""
    import onnx

    m = onnx.load(str(onnx_path), load_external_data=False)
    inits = {i.name for i in m.graph.initializer}

    def spec(v) -> TensorSpec:
        t = v.type.tensor_type
        if t.elem_type not in TRITON_TYPES:
            raise InputError(
                f"{onnx_path}: tensor {v.name!r} has ONNX element type {t.elem_type}, which Triton "
                "cannot serve (export a float32 model)"
            )
        dims = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in t.shape.dim)
        return TensorSpec(v.name, TRITON_TYPES[t.elem_type], dims)

    return [spec(v) for v in m.graph.input if v.name not in inits], [spec(v) for v in m.graph.output]


def config_pbtxt(
    name: str, inputs: list[TensorSpec], outputs: list[TensorSpec], instances: int = 1, kind: str = "KIND_CPU"
) -> str:
    """The text of ``config.pbtxt``."""

    def block(t: TensorSpec) -> str:
        return (
            f'  {{\n    name: "{t.name}"\n    data_type: {t.data_type}\n'
            f"    dims: [ {', '.join(str(d) for d in t.dims)} ]\n  }}"
        )

    return (
        f'name: "{name}"\nplatform: "onnxruntime_onnx"\nmax_batch_size: 0\n'
        f"input [\n{(',' + chr(10)).join(block(t) for t in inputs)}\n]\n"
        f"output [\n{(',' + chr(10)).join(block(t) for t in outputs)}\n]\n"
        f"instance_group [\n  {{\n    count: {instances}\n    kind: {kind}\n  }}\n]\n"
    )


def parse_config_pbtxt(text: str) -> dict:
    """Read back what :func:`config_pbtxt` writes: ``{"name", "platform", "input": [TensorSpec], "output": [...]}``.

    A small reader for this one layout, not a general protobuf text parser.
    """
    import re

    out: dict = {"input": [], "output": []}
    for key in ("name", "platform"):
        m = re.search(rf'^{key}: "([^"]*)"', text, re.M)
        out[key] = m.group(1) if m else None
    for section in ("input", "output"):
        m = re.search(rf"^{section} \[(.*?)^\]", text, re.M | re.S)
        if not m:
            continue
        for block in re.findall(r"\{(.*?)\}", m.group(1), re.S):
            name = re.search(r'name: "([^"]*)"', block).group(1)
            dtype = re.search(r"data_type: (\w+)", block).group(1)
            dims = tuple(int(d) for d in re.search(r"dims: \[([^\]]*)\]", block).group(1).split(","))
            out[section].append(TensorSpec(name, dtype, dims))
    return out


def write_triton_model(onnx_path: str | Path, out: str | Path, tokenizer=None, instances: int = 1) -> Path:
    """Copy ``onnx_path`` to ``out/1/model.onnx`` and write ``out/config.pbtxt`` (and ``tokens.txt``)."""
    from .onnx_export import write_tokens

    out = Path(out)
    if out.suffix == ".onnx":
        raise InputError(f"--out {out}: for --format triton give a folder (the model's name), e.g. repo/asr_model")
    (out / "1").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(onnx_path, out / "1" / "model.onnx")
    inputs, outputs = graph_io(out / "1" / "model.onnx")
    (out / "config.pbtxt").write_text(config_pbtxt(out.name, inputs, outputs, instances))
    if tokenizer is not None:
        write_tokens(out / "tokens.txt", tokenizer)
    return out
