"""Extractive question answering: a span head on a pretrained encoder, long contexts in overlapping windows,
n-best span decoding with a null (no-answer) score, and SQuAD exact match / F1.

Model (:class:`speechtao.nlp.heads.TokenTaggingNet` with one 2-class head ``span``)::

    input_ids, attention_mask, token_type_ids   int64 (B, T)    [CLS] question [SEP] context window [SEP]
 -> encoder                                     float (B, T, H)
 -> span head                                   span_logits float (B, T, 2): [..., 0] start, [..., 1] end

Model folder: :mod:`speechtao.nlp.model_io`'s, with the QA options (``doc_stride``, ``max_query_length``,
``max_answer_length``, ``n_best``, ``version_2_with_negative``, ``null_score_diff_threshold``) under
``extra["qa"]``, which exported ONNX files carry in their ``extra`` metadata.

Windows and span decoding: :mod:`speechtao.nlp.qa_windows`; SQuAD metrics: :mod:`speechtao.nlp.qa_metrics`.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import DataError, InputError
from ..train.loop import TrainerSpec
from ..train.optim import OptimSpec
from ..train.schedule import ScheduleSpec
from .heads import TokenTaggingNet
from .model_io import ModelSpec, NLPModel
from .prune import PruneSpec, prune_and_retrain
from .qa_metrics import best_null_threshold, predictions_to_answers, squad_metrics
from .qa_windows import Prediction, Window, WindowOptions, collate_windows, decode_example, make_windows
from .squad import QAExample
from .training import EncoderTask

# ----------------------------------------------------------------------------------------------- model

TASK = "qa"
LABELS = {"span": ["start", "end"]}  # one 2-class head over every token: column 0 start, 1 end
OUTPUT_NAME = "span_logits"


def make_net(encoder: nn.Module, head_layers: int = 1, dropout: float = 0.1) -> TokenTaggingNet:
    """Encoder + span head: ``forward(input_ids (B, T), attention_mask (B, T), token_type_ids (B, T)) ->
    (span_logits (B, T, 2),)``; ``[..., 0]`` are start logits, ``[..., 1]`` end logits."""
    return TokenTaggingNet(encoder, {"span": 2}, head_layers, dropout)


def span_logits(net: Any, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """``(start_logits (B, T), end_logits (B, T))`` of ``net`` (PyTorch or ONNX Runtime) on ``batch``."""
    (logits,) = net(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])  # (B, T, 2)
    return logits[..., 0], logits[..., 1]


def span_loss(
    start_logits: torch.Tensor,
    end_logits: torch.Tensor,
    attention_mask: torch.Tensor,
    start_positions: torch.Tensor,
    end_positions: torch.Tensor,
) -> torch.Tensor:
    """Mean of the start and end cross-entropies; padding positions are masked out. Logits (B, T), positions (B,)."""
    pad = attention_mask == 0
    start_logits = start_logits.masked_fill(pad, -1e4)
    end_logits = end_logits.masked_fill(pad, -1e4)
    ce = nn.functional.cross_entropy
    return 0.5 * (ce(start_logits, start_positions) + ce(end_logits, end_positions))


def batch_loss(net: nn.Module, batch: dict) -> torch.Tensor:
    start, end = span_logits(net, batch)
    return span_loss(start, end, batch["attention_mask"], batch["start_positions"], batch["end_positions"])


# ------------------------------------------------------------------------------------------ prediction


def window_logits(
    net: Any, tokenizer: Any, windows: Sequence[Window], batch_size: int = 32
) -> list[tuple[list[float], list[float]]]:
    """``(start_logits, end_logits)`` of every window (unpadded), batching windows of similar length."""
    if batch_size < 1:
        raise InputError(f"batch_size={batch_size}: must be >= 1")
    order = sorted(range(len(windows)), key=lambda i: len(windows[i].input_ids))
    out: list[Any] = [None] * len(windows)
    with torch.no_grad():
        for b in range(0, len(order), batch_size):
            idx = order[b : b + batch_size]
            batch = collate_windows([windows[i] for i in idx], tokenizer.pad_token_id)
            start, end = span_logits(net, batch)
            for j, i in enumerate(idx):
                n = len(windows[i].input_ids)
                out[i] = (start[j, :n].tolist(), end[j, :n].tolist())
    return out


def predict(
    net: Any, tokenizer: Any, examples: Sequence[QAExample], opts: WindowOptions, batch_size: int = 32
) -> dict[str, Prediction]:
    """The best spans of every question (``Prediction.text`` always the best span; apply a threshold with
    :func:`predictions_to_answers`)."""
    windows = make_windows(tokenizer, examples, opts)
    logits = window_logits(net, tokenizer, windows, batch_size)
    per_example: dict[int, list] = collections.defaultdict(list)
    for w, (s, e) in zip(windows, logits):
        per_example[w.example].append((s, e, w.offsets))
    return {ex.id: decode_example(ex.context, per_example[i], opts, None) for i, ex in enumerate(examples)}


# ------------------------------------------------------------------------------------------------ specs


@dataclass(frozen=True)
class QADataSpec:
    train: Path  # SQuAD 1.1/2.0 JSON (speechtao qa make-data writes train.json)
    validation: Path  # picks best.pt and the null threshold (make-data: validation.json)
    max_train_samples: int | None = None  # first N questions only (quick runs)
    skip_train_samples: int = 0  # skip the first N questions first (continue a run on questions it has not seen)
    max_val_samples: int | None = None
    batch_size: int = 16  # windows per training batch
    val_batch_size: int = 64

    def __post_init__(self):
        for name in ("max_train_samples", "max_val_samples"):
            v = getattr(self, name)
            if v is not None and v < 1:
                raise ValueError(f"{name} must be >= 1 or null, got {v}")
        if self.batch_size < 1 or self.val_batch_size < 1:
            raise ValueError("batch_size and val_batch_size must be >= 1")
        if self.skip_train_samples < 0:
            raise ValueError(f"skip_train_samples must be >= 0, got {self.skip_train_samples}")


@dataclass(frozen=True)
class QAOptions:
    """The ``qa`` section: windows, decoding and no-answer handling (model.max_length is the window size)."""

    doc_stride: int = 128  # tokens between the starts of consecutive context windows
    max_query_length: int = 64  # question tokens kept
    max_answer_length: int = 30  # longest answer, in tokens
    n_best: int = 20  # start/end candidates per window
    version_2_with_negative: bool = True  # SQuAD 2.0: learn and predict "no answer"
    null_score_diff_threshold: float | None = None  # null: chosen on the validation set to maximize F1

    def __post_init__(self):
        for name in ("doc_stride", "max_query_length", "max_answer_length", "n_best"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.null_score_diff_threshold is not None and not self.version_2_with_negative:
            raise ValueError("null_score_diff_threshold needs version_2_with_negative: true")

    @classmethod
    def from_dict(cls, values: dict, where: str) -> QAOptions:
        """The options a model stores under ``extra["qa"]``; an unknown key or a bad value raises
        :class:`InputError` naming it and ``where`` (the model file)."""
        unknown = sorted(set(values) - set(cls.__dataclass_fields__))
        if unknown:
            raise InputError(
                f"{where}: unknown QA option(s) {', '.join(map(repr, unknown))} in extra.qa (known: "
                f"{', '.join(cls.__dataclass_fields__)}); export the model again with this speechtao"
            )
        try:
            return cls(**values)
        except (TypeError, ValueError) as exc:
            raise InputError(f"{where}: QA options in extra.qa: {exc}") from None

    @property
    def threshold(self) -> float | None:
        """The null-score threshold in use (None: SQuAD 1.1, always answers; 0.0 when not yet chosen)."""
        if not self.version_2_with_negative:
            return None
        return 0.0 if self.null_score_diff_threshold is None else float(self.null_score_diff_threshold)


@dataclass(frozen=True)
class QAFinetuneSpec:
    model: ModelSpec
    data: QADataSpec
    trainer: TrainerSpec
    optim: OptimSpec
    qa: QAOptions = QAOptions()
    schedule: ScheduleSpec = ScheduleSpec(warmup_ratio=0.1)


def window_options(max_length: int, qa: QAOptions) -> WindowOptions:
    """The window and decoding options of a model whose windows hold ``max_length`` tokens."""
    try:
        return WindowOptions(
            max_seq_length=max_length,
            doc_stride=qa.doc_stride,
            max_query_length=qa.max_query_length,
            max_answer_length=qa.max_answer_length,
            n_best=qa.n_best,
        )
    except ValueError as exc:
        raise InputError(f"QA options: {exc}") from None


# ----------------------------------------------------------------------------------------- the model


class QAModel:
    """A loaded QA model (PyTorch model folder or exported ONNX file) with its window and no-answer options.

    Usage::

        qa = QAModel.load("runs/qa/model")
        qa.answer("Where was Ada born?", "Ada was born in Lyon in 1901.")   # [("Lyon", 0.98, 16, 20)]
    """

    def __init__(self, model: NLPModel):
        if model.task != TASK:
            raise InputError(f"{model.source}: is a {model.task!r} model, not a QA model")
        self.model = model
        options = model.extra.get("qa")  # model.pt's extra, or an ONNX file's `extra` metadata
        if not isinstance(options, dict):
            raise InputError(
                f"{model.source}: has no QA options (extra.qa); it was not written by `speechtao qa "
                "finetune` / `speechtao qa export` (export it again from the model folder)"
            )
        self.options = QAOptions.from_dict(options, model.source)
        self.windows = window_options(model.max_length, self.options)

    @classmethod
    def load(cls, path: str | Path) -> QAModel:
        from .model_io import load_model

        return cls(load_model(path, TASK))

    @property
    def threshold(self) -> float | None:
        """The null-score threshold (None: SQuAD 1.1 model, always answers)."""
        return self.options.threshold

    def predict(self, examples: Sequence[QAExample], batch_size: int = 32) -> dict[str, Prediction]:
        return predict(self.model.net, self.model.tokenizer, examples, self.windows, batch_size)

    def answers(self, examples: Sequence[QAExample], batch_size: int = 32) -> dict[str, str]:
        """Final answer text per question id ("" for unanswerable)."""
        return predictions_to_answers(examples, self.predict(examples, batch_size), self.threshold)

    def answer(self, question: str, context: str, top_n: int = 1) -> list[tuple[str, float, int, int]]:
        """Up to ``top_n`` answers ``(text, probability, start_char, end_char)``, best first; ``[]`` when the
        model judges that ``context`` does not answer ``question``. Probabilities are a softmax over the n-best
        spans and the no-answer score."""
        if not question.strip() or not context.strip():
            raise InputError("answer(): question and context must both be non-empty text")
        if top_n < 1:
            raise InputError(f"top_n={top_n}: ask for at least one answer")
        pred = self.predict([QAExample("q", question, context, ())])["q"]
        if not pred.candidates or (self.threshold is not None and pred.null_score_diff > self.threshold):
            return []
        best = pred.candidates[0].score
        scores = torch.tensor([c.score for c in pred.candidates] + [best + pred.null_score_diff])
        probs = torch.softmax(scores, 0).tolist()
        return [(c.text, float(p), c.start, c.end) for c, p in zip(pred.candidates[:top_n], probs)]


def evaluate(
    qa: QAModel, examples: Sequence[QAExample], batch_size: int = 32, always_answer: bool = False
) -> tuple[dict, dict[str, str]]:
    """SQuAD metrics of ``qa`` on ``examples`` and the predicted answers by id: with the model's own no-answer
    threshold, or with ``always_answer`` the best span for every question (the SQuAD v1.1 protocol)."""
    t0 = time.perf_counter()
    preds = qa.predict(examples, batch_size)
    elapsed = time.perf_counter() - t0
    threshold = None if always_answer else qa.threshold
    answers = predictions_to_answers(examples, preds, threshold)
    metrics = squad_metrics(examples, answers)
    metrics["null_score_diff_threshold"] = threshold
    metrics["seconds"] = round(elapsed, 3)
    return metrics, answers


# ------------------------------------------------------------------------------------------- training


def _check_version(examples: Sequence[QAExample], path: Path, qa: QAOptions) -> None:
    n_impossible = sum(ex.is_impossible for ex in examples)
    if n_impossible and not qa.version_2_with_negative:
        raise DataError(
            f"{path}: {n_impossible} unanswerable question(s) but qa.version_2_with_negative is false "
            "(set it true, or remove the unanswerable questions)"
        )


def _validator(
    model: NLPModel,
    examples: Sequence[QAExample],
    opts: WindowOptions,
    batch_size: int,
    fixed_threshold: float | None,
    v2: bool,
):
    """``validate()`` for the Trainer: SQuAD metrics on ``examples``; with SQuAD 2.0 and no fixed threshold it
    picks the F1-maximizing null threshold and stores it in ``model.extra["qa"]`` (saved with the weights)."""

    def validate() -> dict[str, float]:
        preds = predict(model.net, model.tokenizer, examples, opts, batch_size)
        if not v2:
            threshold = None
        elif fixed_threshold is not None:
            threshold = fixed_threshold
        else:
            threshold, _ = best_null_threshold(examples, preds)
        model.extra.setdefault("qa", {})["null_score_diff_threshold"] = threshold
        metrics = squad_metrics(examples, predictions_to_answers(examples, preds, threshold))
        if threshold is not None:
            metrics["null_threshold"] = threshold
        return {k: v for k, v in metrics.items() if not k.endswith("total")}

    return validate


def make_task(
    model: NLPModel,
    train: Sequence[QAExample],
    val: Sequence[QAExample],
    *,
    opts: WindowOptions,
    qa: QAOptions,
    batch_size: int,
    val_batch_size: int,
    seed: int,
    spec: Any = None,
) -> EncoderTask:
    """The Trainer task over the windows of ``train`` (``batch_size`` windows a batch, shuffled from ``seed``),
    validated on ``val`` (``val_batch_size`` windows a batch); ``spec`` is saved with each checkpoint."""
    windows = make_windows(model.tokenizer, train, opts)
    pad = model.tokenizer.pad_token_id
    validate = _validator(model, val, opts, val_batch_size, qa.null_score_diff_threshold, qa.version_2_with_negative)
    return EncoderTask(
        model.net,
        windows,
        lambda ws: collate_windows(ws, pad),
        batch_loss,
        validate,
        lambda: model.payload(spec, extra=model.extra),
        batch_size,
        seed,
        length=lambda w: len(w.input_ids),
    )


def finetune(spec: QAFinetuneSpec, resume: bool = False, log=print) -> dict:
    """Fine-tune a QA model from ``spec`` and write ``<trainer.out_dir>/model``; returns the run's metrics."""
    from .model_io import start_model
    from .training import train_and_save

    train = train_examples(spec.data)
    val = read_examples(spec.data.validation, spec.data.max_val_samples)
    _check_version(train, spec.data.train, spec.qa)
    _check_version(val, spec.data.validation, spec.qa)
    model = start_model(
        spec.model,
        TASK,
        LABELS,
        lambda enc: make_net(enc, spec.model.head_layers, spec.model.dropout),
        spec.trainer.seed,
    )
    opts = window_options(spec.model.max_length, spec.qa)
    model.extra = {**model.extra, "qa": asdict(spec.qa)}
    t0 = time.perf_counter()
    task = make_task(
        model,
        train,
        val,
        opts=opts,
        qa=spec.qa,
        batch_size=spec.data.batch_size,
        val_batch_size=spec.data.val_batch_size,
        seed=spec.trainer.seed,
        spec=spec,
    )
    log(
        f"qa data: {len(train)} training questions -> {len(task.items)} windows "
        f"({time.perf_counter() - t0:.1f} s); {len(val)} validation questions"
    )
    return train_and_save(task, model, spec, spec.trainer.out_dir, resume)


