"""Extractive question answering: a span head on a pretrained encoder, long contexts in overlapping windows,
n-best span decoding with a null (no-answer) score, and SQuAD exact match / F1.

Model (:class:`speechtao.nlp.heads.TokenTaggingNet` with one 2-class head ``span``)::

    input_ids, attention_mask, token_type_ids   int64 (B, T)    [CLS] question [SEP] context window [SEP]
 -> encoder                                     float (B, T, H)
 -> span head                                   span_logits float (B, T, 2): [..., 0] start, [..., 1] end

Model folder: :mod:`speechtao.nlp.model_io`'s, with the QA options (``doc_stride``, ``max_query_length``,
``max_answer_length``, ``n_best``, ``version_2_with_negative``, ``null_score_diff_threshold``) under
``extra["qa"]``, which exported ONNX files carry in their ``extra`` metadata.

Windows: the question is cut to ``max_query_length`` tokens; the context is split into windows of the tokens
that remain of ``max_seq_length``; consecutive windows start ``doc_stride`` tokens apart (NeMo's and TAO's
meaning; Hugging Face's ``stride`` is the overlap, ``window - doc_stride``). A window that does not hold the
whole answer, and every window of an unanswerable question, is labelled with position 0 ([CLS]).

Decoding (per question, over all its windows): every (start, end) pair of context tokens with
``start <= end < start + max_answer_length`` among the ``n_best`` highest start and end logits scores
``start_logit + end_logit``; the null score is the smallest ``start_logit[0] + end_logit[0]`` of any window.
With SQuAD 2.0 data the answer is empty when ``null - best > null_score_diff_threshold``; the threshold that
maximizes F1 on the validation set is chosen after fine-tuning and saved with the model. Character offsets
from the fast tokenizer map a span back to the exact context text.

Metrics follow the official SQuAD evaluation: answers are normalized (lower case, punctuation and the articles
a/an/the removed, whitespace collapsed); exact match and token F1 take the best gold answer; an unanswerable
question scores 1 only for an empty prediction. Values are percentages.
"""

from __future__ import annotations

import collections
import re
import string
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
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
from .squad import Answer, QAExample
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


# -------------------------------------------------------------------------------------------- features


