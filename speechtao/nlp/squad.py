"""Question-answering data in the SQuAD 1.1 / 2.0 JSON format: a strict reader and a writer.

SQuAD JSON::

    {"version": "v2.0", "data": [{"title": "...", "paragraphs": [{"context": "...", "qas": [
        {"id": "q1", "question": "...", "answers": [{"text": "...", "answer_start": 17}], "is_impossible": false}
    ]}]}]}

:func:`read_squad` collects every defect before it raises :class:`ManifestError`, each as
``FILE: data[i].paragraphs[j].qas[k]: problem (fix)`` (an ``answer_start`` that does not point at its text, a
duplicate id, an answerable question without answers...). ``is_impossible`` (SQuAD 2.0) marks an unanswerable
question; such a question has no ``answers`` (``plausible_answers`` is accepted and ignored). The generator of QA
data is :mod:`speechtao.corpora.qa_gen`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import DataError, InputError, ManifestError

__all__ = ["Answer", "QAExample", "read_squad", "write_squad"]


@dataclass(frozen=True)
class Answer:
    text: str
    start: int  # character offset of ``text`` in the context


@dataclass(frozen=True)
class QAExample:
    id: str
    question: str
    context: str
    answers: tuple[Answer, ...]  # empty when unanswerable
    is_impossible: bool = False
    title: str = ""
    meta: dict = field(default_factory=dict, compare=False)  # generator bookkeeping (template ids), not written


# ------------------------------------------------------------------------------------------------ reader


def read_squad(path: str | Path, max_examples: int | None = None) -> list[QAExample]:
    """Every question of a SQuAD 1.1/2.0 file, validated; raises :class:`ManifestError` listing all defects."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: SQuAD file not found (make one with `speechtao qa make-data --out DIR`)")
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ManifestError(
            [f'{p}: not valid JSON: {exc} (write SQuAD JSON: {{"version": ..., "data": [...]}})']
        ) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("data"), list):
        raise ManifestError(
            [
                f'{p}: top level needs a "data" list of articles (SQuAD layout: '
                '{"data": [{"title": ..., "paragraphs": [...]}]})'
            ]
        )
    defects: list[str] = []
    out: list[QAExample] = []
    seen_ids: dict[str, str] = {}
    for i, article in enumerate(doc["data"]):
        where_a = f"{p}: data[{i}]"
        if not isinstance(article, dict) or not isinstance(article.get("paragraphs"), list):
            defects.append(f'{where_a}: needs a "paragraphs" list (each {{"context": ..., "qas": [...]}})')
            continue
        title = article.get("title", "")
        if not isinstance(title, str):
            defects.append(f"{where_a}.title: expected a string, got {title!r}")
            title = ""
        for j, para in enumerate(article["paragraphs"]):
            where_p = f"{where_a}.paragraphs[{j}]"
            if not isinstance(para, dict):
                defects.append(f'{where_p}: expected a mapping with "context" and "qas", got {type(para).__name__}')
                continue
            context = para.get("context")
            if not isinstance(context, str) or not context.strip():
                defects.append(f"{where_p}.context: missing or empty (give the paragraph text as a string)")
                continue
            qas = para.get("qas")
            if not isinstance(qas, list):
                defects.append(f"{where_p}.qas: missing or not a list (give the questions about this paragraph)")
                continue
            for k, qa in enumerate(qas):
                qid = str(qa.get("id")) if isinstance(qa, dict) and qa.get("id") not in (None, "") else None
                if qid is not None and qid in seen_ids:
                    defects.append(f"{where_p}.qas[{k}]: id {qid!r} repeats {seen_ids[qid]} (ids must be unique)")
                    continue
                if qid is not None:
                    seen_ids[qid] = f"data[{i}].paragraphs[{j}].qas[{k}]"
                ex = _read_qa(qa, context, title, f"{where_p}.qas[{k}]", defects)
                if ex is not None:
                    out.append(ex)
    if defects:
        raise ManifestError(defects, f"{p}: {len(defects)} defect(s) in SQuAD data")
    if not out:
        raise DataError(f"{p}: holds no questions (add qas to the paragraphs)")
    return out[:max_examples] if max_examples is not None else out


