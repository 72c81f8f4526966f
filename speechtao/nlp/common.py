"""What every NLP task shares: heads over a pretrained encoder, word-piece alignment, the model folder, the
Trainer glue, structured pruning (attention heads, FFN neurons, layers) and ONNX FP32/INT8 export.

Nets. Every task net is ``forward(input_ids (B, T), attention_mask (B, T), token_type_ids (B, T)) -> tuple of
logits`` with ``net.encoder`` (the Hugging Face encoder), ``net.output_names`` and ``net.config()`` (a plain
dict that :func:`build_net` turns back into the same module):

* :class:`TokenTaggingNet`: one classifier per named head over every token state, ``(B, T, C_head)`` each
  (punctuation + capitalization, NER, extractive QA with a 2-class ``start/end`` head);
* :class:`SequenceClassifierNet`: mean- or CLS-pooled states -> ``(B, C)`` (text classification).

Model folder (what ``finetune`` writes to ``trainer.out_dir/model`` and every other command reads)::

    model.pt            torch.save of a plain dict (see :func:`model_payload`), loaded with weights_only=True
    speechtao.json      the same facts for people: task, labels, structure, parameters, metrics
    tokenizer.json ...  the tokenizer files (save_pretrained), so the folder loads offline

Export folder (:func:`export_onnx`): ``model.onnx`` (FP32) and optionally ``model.int8.onnx`` (ONNX Runtime
dynamic quantization of the MatMul weights to INT8 per output channel; activations quantized per call), the
tokenizer files and
``speechtao.json``; each ONNX file carries the labels, net config and task in its ``metadata_props``, so
:func:`load_model` reads an ``.onnx`` file like a model folder and every ``evaluate``/``infer`` command runs
on PyTorch or ONNX Runtime alike.

Pruning (:func:`prune`): first-order Taylor importance of every attention head and FFN neuron (the gradient
of the task loss with respect to a gate of 1.0 multiplied into the head's context vector / the neuron's
activation, summed in absolute value over batches; Michel et al. 2019, Molchanov et al. 2017); heads are
ranked globally after per-layer L2 normalisation, FFN neurons per layer; ``drop_layers`` removes the top
layers (Sajjad et al. 2020 found top-layer dropping the most robust). The weights are sliced, not masked, so
the pruned model is smaller and faster; its per-layer shapes (:func:`structure`) are saved with it.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .. import __version__
from ..errors import CheckpointError, DataError, InputError, SpeechtaoError
from ..train.loop import TrainTask

FORMAT = "speechtao-nlp"
FORMAT_VERSION = 1
MODEL_FILE = "model.pt"
SUMMARY_FILE = "speechtao.json"
ONNX_FILE = "model.onnx"
ONNX_INT8_FILE = "model.int8.onnx"
INPUT_IDS = "input_ids"
ATTENTION_MASK = "attention_mask"
TOKEN_TYPE_IDS = "token_type_ids"
INPUT_NAMES = (INPUT_IDS, ATTENTION_MASK, TOKEN_TYPE_IDS)
OPSET = 18
MAX_ABS_DIFF = 1e-3  # ORT FP32 vs PyTorch logits
IGNORE_INDEX = -100  # label of positions the loss skips (special tokens, non-first word pieces, padding)


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


@dataclass(frozen=True)
class EncoderDataSpec:
    """The ``data`` section shared by the punct, NER and textcls recipes (each task says what the paths hold)."""

    train: Path
    validation: Path
    batch_size: int = 32
    max_train_samples: int | None = None  # use only the first N training examples (quick runs)
    max_val_samples: int | None = 500  # validation examples scored at each validation

    def __post_init__(self):
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")


class ExportCheckError(SpeechtaoError):
    """The exported graph does not reproduce the PyTorch model (a bug, not bad input)."""


# ------------------------------------------------------------------------------------------------ heads


class ClassifierHead(nn.Module):
    """``dropout -> [Linear(h, h) -> GELU -> dropout] * (layers - 1) -> Linear(h, classes)`` over the last axis."""

    def __init__(self, hidden: int, classes: int, layers: int = 2, dropout: float = 0.1):
        super().__init__()
        mods: list[nn.Module] = [nn.Dropout(dropout)]
        for _ in range(layers - 1):
            mods += [nn.Linear(hidden, hidden), nn.GELU(), nn.Dropout(dropout)]
        mods.append(nn.Linear(hidden, classes))
        self.net = nn.Sequential(*mods)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (..., hidden) -> (..., classes)."""
        return self.net(x)


class TokenTaggingNet(nn.Module):
    """Encoder + one :class:`ClassifierHead` per name in ``heads`` ({name: classes}) over every token.

    ``forward(input_ids (B, T), attention_mask (B, T), token_type_ids (B, T)) -> tuple of (B, T, classes)``
    in the order of ``heads``; output names ``<name>_logits``.
    """

    kind = "token"

    def __init__(self, encoder: nn.Module, heads: dict[str, int], head_layers: int = 2, dropout: float = 0.1):
        super().__init__()
        self.encoder = encoder
        self.head_sizes = dict(heads)
        self.head_layers, self.dropout = head_layers, dropout
        hidden = encoder.config.hidden_size
        self.heads = nn.ModuleDict({k: ClassifierHead(hidden, n, head_layers, dropout) for k, n in heads.items()})
        self.output_names = tuple(f"{k}_logits" for k in heads)

    def config(self) -> dict:
        return {
            "kind": self.kind,
            "heads": dict(self.head_sizes),
            "head_layers": self.head_layers,
            "dropout": self.dropout,
        }

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor
    ) -> tuple[torch.Tensor, ...]:
        states = self.encoder(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
        ).last_hidden_state  # (B, T, H)
        return tuple(head(states) for head in self.heads.values())