@dataclass(frozen=True)
class WindowOptions:
    max_seq_length: int = 384  # tokens per window: special tokens + question + context
    doc_stride: int = 128  # tokens between the starts of consecutive context windows
    max_query_length: int = 64  # question tokens kept
    max_answer_length: int = 30  # longest predicted answer, in tokens
    n_best: int = 20  # start and end candidates per window

    def __post_init__(self):
        if self.max_seq_length < 16:
            raise ValueError(f"max_seq_length must be >= 16, got {self.max_seq_length}")
        for name in ("doc_stride", "max_query_length", "max_answer_length", "n_best"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.max_query_length + 8 > self.max_seq_length:
            raise ValueError(
                f"max_query_length ({self.max_query_length}) leaves no room for context in "
                f"max_seq_length ({self.max_seq_length}); lower it or raise max_seq_length"
            )


@dataclass
class Window:
    """One model input: a question and one window of its context."""

    example: int  # index into the example list
    input_ids: list[int]
    token_type_ids: list[int]
    offsets: list[tuple[int, int] | None]  # character span in the context for context tokens, else None
    start: int = 0  # gold token positions (0: [CLS], no answer in this window)
    end: int = 0


def _truncate_question(tokenizer: Any, question: str, max_tokens: int) -> tuple[str, int]:
    enc = tokenizer(question, add_special_tokens=False, return_offsets_mapping=True)
    ids = enc["input_ids"]
    if len(ids) <= max_tokens:
        return question, len(ids)
    cut = enc["offset_mapping"][max_tokens - 1][1]
    return question[:cut], max_tokens


def make_windows(tokenizer: Any, examples: Sequence[QAExample], opts: WindowOptions) -> list[Window]:
    """Every window of every example, with gold positions from each example's first answer."""
    n_special = tokenizer.num_special_tokens_to_add(pair=True)
    windows: list[Window] = []
    for ei, ex in enumerate(examples):
        question, q_len = _truncate_question(tokenizer, ex.question, opts.max_query_length)
        budget = opts.max_seq_length - q_len - n_special
        if budget < 1:
            raise InputError(
                f"question {ex.id!r}: no room for context with max_seq_length={opts.max_seq_length} "
                "(raise max_seq_length or lower max_query_length)"
            )
        overlap = max(0, min(budget - opts.doc_stride, budget - 1))
        enc = tokenizer(
            question,
            ex.context,
            truncation="only_second",
            max_length=opts.max_seq_length,
            stride=overlap,
            return_overflowing_tokens=True,
            return_offsets_mapping=True,
            return_token_type_ids=True,
        )
        answer = ex.answers[0] if ex.answers and not ex.is_impossible else None
        for w in range(len(enc["input_ids"])):
            seq = enc.sequence_ids(w)
            offsets = [tuple(o) if s == 1 else None for o, s in zip(enc["offset_mapping"][w], seq)]
            win = Window(ei, list(enc["input_ids"][w]), list(enc["token_type_ids"][w]), offsets)
            if answer is not None:
                a_start, a_end = answer.start, answer.start + len(answer.text)
                ctx = [i for i, o in enumerate(offsets) if o is not None]
                if ctx and offsets[ctx[0]][0] <= a_start and offsets[ctx[-1]][1] >= a_end:
                    win.start = next(i for i in ctx if offsets[i][1] > a_start)
                    win.end = next(i for i in reversed(ctx) if offsets[i][0] < a_end)
            windows.append(win)
    return windows


def collate_windows(windows: Sequence[Window], pad_id: int) -> dict[str, torch.Tensor]:
    """Pad to the longest window: ``input_ids``, ``attention_mask``, ``token_type_ids`` (B, T);
    ``start_positions``, ``end_positions``, ``example`` (B,)."""
    t = max(len(w.input_ids) for w in windows)
    b = len(windows)
    ids = torch.full((b, t), pad_id, dtype=torch.long)
    mask = torch.zeros((b, t), dtype=torch.long)
    types = torch.zeros((b, t), dtype=torch.long)
    for i, w in enumerate(windows):
        n = len(w.input_ids)
        ids[i, :n] = torch.tensor(w.input_ids)
        mask[i, :n] = 1
        types[i, :n] = torch.tensor(w.token_type_ids)
    return {
        "input_ids": ids,
        "attention_mask": mask,
        "token_type_ids": types,
        "start_positions": torch.tensor([w.start for w in windows]),
        "end_positions": torch.tensor([w.end for w in windows]),
        "example": torch.tensor([w.example for w in windows]),
    }


# -------------------------------------------------------------------------------------------- decoding


@dataclass(frozen=True)
class Span:
    text: str
    score: float  # start_logit + end_logit
    start: int  # character offsets in the context
    end: int


@dataclass(frozen=True)
class Prediction:
    text: str  # "" when the question is judged unanswerable
    start: int  # -1 when unanswerable
    end: int
    null_score_diff: float  # null score minus the best span's score (larger: more likely unanswerable)
    candidates: tuple[Span, ...]  # the n-best spans, best first
    probability: float  # softmax of the best span over the n-best spans and the null score


def window_spans(
    start_logits: Sequence[float],
    end_logits: Sequence[float],
    offsets: Sequence[tuple[int, int] | None],
    context: str,
    opts: WindowOptions,
) -> list[Span]:
    """The valid spans of one window among its ``n_best`` start and end positions (unsorted)."""
    n = len(offsets)
    s_logits = torch.as_tensor(start_logits[:n], dtype=torch.float32)
    e_logits = torch.as_tensor(end_logits[:n], dtype=torch.float32)
    k = min(opts.n_best, n)
    starts = torch.topk(s_logits, k).indices.tolist()
    ends = torch.topk(e_logits, k).indices.tolist()
    spans = []
    for s in starts:
        if offsets[s] is None:
            continue
        for e in ends:
            if offsets[e] is None or e < s or e - s + 1 > opts.max_answer_length:
                continue
            cs, ce = offsets[s][0], offsets[e][1]
            spans.append(Span(context[cs:ce], float(s_logits[s] + e_logits[e]), cs, ce))
    return spans


def decode_example(
    context: str,
    window_logits: Iterable[tuple[Sequence[float], Sequence[float], Sequence[tuple[int, int] | None]]],
    opts: WindowOptions,
    null_threshold: float | None,
) -> Prediction:
    """Pick the answer of one question from the logits of its windows.

    ``window_logits`` yields ``(start_logits (T,), end_logits (T,), offsets)`` per window. ``null_threshold``
    None means SQuAD 1.1 (always answer); otherwise the answer is empty when ``null - best > null_threshold``.
    """
    spans: dict[tuple[int, int], Span] = {}
    null = None
    for start_logits, end_logits, offsets in window_logits:
        score = float(start_logits[0]) + float(end_logits[0])
        null = score if null is None else min(null, score)
        for sp in window_spans(start_logits, end_logits, offsets, context, opts):
            key = (sp.start, sp.end)
            if key not in spans or spans[key].score < sp.score:
                spans[key] = sp
    ranked = sorted(spans.values(), key=lambda sp: -sp.score)[: opts.n_best]
    null = 0.0 if null is None else null
    if not ranked:
        return Prediction("", -1, -1, float("inf"), (), 1.0)
    best = ranked[0]
    scores = torch.tensor([sp.score for sp in ranked] + [null])
    probs = torch.softmax(scores, dim=0)
    diff = null - best.score
    if null_threshold is not None and diff > null_threshold:
        return Prediction("", -1, -1, diff, tuple(ranked), float(probs[-1]))
    return Prediction(best.text, best.start, best.end, diff, tuple(ranked), float(probs[0]))


# --------------------------------------------------------------------------------------------- metrics

_ARTICLES_RE = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCT = set(string.punctuation)


def normalize_answer(text: str) -> str:
    """SQuAD normalization: lower case, no punctuation, no articles (a, an, the), single spaces."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCT)
    text = _ARTICLES_RE.sub(" ", text)
    return " ".join(text.split())


def exact_match(prediction: str, gold: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(gold))


def f1_score(prediction: str, gold: str) -> float:
    """Token F1 of the normalized answers; two empty answers score 1, one empty answer 0."""
    pred, ref = normalize_answer(prediction).split(), normalize_answer(gold).split()
    if not pred or not ref:
        return float(pred == ref)
    common = collections.Counter(pred) & collections.Counter(ref)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred), same / len(ref)
    return 2 * precision * recall / (precision + recall)


def gold_texts(ex: QAExample) -> list[str]:
    """Gold answers to score against; ``[""]`` for an unanswerable question."""
    texts = [a.text for a in ex.answers if normalize_answer(a.text)]
    return [""] if ex.is_impossible or not texts else texts


def score_example(ex: QAExample, prediction: str) -> tuple[float, float]:
    """(exact match, F1) against the best gold answer, each 0..1."""
    golds = gold_texts(ex)
    return max(exact_match(prediction, g) for g in golds), max(f1_score(prediction, g) for g in golds)


def squad_metrics(examples: Sequence[QAExample], predictions: dict[str, str]) -> dict[str, float]:
    """``exact``, ``f1`` (percent) over all questions, and over answerable (``has_ans_*``) and unanswerable
    (``no_ans_*``) ones when present; ``total``, ``has_ans_total``, ``no_ans_total`` counts."""
    missing = [ex.id for ex in examples if ex.id not in predictions]
    if missing:
        raise InputError(f"{len(missing)} question(s) have no prediction, e.g. {missing[0]!r}")
    em: dict[str, list[float]] = {"all": [], "has": [], "no": []}
    f1: dict[str, list[float]] = {"all": [], "has": [], "no": []}
    for ex in examples:
        e, f = score_example(ex, predictions[ex.id])
        group = "no" if ex.is_impossible else "has"
        for g in ("all", group):
            em[g].append(e)
            f1[g].append(f)
    out: dict[str, float] = {
        "exact": 100.0 * _mean(em["all"]),
        "f1": 100.0 * _mean(f1["all"]),
        "total": float(len(examples)),
    }
    for g, name in (("has", "has_ans"), ("no", "no_ans")):
        if em[g]:
            out[f"{name}_exact"] = 100.0 * _mean(em[g])
            out[f"{name}_f1"] = 100.0 * _mean(f1[g])
            out[f"{name}_total"] = float(len(em[g]))
    return out


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def best_null_threshold(examples: Sequence[QAExample], predictions: dict[str, Prediction]) -> tuple[float, float]:
    """The ``null_score_diff_threshold`` that maximizes F1 (percent) when every question whose
    ``null_score_diff`` exceeds it is answered empty; returns ``(threshold, f1)``."""
    # A threshold t empties exactly the questions with diff > t: sweep t down over the sorted diffs.
    rows = []
    for ex in examples:
        pred = predictions[ex.id]
        best_text = pred.candidates[0].text if pred.candidates else ""  # no span at all: diff is inf, always empty
        rows.append((min(pred.null_score_diff, 1e9), score_example(ex, best_text)[1], score_example(ex, "")[1]))
    if not rows:
        raise InputError("no questions to choose a null threshold on")
    rows.sort(key=lambda r: -r[0])  # largest diff first: emptied first as the threshold falls
    total = sum(r[1] for r in rows)  # threshold above every diff: nothing emptied
    best_t, best_total = rows[0][0] + 1.0, total
    for i, (diff, f_ans, f_empty) in enumerate(rows):
        total += f_empty - f_ans
        if i + 1 < len(rows) and rows[i + 1][0] == diff:
            continue  # equal diffs flip together
        t = rows[i + 1][0] if i + 1 < len(rows) else diff - 1.0
        t = (t + diff) / 2.0  # between this diff (emptied) and the next one (kept)
        if total > best_total:
            best_t, best_total = t, total
    return float(best_t), 100.0 * best_total / len(rows)


def predictions_to_answers(
    examples: Sequence[QAExample], predictions: dict[str, Prediction], threshold: float | None
) -> dict[str, str]:
    """Final answer texts under ``threshold`` (None: always the best span)."""
    out = {}
    for ex in examples:
        pred = predictions[ex.id]
        best = pred.candidates[0].text if pred.candidates else ""
        out[ex.id] = "" if threshold is not None and pred.null_score_diff > threshold else best
    return out


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


@dataclass(frozen=True)
class QAFinetuneSpec:
    model: ModelSpec
    data: QADataSpec
    trainer: TrainerSpec
    optim: OptimSpec
    qa: QAOptions = QAOptions()
    schedule: ScheduleSpec = ScheduleSpec(warmup_ratio=0.1)


def window_options(max_length: int, qa: QAOptions | dict) -> WindowOptions:
    q = qa if isinstance(qa, dict) else asdict(qa)
    try:
        return WindowOptions(max_length, q["doc_stride"], q["max_query_length"], q["max_answer_length"], q["n_best"])
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
        self.options = options
        self.windows = window_options(model.max_length, options)

    @classmethod
    def load(cls, path: str | Path) -> QAModel:
        from .model_io import load_model

        return cls(load_model(path, TASK))

    @property
    def threshold(self) -> float | None:
        """The null-score threshold (None: SQuAD 1.1 model, always answers)."""
        if not self.options.get("version_2_with_negative", True):
            return None
        t = self.options.get("null_score_diff_threshold")
        return 0.0 if t is None else float(t)

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


def evaluate(qa: QAModel, examples: Sequence[QAExample], batch_size: int = 32) -> tuple[dict, dict[str, str]]:
    """SQuAD metrics of ``qa`` on ``examples`` (its own threshold) and the predicted answers by id."""
    t0 = time.perf_counter()
    preds = qa.predict(examples, batch_size)
    elapsed = time.perf_counter() - t0
    answers = predictions_to_answers(examples, preds, qa.threshold)
    metrics = squad_metrics(examples, answers)
    metrics["null_score_diff_threshold"] = qa.threshold
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
    opts: WindowOptions,
    qa: QAOptions,
    batch_size: int,
    val_batch_size: int,
    seed: int,
    spec: Any = None,
) -> EncoderTask:
    """The Trainer task over the windows of ``train``, validated on ``val``."""
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

    train = read_examples(spec.data.train, spec.data.max_train_samples)
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
        model, train, val, opts, spec.qa, spec.data.batch_size, spec.data.val_batch_size, spec.trainer.seed, spec
    )
    log(
        f"qa data: {len(train)} training questions -> {len(task.items)} windows "
        f"({time.perf_counter() - t0:.1f} s); {len(val)} validation questions"
    )
    return train_and_save(task, model, spec, spec.trainer.out_dir, resume)


def read_examples(path: str | Path, max_examples: int | None = None) -> list[QAExample]:
    from .squad import read_squad

    return read_squad(path, max_examples)


__all__ = [
    "TASK",
    "LABELS",
    "make_net",
    "span_logits",
    "span_loss",
    "batch_loss",
    "WindowOptions",
    "Window",
    "make_windows",
    "collate_windows",
    "Span",
    "Prediction",
    "window_spans",
    "decode_example",
    "normalize_answer",
    "exact_match",
    "f1_score",
    "gold_texts",
    "score_example",
    "squad_metrics",
    "best_null_threshold",
    "predictions_to_answers",
    "Answer",
    "window_logits",
    "predict",
    "QADataSpec",
    "QAOptions",
    "QAFinetuneSpec",
    "window_options",
    "QAModel",
    "evaluate",
    "make_task",
    "finetune",
    "read_examples",
]


# ----------------------------------------------------------------------------------------- prune, export


def prune(
    qa: QAModel,
    train_path: str | Path,
    val_path: str | Path,
    out_dir: str | Path,
    options: Any,
    retrain_steps: int = 300,
    lr: float = 5e-5,
    batch_size: int = 16,
    max_train_samples: int | None = None,
    max_val_samples: int | None = None,
    log=print,
) -> dict:
    """Prune ``qa`` (:func:`speechtao.nlp.prune.prune_and_retrain`), retrain on ``train_path`` with the
    no-answer threshold re-chosen on ``val_path``, and write the model folder ``out_dir``. Returns the report
    (with ``eval``: SQuAD metrics on ``val_path``)."""
    from .prune import prune_and_retrain

    model = qa.model
    if model.is_onnx:
        raise InputError(f"{model.source}: an ONNX model cannot be pruned (give the model folder with model.pt)")
    opts_dict = dict(qa.options)
    opts_dict.pop("null_score_diff_threshold", None)
    qa_opts = QAOptions(**{k: v for k, v in opts_dict.items() if k in QAOptions.__dataclass_fields__})
    train = read_examples(train_path, max_train_samples)
    val = read_examples(val_path, max_val_samples)
    _check_version(train, Path(train_path), qa_opts)
    model.net.train()
    task = make_task(model, train, val, qa.windows, qa_opts, batch_size, 64, 0, model.spec)

    def evaluate_fn(m: NLPModel) -> dict:
        return evaluate(QAModel(m), val)[0]

    return prune_and_retrain(model, task, options, out_dir, retrain_steps, lr, "f1", evaluate_fn, log)
