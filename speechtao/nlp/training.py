"""The glue between the NLP tasks and :class:`speechtao.train.loop.Trainer`: a task over pre-encoded
examples, and a fit that writes the best weights as a model folder."""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import DataError
from ..train.loop import TrainTask
from .heads import INPUT_IDS
from .model_io import NLPModel, read_payload, save_model_folder


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