def _read_qa(qa: Any, context: str, title: str, where: str, defects: list[str]) -> QAExample | None:
    if not isinstance(qa, dict):
        defects.append(f"{where}: expected a mapping with id, question and answers, got {type(qa).__name__}")
        return None
    n_before = len(defects)
    qid = qa.get("id")
    if isinstance(qid, int) and not isinstance(qid, bool):
        qid = str(qid)
    if not isinstance(qid, str) or not qid:
        defects.append(f"{where}.id: missing or empty (give every question a unique string id)")
    question = qa.get("question")
    if not isinstance(question, str) or not question.strip():
        defects.append(f"{where}.question: missing or empty (give the question text)")
    impossible = qa.get("is_impossible", False)
    if not isinstance(impossible, bool):
        defects.append(f"{where}.is_impossible: expected true or false, got {impossible!r}")
        impossible = False
    raw_answers = qa.get("answers", [])
    if not isinstance(raw_answers, list):
        defects.append(f'{where}.answers: expected a list of {{"text", "answer_start"}}, got {raw_answers!r}')
        raw_answers = []
    answers = []
    for m, ans in enumerate(raw_answers):
        w = f"{where}.answers[{m}]"
        if not isinstance(ans, dict):
            defects.append(f'{w}: expected {{"text": ..., "answer_start": ...}}, got {ans!r}')
            continue
        text, start = ans.get("text"), ans.get("answer_start")
        if not isinstance(text, str) or not text.strip():
            defects.append(f"{w}.text: missing or empty (give the answer span as it appears in the context)")
            continue
        if not isinstance(start, int) or isinstance(start, bool) or start < 0:
            defects.append(f"{w}.answer_start: expected a character offset >= 0, got {start!r}")
            continue
        if context[start : start + len(text)] != text:
            found = [mt.start() for mt in re.finditer(re.escape(text), context)]
            fix = (
                f"the text occurs at {', '.join(map(str, found[:5]))}"
                if found
                else "the text does not occur in the context; copy the span exactly"
            )
            defects.append(
                f"{w}: answer_start {start} does not point at {text!r} "
                f"(the context there reads {context[start : start + len(text)]!r}; {fix})"
            )
            continue
        answers.append(Answer(text, start))
    if impossible and raw_answers:
        defects.append(
            f'{where}: is_impossible is true but answers are given (empty answers, or keep them as "plausible_answers")'
        )
    if not impossible and not raw_answers:
        defects.append(
            f'{where}: no answers (give answers, or set "is_impossible": true for an unanswerable SQuAD 2.0 question)'
        )
    if len(defects) > n_before:
        return None
    return QAExample(qid, question.strip(), context, tuple(answers), impossible, title)


# ------------------------------------------------------------------------------------------------ writer


def write_squad(examples: Iterable[QAExample], path: str | Path, version: str = "v2.0") -> None:
    """Write examples as SQuAD JSON, grouping questions by title and context in first-seen order."""
    articles: dict[str, dict[str, list[QAExample]]] = {}
    for ex in examples:
        articles.setdefault(ex.title, {}).setdefault(ex.context, []).append(ex)
    data = []
    for title, paras in articles.items():
        paragraphs = []
        for context, exs in paras.items():
            qas = []
            for ex in exs:
                qa = {
                    "id": ex.id,
                    "question": ex.question,
                    "answers": [{"text": a.text, "answer_start": a.start} for a in ex.answers],
                }
                if version.startswith("v2"):
                    qa["is_impossible"] = ex.is_impossible
                elif ex.is_impossible:
                    raise InputError(
                        f"question {ex.id!r} is unanswerable: SQuAD {version} cannot hold it (write version v2.0)"
                    )
                qas.append(qa)
            paragraphs.append({"context": context, "qas": qas})
        data.append({"title": title, "paragraphs": paragraphs})
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"version": version, "data": data}, indent=1, ensure_ascii=False) + "\n")