def train_examples(data: QADataSpec) -> list[QAExample]:
    """The training questions of ``data``: those of ``data.train`` in file order, past the first
    ``skip_train_samples``, at most ``max_train_samples`` of them."""
    skip, keep = data.skip_train_samples, data.max_train_samples
    out = read_examples(data.train)[skip : None if keep is None else skip + keep]
    if not out:
        raise InputError(
            f"{data.train}: no training questions after skip_train_samples={skip} (lower it or give more data)"
        )
    return out


def read_examples(path: str | Path, max_examples: int | None = None) -> list[QAExample]:
    from .squad import read_squad

    return read_squad(path, max_examples)


# ----------------------------------------------------------------------------------------- prune, export


def prune(spec: PruneSpec) -> dict:
    """Prune a QA model (:func:`speechtao.nlp.prune.prune_and_retrain`), retrain it on ``spec.data`` with the
    no-answer threshold re-chosen on ``spec.validation`` (default: ``spec.data``) and write the model folder
    ``spec.out``. Returns the report (with ``eval``: SQuAD metrics on the validation questions)."""
    qa = QAModel.load(spec.model)
    model = qa.model
    if model.is_onnx:
        raise InputError(f"{model.source}: an ONNX model cannot be pruned (give the model folder with model.pt)")
    qa_opts = replace(qa.options, null_score_diff_threshold=None)
    train = read_examples(spec.data, spec.max_train_samples)
    val = read_examples(spec.validation or spec.data, spec.max_val_samples)
    _check_version(train, Path(spec.data), qa_opts)
    model.net.train()
    task = make_task(
        model,
        train,
        val,
        opts=qa.windows,
        qa=qa_opts,
        batch_size=spec.batch_size or 16,
        val_batch_size=64,
        seed=spec.seed,
        spec=model.spec,
    )

    def evaluate_fn(m: NLPModel) -> dict:
        return evaluate(QAModel(m), val)[0]

    return prune_and_retrain(model, task, spec, "f1", evaluate_fn)
