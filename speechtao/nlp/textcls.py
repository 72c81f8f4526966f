"""Text classification: one label per sentence from a pooled encoder state.

Data: a TSV file, one example per line, ``sentence<TAB>label`` (no header)::

    And the LORD spake unto Moses, saying,	bible
    The value of the function is cached.	pydocs

:mod:`speechtao.corpora.textcls_gen` builds a corpus whose label is the source a sentence came from (``wordnet``, ``bible``,
``fortunes``, ``pydocs``; see :mod:`speechtao.corpora.textsrc`): documents (runs of consecutive sentences) are
assigned whole to train, dev or test by a seeded hash, and a sentence whose normalized text also occurs in
dev or test is dropped from train. Scores: accuracy and per-class precision/recall/F1 with macro averages.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import DataError, ManifestError
from ..spec import spec_to_dict
from ..train.loop import TrainerSpec
from ..train.optim import OptimSpec
from ..train.schedule import ScheduleSpec
from .heads import SequenceClassifierNet, net_inputs, pad_batch
from .metrics import classification_report, format_report
from .model_io import ModelSpec, NLPModel, load_model, require_task, start_model
from .prune import PruneSpec, prune_task
from .training import EncoderDataSpec, EncoderTask, train_and_save

TASK = "textcls"


@dataclass
class TextExample:
    text: str
    label: str


def read_tsv(path: str | Path, labels: Sequence[str] | None = None, limit: int | None = None) -> list[TextExample]:
    """Read ``sentence<TAB>label`` lines; every defect is reported as ``FILE:LINE: problem (fix)``. With
    ``labels`` a label outside that set is a defect too."""
    path = Path(path)
    if not path.is_file():
        raise DataError(
            f"{path}: not found (a text classification dataset is a TSV file of sentence<TAB>label "
            "lines; `speechtao textcls make-data` writes one)"
        )
    known = set(labels) if labels is not None else None
    out, defects = [], []
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            defects.append(f"{path}:{i}: empty line (remove it)")
            continue
        cols = line.split("\t")
        if len(cols) != 2:
            defects.append(
                f"{path}:{i}: {len(cols)} tab-separated fields (need exactly sentence<TAB>label; tabs "
                "inside the sentence must be replaced by spaces)"
            )
            continue
        text, label = cols[0].strip(), cols[1].strip()
        if not text or not label:
            defects.append(f"{path}:{i}: empty {'sentence' if not text else 'label'}")
            continue
        if known is not None and label not in known:
            defects.append(f"{path}:{i}: label {label!r} is not one of the model's labels {sorted(known)}")
            continue
        out.append(TextExample(text, label))
        if limit is not None and len(out) >= limit and not defects:
            break
    if defects:
        raise ManifestError(defects[:50], f"{path}: {len(defects)} defect(s) in the TSV file")
    if not out:
        raise DataError(f"{path}: no examples")
    return out


def write_tsv(path: str | Path, examples: Sequence[TextExample]) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text("".join(f"{e.text.replace(chr(9), ' ')}\t{e.label}\n" for e in examples), encoding="utf-8")
    return p


# ------------------------------------------------------------------------------------------------ model


def make_net(encoder: nn.Module, spec: ModelSpec, n_labels: int, pooling: str) -> SequenceClassifierNet:
    return SequenceClassifierNet(encoder, n_labels, pooling, spec.head_layers, spec.dropout)


@dataclass
class Item:
    ids: list[int]
    label: int

    def __len__(self) -> int:
        return len(self.ids)


def encode(tokenizer, texts: Sequence[str], max_length: int) -> list[list[int]]:
    return tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"]


def collate(items: Sequence[Item], pad_id: int) -> dict[str, torch.Tensor]:
    batch = pad_batch([it.ids for it in items], pad_id)
    batch["label"] = torch.tensor([it.label for it in items], dtype=torch.long)
    return batch


def loss_fn(net: nn.Module, batch: dict) -> torch.Tensor:
    (logits,) = net(*net_inputs(batch))  # (B, C)
    return nn.functional.cross_entropy(logits, batch["label"])


def predict_proba(model: NLPModel, texts: Sequence[str], batch_size: int = 32) -> torch.Tensor:
    """``(N, classes)`` probabilities."""
    ids = encode(model.tokenizer, texts, model.max_length)
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    probs = torch.zeros(len(ids), len(model.labels["label"]))
    with torch.no_grad():
        for s in range(0, len(order), batch_size):
            idx = order[s : s + batch_size]
            (logits,) = model.net(*net_inputs(pad_batch([ids[i] for i in idx], model.tokenizer.pad_token_id)))
            probs[torch.tensor(idx)] = torch.softmax(logits.float(), -1)
    return probs


def predict(model: NLPModel, texts: Sequence[str], batch_size: int = 32) -> list[tuple[str, float]]:
    """``(label, probability)`` per text."""
    names = model.labels["label"]
    p = predict_proba(model, texts, batch_size)
    conf, arg = p.max(-1)
    return [(names[int(a)], float(c)) for a, c in zip(arg, conf)]


def evaluate(model: NLPModel, examples: Sequence[TextExample], batch_size: int = 32) -> dict:
    names = model.labels["label"]
    index = {n: i for i, n in enumerate(names)}
    pred = predict_proba(model, [e.text for e in examples], batch_size).argmax(-1).tolist()
    report = classification_report([index[e.label] for e in examples], pred, names)
    report["macro_f1"] = report["macro"]["f1"]
    return report


def format_evaluation(report: dict) -> str:
    return format_report("text classification", report)


@dataclass(frozen=True)
class TextclsDataSpec(EncoderDataSpec):
    """``train``/``validation``: TSV files, sentence<TAB>label."""


@dataclass(frozen=True)
class TextclsFinetuneSpec:
    data: TextclsDataSpec
    trainer: TrainerSpec
    optim: OptimSpec
    model: ModelSpec = field(default_factory=ModelSpec)
    schedule: ScheduleSpec = field(default_factory=ScheduleSpec)
    pooling: str = "mean"  # mean over valid tokens (what MiniLM was trained with) or cls

    def __post_init__(self):
        if self.pooling not in ("mean", "cls"):
            raise ValueError(f"pooling must be 'mean' or 'cls', got {self.pooling!r}")


def training_task(
    model: NLPModel,
    train: Path,
    validation: Path,
    batch_size: int,
    seed: int,
    max_train: int | None = None,
    max_val: int | None = None,
) -> EncoderTask:
    """The Trainer task; validation reports ``accuracy`` and ``macro_f1``."""
    names = model.labels["label"]
    train_ex = read_tsv(train, names, max_train)
    val_ex = read_tsv(validation, names, max_val)
    index = {n: i for i, n in enumerate(names)}
    ids = encode(model.tokenizer, [e.text for e in train_ex], model.max_length)
    items = [Item(i, index[e.label]) for i, e in zip(ids, train_ex)]
    pad = model.tokenizer.pad_token_id

    def validate() -> dict:
        r = evaluate(model, val_ex)
        return {"accuracy": r["accuracy"], "macro_f1": r["macro_f1"]}

    return EncoderTask(
        model.net, items, lambda b: collate(b, pad), loss_fn, validate, lambda: model.payload(), batch_size, seed
    )


def finetune(spec: TextclsFinetuneSpec, resume: bool = False) -> dict:
    labels = {"label": sorted({e.label for e in read_tsv(spec.data.train, None, spec.data.max_train_samples)})}
    model = start_model(
        spec.model,
        TASK,
        labels,
        lambda enc: make_net(enc, spec.model, len(labels["label"]), spec.pooling),
        spec.trainer.seed,
    )
    model.spec = spec_to_dict(spec)
    task = training_task(
        model,
        spec.data.train,
        spec.data.validation,
        spec.data.batch_size,
        spec.trainer.seed,
        spec.data.max_train_samples,
        spec.data.max_val_samples,
    )
    return train_and_save(task, model, spec, spec.trainer.out_dir, resume)


def prune(spec: PruneSpec) -> dict:
    """Prune a textcls model and retrain it (see :class:`speechtao.nlp.prune.PruneSpec`); the best retrained
    weights by validation ``macro_f1``. Returns the report written as ``prune_report.json``."""
    return prune_task(spec, TASK, training_task, "macro_f1")


# ---------------------------------------------------------------------------------------------- serving


class TextClassServing:
    """A ``speechtao textcls`` model answering ClassifyText: the ``top_n`` most probable labels of each text."""

    def __init__(self, model: Any):
        self.model = require_task(model, "textcls")

    @classmethod
    def load(cls, path: str | Path) -> TextClassServing:
        return cls(load_model(path, "textcls"))

    def classify(self, texts: list[str], top_n: int = 1) -> list[list[tuple[str, float]]]:
        """Per text: ``[(label, probability), ...]``, most probable first (``top_n`` capped at the label count)."""
        names = self.model.labels["label"]
        probs, index = predict_proba(self.model, texts).topk(min(max(top_n, 1), len(names)), -1)
        return [
            [(names[i], float(q)) for i, q in zip(row_i.tolist(), row_p.tolist())] for row_p, row_i in zip(probs, index)
        ]