class SequenceClassifierNet(nn.Module):
    """Encoder + pooling (``mean`` over valid tokens, or the ``cls`` token) + :class:`ClassifierHead`.

    ``forward(input_ids (B, T), attention_mask (B, T), token_type_ids (B, T)) -> ((B, classes),)``.
    """

    kind = "sequence"

    def __init__(
        self, encoder: nn.Module, classes: int, pooling: str = "mean", head_layers: int = 2, dropout: float = 0.1
    ):
        super().__init__()
        if pooling not in ("mean", "cls"):
            raise ValueError(f"pooling must be 'mean' or 'cls', got {pooling!r}")
        self.encoder = encoder
        self.classes, self.pooling = classes, pooling
        self.head_layers, self.dropout = head_layers, dropout
        self.head = ClassifierHead(encoder.config.hidden_size, classes, head_layers, dropout)
        self.output_names = ("logits",)

    def config(self) -> dict:
        return {
            "kind": self.kind,
            "classes": self.classes,
            "pooling": self.pooling,
            "head_layers": self.head_layers,
            "dropout": self.dropout,
        }

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor
    ) -> tuple[torch.Tensor]:
        states = self.encoder(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
        ).last_hidden_state  # (B, T, H)
        if self.pooling == "cls":
            pooled = states[:, 0]
        else:
            m = attention_mask.unsqueeze(-1).to(states.dtype)  # (B, T, 1)
            pooled = (states * m).sum(1) / m.sum(1).clamp(min=1.0)  # (B, H)
        return (self.head(pooled),)


def build_net(encoder: nn.Module, config: dict) -> nn.Module:
    """The net described by ``config`` (a ``net.config()`` dict) over ``encoder``."""
    kind = config.get("kind")
    if kind == "token":
        return TokenTaggingNet(encoder, config["heads"], config["head_layers"], config["dropout"])
    if kind == "sequence":
        return SequenceClassifierNet(
            encoder, config["classes"], config["pooling"], config["head_layers"], config["dropout"]
        )
    raise CheckpointError(
        f"net kind {kind!r} is unknown (expected 'token' or 'sequence'; written by a newer speechtao?)"
    )


# -------------------------------------------------------------------------------------- word pieces


def word_pieces(tokenizer: Any, lines: Sequence[Sequence[str]]) -> list[list[list[int]]]:
    """Word-piece ids of every word of every line: ``out[line][word] -> [ids]`` (never empty: ``[UNK]``)."""
    if not lines:
        return []
    enc = tokenizer([list(w) for w in lines], is_split_into_words=True, add_special_tokens=False, truncation=False)
    unk = tokenizer.unk_token_id
    out = []
    for i, words in enumerate(lines):
        pieces: list[list[int]] = [[] for _ in words]
        for tok, w in zip(enc["input_ids"][i], enc.word_ids(i)):
            if w is not None:
                pieces[w].append(tok)
        out.append([p if p else [unk] for p in pieces])
    return out


def chunk_words(pieces: Sequence[Sequence[int]], max_pieces: int) -> list[tuple[int, int]]:
    """Split a line into ``[(start_word, end_word), ...]`` spans of at most ``max_pieces`` word pieces.

    A single word longer than ``max_pieces`` gets its own span (its pieces are cut when encoded).
    """
    spans, start, used = [], 0, 0
    for i, p in enumerate(pieces):
        n = len(p)
        if used and used + n > max_pieces:
            spans.append((start, i))
            start, used = i, 0
        used += n
    if start < len(pieces) or not pieces:
        spans.append((start, len(pieces)))
    return spans


@dataclass
class WordEncoding:
    """One encoded sequence: ``[CLS] pieces... [SEP]`` and where each word starts."""

    ids: list[int]
    starts: list[int]  # token position of the first piece of each word


def encode_pieces(tokenizer: Any, pieces: Sequence[Sequence[int]], max_length: int) -> WordEncoding:
    """``[CLS] + pieces + [SEP]``, cut to ``max_length`` tokens (words that do not fit are dropped)."""
    ids = [tokenizer.cls_token_id]
    starts = []
    for p in pieces:
        if len(ids) + 1 >= max_length:
            break
        starts.append(len(ids))
        ids.extend(list(p)[: max_length - 1 - len(ids)])
    ids.append(tokenizer.sep_token_id)
    return WordEncoding(ids, starts)


