"""The NLP model folder and the model a run starts from.

Model folder (what ``finetune`` writes to ``trainer.out_dir/model`` and every other command reads)::

    model.pt            torch.save of a plain dict (see :func:`model_payload`), loaded with weights_only=True
    speechtao.json      the same facts for people: task, labels, structure, parameters, metrics
    tokenizer.json ...  the tokenizer files (save_pretrained), so the folder loads offline

:func:`load_model` also reads an export folder (:mod:`speechtao.export.nlp`) or an ``.onnx`` file (the labels,
net config and task are in its ``metadata_props``) into an :class:`OnnxNet`, so every ``evaluate``/``infer``
command runs on PyTorch or ONNX Runtime alike.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .. import __version__
from ..errors import CheckpointError, InputError
from .encoder import apply_structure, structure
from .heads import ATTENTION_MASK, INPUT_IDS, TOKEN_TYPE_IDS, build_net

FORMAT = "speechtao-nlp"

FORMAT_VERSION = 1

MODEL_FILE = "model.pt"

SUMMARY_FILE = "speechtao.json"

ONNX_FILE = "model.onnx"

ONNX_INT8_FILE = "model.int8.onnx"


@dataclass(frozen=True)
class ModelSpec:
    """The ``model`` section shared by every NLP recipe."""

    encoder: str = "minilm"  # preset name (minilm) or a local Hugging Face model folder
    init_from: str | None = None  # a speechtao model folder of the same task to continue from (replaces encoder)
    max_length: int = 128  # word pieces per sequence, [CLS] and [SEP] included
    head_layers: int = 2  # Linear layers in each classifier head
    dropout: float = 0.1  # dropout before each head layer

    def __post_init__(self):
        if self.max_length < 8:
            raise ValueError(f"max_length must be >= 8, got {self.max_length}")
        if self.head_layers < 1:
            raise ValueError(f"head_layers must be >= 1, got {self.head_layers}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must lie in [0, 1), got {self.dropout}")


def _json_config(encoder: nn.Module) -> str:
    cfg = encoder.config.to_dict()
    return json.dumps(cfg, default=str)


def model_payload(
    net: nn.Module,
    task: str,
    labels: dict[str, list[str]],
    max_length: int,
    spec: Any = None,
    extra: dict | None = None,
) -> dict:
    """The dict saved as ``model.pt`` (and as every training checkpoint's model part)."""
    from ..spec import spec_to_dict

    spec_dict = spec if spec is None or isinstance(spec, dict) else spec_to_dict(spec)
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "task": task,
        "state_dict": {k: v.detach().cpu() for k, v in net.state_dict().items()},
        "encoder_config": _json_config(net.encoder),
        "structure": structure(net.encoder),
        "net": json.dumps(net.config()),
        "labels": {k: list(v) for k, v in labels.items()},
        "max_length": int(max_length),
        "spec": json.dumps(spec_dict, default=str),
        "extra": dict(extra or {}),
        "speechtao_version": __version__,
    }


@dataclass
class NLPModel:
    """A loaded model: the net (PyTorch or an ONNX Runtime session behaving like it), its tokenizer, labels."""

    task: str
    net: Any  # nn.Module or OnnxNet: net(input_ids, attention_mask, token_type_ids) -> tuple of logits
    tokenizer: Any
    labels: dict[str, list[str]]
    max_length: int
    net_config: dict
    spec: dict | None = None
    source: str = ""  # the file it came from
    extra: dict = field(default_factory=dict)

    @property
    def is_onnx(self) -> bool:
        return isinstance(self.net, OnnxNet)

    def payload(self, spec: Any = None, extra: dict | None = None) -> dict:
        if self.is_onnx:
            raise InputError(
                f"{self.source}: an ONNX model cannot be fine-tuned or pruned (give the model folder with model.pt)"
            )
        return model_payload(
            self.net,
            self.task,
            self.labels,
            self.max_length,
            spec if spec is not None else self.spec,
            extra if extra is not None else self.extra,
        )


def save_model_folder(folder: str | Path, payload: dict, tokenizer: Any, metrics: dict | None = None) -> Path:
    """Write ``model.pt``, the tokenizer files and ``speechtao.json`` into ``folder``."""
    from ..train.checkpoint import save_checkpoint

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    keep = {k: v for k, v in payload.items() if k not in ("train_state", "optimizer")}
    save_checkpoint(folder / MODEL_FILE, keep)
    tokenizer.save_pretrained(str(folder))
    summary = {
        "format": FORMAT,
        "task": payload["task"],
        "labels": payload["labels"],
        "structure": payload["structure"],
        "max_length": payload["max_length"],
        "net": json.loads(payload["net"]),
        "parameters": int(sum(v.numel() for v in payload["state_dict"].values())),
        "encoder": json.loads(payload["encoder_config"]).get("_name_or_path", ""),
        "speechtao_version": payload.get("speechtao_version", __version__),
        "extra": payload.get("extra", {}),
    }
    if metrics is not None:
        summary["metrics"] = metrics
    (folder / SUMMARY_FILE).write_text(json.dumps(summary, indent=2, default=str) + "\n")
    return folder


def net_from_payload(payload: dict, source: str = "") -> nn.Module:
    """Rebuild the PyTorch net of a ``model.pt`` payload (architecture from its configs, then the weights)."""
    from .encoder import encoder_from_config

    try:
        encoder = encoder_from_config(json.loads(payload["encoder_config"]))
        apply_structure(encoder, payload["structure"])
        net = build_net(encoder, json.loads(payload["net"]))
        net.load_state_dict(payload["state_dict"])
    except (KeyError, RuntimeError, ValueError) as exc:
        raise CheckpointError(
            f"{source}: cannot rebuild the model ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0][:300]}); the file is damaged or from another version"
        ) from None
    return net.eval()


