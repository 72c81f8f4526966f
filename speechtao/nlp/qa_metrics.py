"""SQuAD exact match and F1, and the no-answer threshold.

Metrics follow the official SQuAD evaluation: answers are normalized (lower case, punctuation and the articles
a/an/the removed, whitespace collapsed); exact match and token F1 take the best gold answer; an unanswerable
question scores 1 only for an empty prediction. Values are percentages.
"""

from __future__ import annotations

import collections
import re
import string
from collections.abc import Sequence

from ..errors import InputError
from .qa_windows import Prediction
from .squad import QAExample

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