def pad_batch(seqs: Sequence[Sequence[int]], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded ``input_ids``, ``attention_mask``, ``token_type_ids`` (all ``(B, T)`` int64)."""
    t = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), t), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), t), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.tensor(s, dtype=torch.long)
        mask[i, : len(s)] = 1
    return {INPUT_IDS: ids, ATTENTION_MASK: mask, TOKEN_TYPE_IDS: torch.zeros_like(ids)}


def net_inputs(batch: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return batch[INPUT_IDS], batch[ATTENTION_MASK], batch[TOKEN_TYPE_IDS]


# ---------------------------------------------------------------------------------------------- metrics


def classification_report(gold: Sequence[int], pred: Sequence[int], labels: Sequence[str]) -> dict:
    """Per-class precision/recall/F1/support, macro averages (over classes with support or predictions),
    and accuracy. ``gold``/``pred`` are class indices into ``labels``."""
    g = np.asarray(gold, dtype=np.int64)
    p = np.asarray(pred, dtype=np.int64)
    per = {}
    for i, name in enumerate(labels):
        tp = int(((g == i) & (p == i)).sum())
        fp = int(((g != i) & (p == i)).sum())
        fn = int(((g == i) & (p != i)).sum())
        prec = tp / (tp + fp) if tp + fp else 0.0
        rec = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
        per[name] = {"precision": prec, "recall": rec, "f1": f1, "support": tp + fn}
    present = [v for v in per.values() if v["support"] > 0]
    macro = {k: float(np.mean([v[k] for v in present])) if present else 0.0 for k in ("precision", "recall", "f1")}
    return {
        "per_class": per,
        "macro": macro,
        "accuracy": float((g == p).mean()) if len(g) else 0.0,
        "count": int(len(g)),
    }


def format_report(title: str, report: dict) -> str:
    """A fixed-width table of :func:`classification_report` (or any report with per_class/macro)."""
    lines = [title, f"{'label':<12}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>10}"]
    for name, v in report["per_class"].items():
        lines.append(f"{name:<12}{v['precision']:>10.4f}{v['recall']:>10.4f}{v['f1']:>10.4f}{v['support']:>10d}")
    m = report["macro"]
    lines.append(f"{'macro avg':<12}{m['precision']:>10.4f}{m['recall']:>10.4f}{m['f1']:>10.4f}")
    if "accuracy" in report:
        lines.append(f"{'accuracy':<12}{report['accuracy']:>30.4f}{report.get('count', 0):>10d}")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------- encoder layers


@dataclass
class LayerParts:
    """The Linear modules of one BERT-layout transformer layer that pruning slices."""

    attention: nn.Module  # the self-attention module (holds num_attention_heads, attention_head_size)
    query: nn.Linear
    key: nn.Linear
    value: nn.Linear
    attn_out: nn.Linear  # concatenated heads -> hidden
    ffn_in: nn.Linear  # hidden -> intermediate
    ffn_out: nn.Linear  # intermediate -> hidden
    head_size: int


def encoder_layers(encoder: nn.Module) -> nn.ModuleList:
    """The transformer layer list of a BERT-layout Hugging Face encoder (``encoder.encoder.layer``)."""
    layers = getattr(getattr(encoder, "encoder", None), "layer", None)
    if not isinstance(layers, nn.ModuleList):
        raise InputError(
            f"encoder {type(encoder).__name__}: no encoder.layer list; pruning and structure "
            "changes support BERT-layout encoders (BERT, RoBERTa, ELECTRA, Megatron-BERT)"
        )
    return layers


def layer_parts(layer: nn.Module) -> LayerParts:
    try:
        att = layer.attention.self
        parts = LayerParts(
            att,
            att.query,
            att.key,
            att.value,
            layer.attention.output.dense,
            layer.intermediate.dense,
            layer.output.dense,
            int(att.attention_head_size),
        )
    except AttributeError as exc:
        raise InputError(
            f"layer {type(layer).__name__}: not a BERT-layout layer ({exc}); pruning supports "
            "BERT, RoBERTa, ELECTRA and Megatron-BERT encoders"
        ) from None
    return parts


def structure(encoder: nn.Module) -> dict:
    """``{"layers": L, "heads": [heads per layer], "ffn": [FFN neurons per layer]}`` of the current weights."""
    parts = [layer_parts(layer) for layer in encoder_layers(encoder)]
    return {
        "layers": len(parts),
        "heads": [p.query.out_features // p.head_size for p in parts],
        "ffn": [p.ffn_in.out_features for p in parts],
    }


def _slice_linear(lin: nn.Linear, index: torch.Tensor, dim: int) -> nn.Linear:
    """A new Linear keeping ``index`` along ``dim`` of the weight (0: outputs, 1: inputs)."""
    w = lin.weight.detach().index_select(dim, index).clone()
    b = lin.bias.detach().clone() if lin.bias is not None else None
    if dim == 0 and b is not None:
        b = b.index_select(0, index).clone()
    new = nn.Linear(w.shape[1], w.shape[0], bias=b is not None).to(w.device, w.dtype)
    new.weight.data.copy_(w)
    if b is not None:
        new.bias.data.copy_(b)
    return new


def shrink_encoder(
    encoder: nn.Module,
    heads: Sequence[Sequence[int]],
    ffn: Sequence[Sequence[int]],
    layers: Sequence[int] | None = None,
) -> None:
    """Keep, in place, the listed heads / FFN neurons of each layer (indices per current layer) and then only
    the ``layers`` listed (None: all). At least one head and one neuron must stay in every kept layer."""
    mods = encoder_layers(encoder)
    if len(heads) != len(mods) or len(ffn) != len(mods):
        raise ValueError(f"need head and FFN lists for all {len(mods)} layers, got {len(heads)} and {len(ffn)}")
    for layer, keep_h, keep_f in zip(mods, heads, ffn):
        p = layer_parts(layer)
        if not keep_h or not keep_f:
            raise ValueError("every layer keeps at least one head and one FFN neuron (drop the layer instead)")
        d = p.head_size
        rows = torch.tensor([h * d + j for h in sorted(keep_h) for j in range(d)], dtype=torch.long)
        p.attention.query = _slice_linear(p.query, rows, 0)
        p.attention.key = _slice_linear(p.key, rows, 0)
        p.attention.value = _slice_linear(p.value, rows, 0)
        layer.attention.output.dense = _slice_linear(p.attn_out, rows, 1)
        p.attention.num_attention_heads = len(keep_h)
        p.attention.all_head_size = len(keep_h) * d
        cols = torch.tensor(sorted(keep_f), dtype=torch.long)
        layer.intermediate.dense = _slice_linear(p.ffn_in, cols, 0)
        layer.output.dense = _slice_linear(p.ffn_out, cols, 1)
    if layers is not None:
        kept = [mods[i] for i in sorted(layers)]
        if not kept:
            raise ValueError("cannot drop every layer")
        encoder.encoder.layer = nn.ModuleList(kept)
        encoder.config.num_hidden_layers = len(kept)


def apply_structure(encoder: nn.Module, struct: dict) -> None:
    """Reshape a freshly built encoder to ``struct`` (from :func:`structure`) so a pruned state dict loads."""
    n = struct["layers"]
    mods = encoder_layers(encoder)
    if n > len(mods):
        raise CheckpointError(f"structure has {n} layers but the encoder config builds {len(mods)}")
    if n < len(mods):
        encoder.encoder.layer = nn.ModuleList(list(mods)[:n])
        encoder.config.num_hidden_layers = n
    shrink_encoder(encoder, [range(h) for h in struct["heads"]], [range(f) for f in struct["ffn"]])


# ----------------------------------------------------------------------------------------- model folder


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
    (``model.onnx``) or an ``.onnx`` file. ``task`` checks that the model is of that task."""
    from .encoder import load_tokenizer

    p = Path(path)
    if not p.exists():
        raise CheckpointError(
            f"{p}: model not found (give the model folder written by `speechtao <task> finetune`, "
            "e.g. <trainer.out_dir>/model, or an export folder / .onnx file)"
        )
    if p.is_dir():
        if (p / MODEL_FILE).is_file():
            p = p / MODEL_FILE
        elif (p / ONNX_FILE).is_file():
            p = p / ONNX_FILE
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


# ------------------------------------------------------------------------------------------ Trainer glue


class EncoderTask(TrainTask):
    """The :class:`speechtao.train.loop.Trainer` task protocol over a list of pre-encoded examples.

    Args:
        model: the net being trained.
        items: training examples, any objects ``collate`` understands; ``length(item)`` orders them.
        collate: ``list[item] -> batch`` (a dict of tensors).
        loss_fn: ``(model, batch) -> scalar loss``.
        validate_fn: ``() -> {metric: value}`` (runs with the model in eval mode).
        payload_fn: ``() -> model payload dict`` (:func:`model_payload`).
        batch_size, seed: each epoch shuffles with ``seed + epoch``, then sorts windows of 50 batches by
            length so that batches hold similar lengths (less padding), then shuffles the batches.
    """

    def __init__(
        self,
        model: nn.Module,
        items: list,
        collate: Callable[[list], dict],
        loss_fn: Callable[[nn.Module, dict], torch.Tensor],
        validate_fn: Callable[[], dict],
        payload_fn: Callable[[], dict],
        batch_size: int,
        seed: int = 0,
        length: Callable[[Any], int] = len,
    ):
        if not items:
            raise DataError("the training set is empty (check data.train)")
        self.model = model
        self.items, self.collate, self.loss_fn = items, collate, loss_fn
        self.validate_fn, self.payload_fn = validate_fn, payload_fn
        self.batch_size, self.seed, self.length = batch_size, seed, length

    def num_batches(self, epoch: int) -> int:
        return math.ceil(len(self.items) / self.batch_size)

    def _order(self, epoch: int) -> list[list[int]]:
        rng = random.Random(f"{self.seed}:{epoch}")
        idx = list(range(len(self.items)))
        rng.shuffle(idx)
        window = self.batch_size * 50
        batches = []
        for w in range(0, len(idx), window):
            chunk = sorted(idx[w : w + window], key=lambda i: self.length(self.items[i]))
            batches += [chunk[b : b + self.batch_size] for b in range(0, len(chunk), self.batch_size)]
        rng.shuffle(batches)
        return batches

    def train_batches(self, epoch: int, start_index: int):
        for b in self._order(epoch)[start_index:]:
            yield self.collate([self.items[i] for i in b])

    def loss(self, model: nn.Module, batch: dict) -> torch.Tensor:
        return self.loss_fn(model, batch)

    def validate(self) -> dict:
        was = self.model.training
        self.model.eval()
        try:
            with torch.no_grad():
                return self.validate_fn()
        finally:
            self.model.train(was)

    def payload(self) -> dict:
        return self.payload_fn()

    def batch_stats(self, batch: dict) -> dict:
        return {"utterances": float(batch[INPUT_IDS].shape[0])}


def train_and_save(
    task: EncoderTask,
    model: NLPModel,
    spec: Any,
    out_dir: Path,
    resume: bool = False,
    evaluate: Callable[[NLPModel], dict] | None = None,
    finalize: Callable[[NLPModel], dict] | None = None,
) -> dict:
    """Fit ``task`` with the shared Trainer (``spec.trainer``, ``spec.optim``, ``spec.schedule``), then write
    the best checkpoint as a model folder ``out_dir/model`` and return the Trainer's metrics (plus
    ``evaluate(model)`` of the best weights under ``"final_eval"`` when given). ``finalize(model)`` runs on the
    best weights before the folder is written: it may set ``model.extra`` (saved with the model instead of the
    checkpoint's) and returns metrics to add."""
    from ..train.loop import Trainer

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.tokenizer.save_pretrained(str(out_dir))  # best.pt / final.pt load from out_dir too
    trainer = Trainer(task, spec.trainer, spec.optim, spec.schedule, full_spec=spec)
    metrics = trainer.fit(resume=resume)
    best = out_dir / "best.pt"
    payload = read_payload(best if best.is_file() else out_dir / "final.pt")
    model.net.load_state_dict(payload["state_dict"])
    model.net.eval()
    if finalize is not None:
        metrics = {**metrics, **finalize(model)}
        payload = {**payload, "extra": dict(model.extra)}
    if evaluate is not None:
        metrics = {**metrics, "final_eval": evaluate(model)}
    save_model_folder(out_dir / "model", payload, model.tokenizer, metrics)
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2, default=str) + "\n")
    print(f"model folder: {out_dir / 'model'}", flush=True)
    return metrics