def read_payload(path: str | Path) -> dict:
    path = Path(path)
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # damaged or foreign files raise many types
        raise CheckpointError(
            f"{path}: cannot read ({type(exc).__name__}: {str(exc).splitlines()[0][:200]}); "
            "give a model folder written by `speechtao <task> finetune`"
        ) from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(
            f"{path}: not a speechtao NLP model (no format={FORMAT!r}); give a model folder "
            "written by `speechtao <task> finetune` or an export folder"
        )
    return data


def load_model(path: str | Path, task: str | None = None) -> NLPModel:
    """A model folder (``model.pt`` + tokenizer), a ``.pt`` file inside one (``best.pt``), an export folder
    (its ``model.int8.onnx`` when it has one, else ``model.onnx``; name the file to choose) or an ``.onnx`` file.
    ``NLPModel.source`` is the file loaded. ``task`` checks that the model is of that task."""
    from .encoder import load_tokenizer

    p = Path(path)
    if not p.exists():
        raise CheckpointError(
            f"{p}: model not found (give the model folder written by `speechtao <task> finetune`, "
            "e.g. <trainer.out_dir>/model, or an export folder / .onnx file)"
        )
    if p.is_dir():
        for name in (MODEL_FILE, ONNX_INT8_FILE, ONNX_FILE):  # an export folder answers with its INT8 file
            if (p / name).is_file():
                p = p / name
                break
        else:
            raise CheckpointError(f"{p}: holds neither {MODEL_FILE} nor {ONNX_FILE} (give a model or export folder)")
    if p.suffix == ".onnx":
        net = OnnxNet(p)
        meta = net.metadata
        model = NLPModel(
            meta["task"],
            net,
            load_tokenizer(p.parent),
            json.loads(meta["labels"]),
            int(meta["max_length"]),
            json.loads(meta["net"]),
            json.loads(meta.get("spec", "null")),
            str(p),
            json.loads(meta.get("extra") or "{}"),
        )
    else:
        payload = read_payload(p)
        folder = p.parent
        model = NLPModel(
            payload["task"],
            net_from_payload(payload, str(p)),
            load_tokenizer(folder),
            payload["labels"],
            int(payload["max_length"]),
            json.loads(payload["net"]),
            json.loads(payload.get("spec", "null")),
            str(p),
            dict(payload.get("extra") or {}),
        )
    if task is not None and model.task != task:
        raise InputError(f"{path}: is a {model.task!r} model, not {task!r} (use `speechtao {model.task} ...`)")
    return model


class OnnxNet:
    """An ONNX Runtime session called like a task net: ``net(input_ids, attention_mask, token_type_ids)``
    returns a tuple of float tensors in the file's output order."""

    def __init__(self, path: str | Path, threads: int | None = None):
        import onnxruntime as ort

        self.path = Path(path)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads if threads is not None else torch.get_num_threads()
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(self.path), opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # ORT raises its own exception types for bad files
            raise CheckpointError(
                f"{self.path}: onnxruntime cannot load it ({str(exc).splitlines()[0][:200]})"
            ) from None
        self.metadata = dict(self.session.get_modelmeta().custom_metadata_map)
        if self.metadata.get("format") != FORMAT:
            raise CheckpointError(
                f"{self.path}: not exported by speechtao (no format={FORMAT!r} metadata); export "
                "with `speechtao <task> export`"
            )
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = tuple(o.name for o in self.session.get_outputs())

    def __call__(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor
    ) -> tuple[torch.Tensor, ...]:
        feeds = {INPUT_IDS: input_ids, ATTENTION_MASK: attention_mask, TOKEN_TYPE_IDS: token_type_ids}
        outs = self.session.run(None, {k: feeds[k].cpu().numpy().astype(np.int64) for k in self.input_names})
        return tuple(torch.from_numpy(o) for o in outs)

    def eval(self) -> OnnxNet:
        return self


def start_model(
    spec: ModelSpec, task: str, labels: dict[str, list[str]], make_net: Callable[[nn.Module], nn.Module], seed: int = 0
) -> NLPModel:
    """The model a fine-tuning run starts from: ``spec.init_from`` (a model folder of the same task and
    labels) or ``make_net(pretrained encoder)`` with fresh heads, drawn from ``seed`` (the run's
    ``trainer.seed``) so that a run is repeatable."""
    from ..train.loop import seed_everything
    from .encoder import load_encoder

    if spec.init_from:
        model = load_model(spec.init_from, task)
        if model.is_onnx:
            raise InputError(f"model.init_from={spec.init_from}: is ONNX; give the model folder with model.pt")
        if model.labels != labels:
            raise InputError(
                f"model.init_from={spec.init_from}: its labels {model.labels} differ from the data's "
                f"{labels} (start from model.encoder instead)"
            )
        model.max_length = spec.max_length
        return model
    encoder, tokenizer, _ = load_encoder(spec.encoder)
    seed_everything(seed)
    net = make_net(encoder)
    return NLPModel(task, net, tokenizer, labels, spec.max_length, net.config())


def require_task(model: Any, task: str) -> Any:
    """``model`` when it is of ``task``; else an :class:`InputError` naming both tasks."""
    if model.task != task:
        raise InputError(
            f"{model.source}: is a {model.task!r} model, not {task!r} (put it where a {model.task} model is expected)"
        )
    return model
