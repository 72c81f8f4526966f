"""Extractive QA: questions and long contexts in overlapping windows, and n-best span decoding.

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
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ..errors import InputError
from .squad import QAExample

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