# ---------------------------------------------------------------------------------------------- pruning


@dataclass(frozen=True)
class PruneOptions:
    """What :func:`prune` removes."""

    keep_heads: float = 1.0  # fraction of all attention heads kept (ranked globally; >= 1 per layer)
    keep_ffn: float = 1.0  # fraction of FFN neurons kept in every layer
    drop_layers: int = 0  # top transformer layers removed
    batches: int = 16  # training batches used to score importance

    def __post_init__(self):
        if not 0.0 < self.keep_heads <= 1.0 or not 0.0 < self.keep_ffn <= 1.0:
            raise ValueError(f"keep_heads and keep_ffn must lie in (0, 1], got {self.keep_heads} and {self.keep_ffn}")
        if self.drop_layers < 0 or self.batches < 1:
            raise ValueError(f"drop_layers must be >= 0 and batches >= 1, got {self.drop_layers} and {self.batches}")


def importance(
    net: nn.Module, batches: Iterable[dict], loss_fn: Callable[[nn.Module, dict], torch.Tensor]
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """First-order importance of every head and FFN neuron: ``([(heads_l,) per layer], [(ffn_l,) per layer])``.

    A gate of ones is multiplied into the input of each layer's attention output projection (the concatenated
    head contexts, ``(B, T, heads * d)``) and of its FFN output projection (``(B, T, ffn)``); the score is the
    sum over batches of ``|d loss / d gate|``.
    """
    layers = encoder_layers(net.encoder)
    parts = [layer_parts(layer) for layer in layers]
    head_gates = [torch.ones(p.query.out_features // p.head_size, requires_grad=True) for p in parts]
    ffn_gates = [torch.ones(p.ffn_in.out_features, requires_grad=True) for p in parts]
    head_scores = [torch.zeros_like(g) for g in head_gates]
    ffn_scores = [torch.zeros_like(g) for g in ffn_gates]
    hooks = []
    for p, hg, fg in zip(parts, head_gates, ffn_gates):
        d = p.head_size
        hooks.append(
            p.attn_out.register_forward_pre_hook(lambda mod, args, g=hg, d=d: (args[0] * g.repeat_interleave(d),))
        )
        hooks.append(p.ffn_out.register_forward_pre_hook(lambda mod, args, g=fg: (args[0] * g,)))
    was = net.training
    net.eval()  # no dropout: scores of the deterministic function
    seen = 0
    try:
        for batch in batches:
            loss = loss_fn(net, batch)
            grads = torch.autograd.grad(loss, head_gates + ffn_gates)
            for s, g in zip(head_scores + ffn_scores, grads):
                s += g.abs()
            seen += 1
    finally:
        for h in hooks:
            h.remove()
        net.train(was)
    if not seen:
        raise DataError("no batches to score importance on (the pruning data is empty)")
    return head_scores, ffn_scores


def prune(
    net: nn.Module, batches: Iterable[dict], loss_fn: Callable[[nn.Module, dict], torch.Tensor], options: PruneOptions
) -> dict:
    """Remove heads, FFN neurons and top layers of ``net.encoder`` in place (see the module docstring).

    Returns ``{"before": structure, "after": structure, "parameters_before", "parameters_after"}``.
    """
    before = structure(net.encoder)
    n_before = sum(p.numel() for p in net.parameters())
    n_layers = before["layers"]
    if options.drop_layers >= n_layers:
        raise InputError(f"drop_layers={options.drop_layers}: the encoder has only {n_layers} layers (keep one)")
    head_scores, ffn_scores = importance(net, batches, loss_fn)
    # Heads: normalise scores per layer (L2), rank globally, keep the top fraction with >= 1 per layer.
    normed = [s / (s.norm() + 1e-12) for s in head_scores]
    total = sum(len(s) for s in normed)
    n_keep = max(n_layers, int(round(options.keep_heads * total)))
    ranked = sorted(((float(v), li, hi) for li, s in enumerate(normed) for hi, v in enumerate(s)), reverse=True)
    keep_heads: list[set[int]] = [{int(torch.argmax(s))} for s in normed]
    for _, li, hi in ranked:
        if sum(map(len, keep_heads)) >= n_keep:
            break
        keep_heads[li].add(hi)
    keep_ffn = []
    for s in ffn_scores:
        k = max(1, int(round(options.keep_ffn * len(s))))
        keep_ffn.append(torch.topk(s, k).indices.tolist())
    kept_layers = list(range(n_layers - options.drop_layers))
    shrink_encoder(net.encoder, [sorted(h) for h in keep_heads], keep_ffn, kept_layers)
    return {
        "before": before,
        "after": structure(net.encoder),
        "parameters_before": n_before,
        "parameters_after": sum(p.numel() for p in net.parameters()),
        "options": options.__dict__,
    }


# ------------------------------------------------------------------------------------------------ export


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


class _Exported(nn.Module):
    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, input_ids, attention_mask, token_type_ids):
        return self.net(input_ids, attention_mask, token_type_ids)


def example_batch(tokenizer: Any, texts: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
    """A padded batch of real text (rows of different lengths, so the graph keeps its masking path)."""
    texts = list(
        texts
        or [
            "the quick brown fox jumps over the lazy dog and runs into the forest",
            "hello there",
            "what time is it in new york city right now",
        ]
    )
    enc = [tokenizer(t, add_special_tokens=True)["input_ids"] for t in texts]
    return pad_batch(enc, tokenizer.pad_token_id)


def onnx_metadata(model: NLPModel, extra: dict | None = None) -> dict[str, str]:
    meta = {
        "format": FORMAT,
        "task": model.task,
        "labels": json.dumps(model.labels),
        "net": json.dumps(model.net_config),
        "max_length": str(model.max_length),
        "spec": json.dumps(model.spec, default=str),
        "speechtao_version": __version__,
        "input_names": json.dumps(INPUT_NAMES),
        "output_names": json.dumps(list(model.net.output_names)),
        "model_author": "speechtao",
        "structure": json.dumps(structure(model.net.encoder)),
        "extra": json.dumps(model.extra, default=str),
    }
    meta.update({k: str(v) for k, v in (extra or {}).items()})
    return meta


def _set_metadata(path: Path, meta: dict[str, str]) -> None:
    import onnx

    m = onnx.load(str(path))
    del m.metadata_props[:]
    for k, v in meta.items():
        e = m.metadata_props.add()
        e.key, e.value = k, v
    onnx.save(m, str(path))


def compare_outputs(path: str | Path, net: nn.Module, batch: dict) -> tuple[float, float]:
    """``(max |ORT - PyTorch| over valid positions, argmax agreement)`` of every output on ``batch``."""
    onnx_net = OnnxNet(path, threads=1)
    net.eval()
    with torch.no_grad():
        ref = net(*net_inputs(batch))
    got = onnx_net(*net_inputs(batch))
    mask = batch[ATTENTION_MASK].bool()
    diff, same, total = 0.0, 0, 0
    for r, g in zip(ref, got):
        if r.shape != g.shape:
            return float("inf"), 0.0
        rr, gg = (r[mask], g[mask]) if r.dim() == 3 else (r, g)  # (B, T, C) -> valid (N, C)
        diff = max(diff, float((rr - gg).abs().max()))
        same += int((rr.argmax(-1) == gg.argmax(-1)).sum())
        total += rr.shape[0]
    return diff, same / max(total, 1)


@dataclass
class ExportResult:
    fp32: Path
    fp32_max_diff: float
    int8: Path | None = None
    int8_max_diff: float | None = None
    int8_agreement: float | None = None


def export_onnx(
    model: NLPModel, out_dir: str | Path, int8: bool = False, check: bool = True, tolerance: float = MAX_ABS_DIFF
) -> ExportResult:
    """Export ``model`` into ``out_dir`` (see the module docstring). The FP32 graph is checked against
    PyTorch on a padded batch of real text; a max |logit diff| above ``tolerance`` removes it and raises
    :class:`ExportCheckError`. INT8 (dynamic quantization) reports its difference and argmax agreement."""
    import warnings

    if model.is_onnx:
        raise InputError(f"{model.source}: is already ONNX; export from the model folder (model.pt)")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    fp32 = out / ONNX_FILE
    net = model.net.eval()
    batch = example_batch(model.tokenizer)
    axes = {name: {0: "batch", 1: "tokens"} for name in INPUT_NAMES}
    for name in net.output_names:
        axes[name] = {0: "batch", 1: "tokens"} if model.net_config["kind"] == "token" else {0: "batch"}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice and tracer notes
        # The wrapper must be in eval mode: the exporter restores the wrapper's mode on every submodule afterwards.
        torch.onnx.export(
            _Exported(net).eval(),
            net_inputs(batch),
            str(fp32),
            input_names=list(INPUT_NAMES),
            output_names=list(net.output_names),
            dynamic_axes=axes,
            opset_version=OPSET,
            do_constant_folding=True,
            dynamo=False,
        )
    _set_metadata(fp32, onnx_metadata(model, {"precision": "fp32"}))
    model.tokenizer.save_pretrained(str(out))
    result = ExportResult(fp32, 0.0)
    check_batch = example_batch(
        model.tokenizer,
        [
            "a different batch",
            "of other lengths than the traced one is used for the check so that dynamic axes are exercised",
            "ok",
        ],
    )
    if check:
        diff, _ = compare_outputs(fp32, net, check_batch)
        result.fp32_max_diff = diff
        if not diff <= tolerance:
            fp32.unlink(missing_ok=True)
            raise ExportCheckError(
                f"{fp32}: ONNX Runtime output differs from PyTorch by {diff:.3g} > {tolerance:g}; "
                "the file was removed. Report this with torch, transformers and onnxruntime "
                "versions (speechtao env)"
            )
    if int8:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        q = out / ONNX_INT8_FILE
        import logging

        root = logging.getLogger()
        level = root.level
        root.setLevel(logging.ERROR)  # ORT logs a pre-processing suggestion on the root logger
        try:
            # MatMul only, per-channel weight scales: measured on MiniLM punctuation, this kept capitalization F1
            # within 0.4 points of FP32 where ORT's defaults (also Gather/Attention, per-tensor) lost 1.5 points,
            # and it ran as fast.
            quantize_dynamic(
                str(fp32), str(q), weight_type=QuantType.QInt8, per_channel=True, op_types_to_quantize=["MatMul"]
            )
        finally:
            root.setLevel(level)
        _set_metadata(
            q,
            onnx_metadata(
                model,
                {
                    "precision": "int8",
                    "quantization": "onnxruntime dynamic: MatMul weights int8 per-channel, activation ranges per call",
                },
            ),
        )
        diff, agree = compare_outputs(q, net, check_batch)
        result.int8, result.int8_max_diff, result.int8_agreement = q, diff, agree
    summary = {
        "task": model.task,
        "labels": model.labels,
        "max_length": model.max_length,
        "inputs": list(INPUT_NAMES),
        "outputs": list(net.output_names),
        "fp32": fp32.name,
        "fp32_max_abs_diff": result.fp32_max_diff,
        "int8": result.int8.name if result.int8 else None,
        "int8_max_abs_diff": result.int8_max_diff,
        "int8_argmax_agreement": result.int8_agreement,
        "structure": structure(net.encoder),
        "speechtao_version": __version__,
    }
    (out / SUMMARY_FILE).write_text(json.dumps(summary, indent=2) + "\n")
    return result


# ------------------------------------------------------------------------------------- task scaffolding


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


def prune_and_retrain(
    model: NLPModel,
    task: EncoderTask,
    options: PruneOptions,
    out_dir: str | Path,
    retrain_steps: int,
    lr: float,
    monitor: str,
    evaluate: Callable[[NLPModel], dict] | None = None,
    log: Callable[[str], None] = print,
) -> dict:
    """Prune ``model`` (scores from the first ``options.batches`` batches of ``task``), fine-tune it for
    ``retrain_steps`` steps on ``task`` (0: none) and write the model folder ``out_dir``. Returns a report."""
    from ..train.loop import Trainer, TrainerSpec
    from ..train.optim import OptimSpec
    from ..train.schedule import ScheduleSpec

    out = Path(out_dir)
    net = model.net
    batches = (b for i, b in zip(range(options.batches), task.train_batches(0, 0)))
    report = prune(net, batches, task.loss_fn, options)
    log(
        f"pruned: heads {sum(report['before']['heads'])} -> {sum(report['after']['heads'])}, FFN neurons "
        f"{sum(report['before']['ffn'])} -> {sum(report['after']['ffn'])}, layers {report['before']['layers']} -> "
        f"{report['after']['layers']}, parameters {report['parameters_before']:,} -> {report['parameters_after']:,}"
    )
    model.net_config = net.config()
    if retrain_steps > 0:
        trainer_spec = TrainerSpec(
            out_dir=out / "retrain",
            max_epochs=10_000,
            max_steps=retrain_steps,
            log_every=max(1, retrain_steps // 10),
            val_every=retrain_steps,
            checkpoint_every=retrain_steps,
            monitor=monitor,
            monitor_mode="max",
        )
        trainer = Trainer(task, trainer_spec, OptimSpec(lr=lr, weight_decay=0.01), ScheduleSpec(warmup_ratio=0.1))
        report["retrain"] = trainer.fit()
        best = read_payload(out / "retrain" / "best.pt")
        net.load_state_dict(best["state_dict"])
    net.eval()
    if evaluate is not None:
        report["eval"] = evaluate(model)
    save_model_folder(
        out,
        model.payload(extra={**model.extra, "pruning": {k: report[k] for k in ("before", "after", "options")}}),
        model.tokenizer,
        report.get("eval"),
    )
    (out / "prune_report.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    return report


# ------------------------------------------------------------------------------ word-level tagging tasks


@dataclass
class TaggedItem:
    """One encoded training sequence of a word-tagging task."""

    ids: list[int]
    starts: list[int]  # token position of each word's first piece
    labels: dict[str, list[int]]  # per head: a label index per word

    def __len__(self) -> int:
        return len(self.ids)


def encode_tagged(
    tokenizer: Any, lines: Sequence[Sequence[str]], labels: Sequence[dict[str, Sequence[int]]], max_length: int
) -> list[TaggedItem]:
    """Tokenize word lines with their per-head word labels; lines longer than ``max_length`` pieces are cut
    into several sequences at word boundaries."""
    items = []
    for words_pieces, lab in zip(word_pieces(tokenizer, lines), labels):
        for a, b in chunk_words(words_pieces, max_length - 2):
            enc = encode_pieces(tokenizer, words_pieces[a:b], max_length)
            n = len(enc.starts)
            items.append(TaggedItem(enc.ids, enc.starts, {k: list(v[a : a + n]) for k, v in lab.items()}))
    return items


def collate_tagged(items: Sequence[TaggedItem], pad_id: int) -> dict[str, torch.Tensor]:
    """Padded inputs plus one ``(B, T)`` label tensor per head (``IGNORE_INDEX`` off word starts)."""
    batch = pad_batch([it.ids for it in items], pad_id)
    t = batch[INPUT_IDS].shape[1]
    for head in items[0].labels:
        lab = torch.full((len(items), t), IGNORE_INDEX, dtype=torch.long)
        for i, it in enumerate(items):
            lab[i, torch.tensor(it.starts, dtype=torch.long)] = torch.tensor(it.labels[head], dtype=torch.long)
        batch[head] = lab
    return batch


def tagging_loss(
    net: nn.Module,
    batch: dict,
    weights: dict[str, float] | None = None,
    class_weights: dict[str, torch.Tensor] | None = None,
) -> torch.Tensor:
    """Sum over heads of ``weight * cross-entropy`` at word starts (heads in ``net.head_sizes`` order).

    ``class_weights[head]`` (a ``(C,)`` tensor) weights that head's classes; the head's loss is then the
    weighted mean (divided by the summed weights of its labelled words, as ``cross_entropy`` does)."""
    outs = net(*net_inputs(batch))  # each (B, T, C)
    total = torch.zeros(())
    for name, logits in zip(net.head_sizes, outs):
        w = 1.0 if weights is None else weights.get(name, 1.0)
        cw = None if class_weights is None else class_weights.get(name)
        total = total + w * nn.functional.cross_entropy(
            logits.flatten(0, 1), batch[name].flatten(), weight=cw, ignore_index=IGNORE_INDEX
        )
    return total


def inverse_sqrt_weights(labels: Iterable[int], classes: int) -> torch.Tensor:
    """Class weights ``1 / sqrt(frequency)``, scaled so that their frequency-weighted mean is 1 (a class
    that never occurs gets the largest weight of the others)."""
    counts = np.bincount(np.fromiter(labels, dtype=np.int64), minlength=classes)[:classes].astype(np.float64)
    if counts.sum() == 0:
        raise DataError("no labelled words to compute class weights from (is the training set empty?)")
    freq = counts / counts.sum()
    w = np.zeros(classes)
    seen = freq > 0
    w[seen] = 1.0 / np.sqrt(freq[seen])
    w[~seen] = w[seen].max()
    w /= float((freq * w).sum())
    return torch.tensor(w, dtype=torch.float32)


def head_probabilities(
    model: NLPModel, lines: Sequence[Sequence[str]], batch_size: int = 32
) -> list[list[torch.Tensor]]:
    """``out[line][head]``: a ``(words, labels)`` tensor, the softmax of each head at each word's first piece
    (lines longer than the model's ``max_length`` are cut into windows at word boundaries)."""
    tok = model.tokenizer
    sizes = list(model.net_config["heads"].values())
    seqs = []  # (line, first word, encoding)
    for li, pieces in enumerate(word_pieces(tok, lines)):
        for a, b in chunk_words(pieces, model.max_length - 2):
            seqs.append((li, a, encode_pieces(tok, pieces[a:b], model.max_length)))
    out = [[torch.zeros(len(w), n) for n in sizes] for w in lines]
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i][2].ids))
    with torch.no_grad():
        for s in range(0, len(order), batch_size):
            chunk = [seqs[i] for i in order[s : s + batch_size]]
            batch = pad_batch([c[2].ids for c in chunk], tok.pad_token_id)
            probs = [torch.softmax(o.float(), -1) for o in model.net(*net_inputs(batch))]  # each (B, T, C)
            for row, (li, a, enc) in enumerate(chunk):
                pos = torch.tensor(enc.starts, dtype=torch.long)
                for h, p in enumerate(probs):
                    out[li][h][a : a + len(enc.starts)] = p[row, pos]
    return out


def predict_tags(model: NLPModel, lines: Sequence[Sequence[str]], batch_size: int = 32) -> list[list[list[int]]]:
    """Label indices ``out[line][head][word]``: the most probable label of each head at each word (see
    :func:`head_probabilities`)."""
    return [[p.argmax(-1).tolist() for p in heads] for heads in head_probabilities(model, lines, batch_size)]
