"""A generator of varied question-answering data (SQuAD 2.0 JSON) from real and generated paragraphs.

:func:`make_qa_data` writes ``train.json``, ``validation.json``, ``test.json`` (SQuAD 2.0) and
``data_card.json``. Three sources:

========== ======================================================= ===========================================
source     paragraphs                                              questions
========== ======================================================= ===========================================
facts      generated biographies: 2 people per paragraph, birth,   birth date and city, occupation, employer,
           occupation, employer, studies, a founded organization   join year, studies, founded organization...
wordnet    3-4 real WordNet 3.0 noun definitions of one topic      what a word means (the definition is the span)
bible      2-3 consecutive real sentences of the King James Bible  "X the son of Y" / "X begat Y" relations
cloze      train only: 3-5 real sentences (WordNet examples, Bible, wh-questions asked of one sentence by rule
           fortunes; :mod:`speechtao.corpora.qa_cloze`)            (any relation the sentence states)
========== ======================================================= ===========================================

``validation`` holds further paragraphs built like ``train`` (it picks the checkpoint and the no-answer
threshold). The held-out ``test`` split is honest: every paragraph template, question template and filler list (names, cities,
companies) exists in two disjoint halves, one for ``train`` and one for ``test``; WordNet synsets and Bible
chapters are split by a hash, so no paragraph, template or real sentence is shared. About
``unanswerable`` of the questions ask about a person, attribute or word that the paragraph does not mention.
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..errors import DataError, InputError
from ..nlp.squad import Answer, QAExample, write_squad
from .qa_facts import WORKS_SHARE, article, facts_paragraph, fill_template, halves, stable_hash, works_paragraph
from .qa_templates import BIBLE_QUESTIONS, VALIDATION_QUESTIONS, WORDNET_QUESTIONS, WORDNET_SENTENCES

__all__ = ["make_qa_data", "generate_split", "bible_test_sentences", "SPLITS", "SOURCES"]

SPLITS = ("train", "test")  # template halves; validation is cut from train
SOURCES = ("facts", "wordnet", "bible")


# ------------------------------------------------------------------------------------------- WordNet

_WN_LEMMA_RE = re.compile(r"[a-z]{3,}")
_WN_DEF_RE = re.compile(r"[A-Za-z ,'-]+")


def _wordnet_synsets(root: Path = Path("/usr/share/wordnet")) -> dict[str, list[tuple[str, str, str]]]:
    """``{lexicographer file: [(offset, lemma, definition)]}`` of nouns with a one-word lemma and a clean
    4-20 word definition (the gloss up to its first ``;``)."""
    data = root / "data.noun"
    if not data.is_file():
        from .textsrc import SOURCES as TEXT_SOURCES
        from .textsrc import _missing

        raise _missing(TEXT_SOURCES["wordnet"], f"the WordNet noun file {data}")
    groups: dict[str, list[tuple[str, str, str]]] = {}
    seen: set[str] = set()
    with open(data, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if line.startswith(" "):
                continue
            head, _, gloss = line.partition(" | ")
            fields = head.split()
            lemma, definition = fields[4], gloss.split(";")[0].strip()
            if lemma in seen or not _WN_LEMMA_RE.fullmatch(lemma) or not _WN_DEF_RE.fullmatch(definition):
                continue
            if not 4 <= len(definition.split()) <= 20 or lemma in definition.split():
                continue
            seen.add(lemma)
            groups.setdefault(fields[1], []).append((fields[0], lemma, definition))
    return groups


def _wordnet_paragraphs(rng: random.Random, split: str, n: int, unanswerable: float) -> list[QAExample]:
    groups = _wordnet_synsets()
    pools = {
        lex: [s for s in items if (stable_hash(s[0]) % 10 == 0) == (split == "test")] for lex, items in groups.items()
    }
    pools = {lex: items for lex, items in pools.items() if len(items) >= 8}
    for items in pools.values():
        rng.shuffle(items)
    lexes = sorted(pools)
    sent_tpls, q_tpls = halves(WORDNET_SENTENCES, split), halves(WORDNET_QUESTIONS, split)
    out: list[QAExample] = []
    index = 0
    while len(out) < n and lexes:
        lex = rng.choice(lexes)
        k = rng.randint(3, 4)
        if len(pools[lex]) < k + 1:
            lexes.remove(lex)
            continue
        chosen = [pools[lex].pop() for _ in range(k)]
        context, spans = "", []
        for _, lemma, definition in chosen:
            values = {
                "lemma": lemma,
                "Lemma": lemma.capitalize(),
                "an": article(lemma),
                "An": article(lemma).capitalize(),
                "definition": definition,
            }
            text, sp = fill_template(rng.choice(sent_tpls), values)
            if context:
                context += " "
            s, e = sp["definition"]
            spans.append((lemma, len(context) + s, len(context) + e))
            context += text
        for qn, (lemma, s, e) in enumerate(rng.sample(spans, rng.randint(1, 2))):
            q_tpl = rng.choice(q_tpls)
            q = fill_template(q_tpl, {"lemma": lemma, "an": article(lemma)})[0]
            out.append(
                QAExample(
                    f"{split}-wordnet-{index}-{qn}",
                    q,
                    context,
                    (Answer(context[s:e], s),),
                    False,
                    f"wordnet-{lex}",
                    {
                        "source": "wordnet",
                        "question_template": q_tpl,
                        "group": "wordnet",
                        "values": {"lemma": lemma, "an": article(lemma)},
                    },
                )
            )
        if rng.random() < unanswerable / (1 - unanswerable) * 1.5 and pools[lex]:
            lemma = pools[lex][-1][1]  # a word of the same topic that the paragraph does not define
            q_tpl = rng.choice(q_tpls)
            q = fill_template(q_tpl, {"lemma": lemma, "an": article(lemma)})[0]
            out.append(
                QAExample(
                    f"{split}-wordnet-{index}-x",
                    q,
                    context,
                    (),
                    True,
                    f"wordnet-{lex}",
                    {
                        "source": "wordnet",
                        "question_template": q_tpl,
                        "group": "wordnet",
                        "values": {"lemma": lemma, "an": article(lemma)},
                    },
                )
            )
        index += 1
    return out[:n]


# --------------------------------------------------------------------------------------------- Bible

_SON_OF_RE = re.compile(r"\b([A-Z][a-z]+),? the son of ([A-Z][a-z]+)\b")
_BEGAT_RE = re.compile(r"\b([A-Z][a-z]+) (?:lived [^.:;]*?years, and )?begat ([A-Z][a-z]+)\b")
_NOT_NAMES = {
    "And",
    "The",
    "Then",
    "Now",
    "But",
    "For",
    "When",
    "Thus",
    "So",
    "Also",
    "Even",
    "Lord",
    "God",
    "Israel",
    "Judah",
    "Behold",
    "Unto",
    "Yea",
    "Which",
}


def _bible_windows(sentences: Sequence[str]) -> Iterable[tuple[list[str], str]]:
    """The Bible paragraphs: runs of 2-3 consecutive sentences, ``(sentences, split)``; a hash of the text sends
    one in ten to test."""
    i = 0
    while i < len(sentences):
        k = 2 + (stable_hash(f"len{i}") % 2)
        window = list(sentences[i : i + k])
        i += k
        yield window, "test" if stable_hash(" ".join(window)) % 10 == 0 else "train"


def bible_test_sentences(sentences: Sequence[str]) -> set[str]:
    """The Bible sentences that test paragraphs are made of (other training data must leave them out)."""
    return {s for window, split in _bible_windows(sentences) if split == "test" for s in window}


def _bible_paragraphs(rng: random.Random, split: str, n: int) -> list[QAExample]:
    from .textsrc import iter_sentences

    sentences = list(iter_sentences("bible"))
    out: list[QAExample] = []
    index = 0
    candidates = []
    for window, window_split in _bible_windows(sentences):
        context = " ".join(window)
        if len(context) > 1500 or window_split != split:
            continue
        relations = []
        for rx in (_SON_OF_RE, _BEGAT_RE):
            for m in rx.finditer(context):
                child, parent = (m.group(1), m.group(2)) if rx is _SON_OF_RE else (m.group(2), m.group(1))
                if child in _NOT_NAMES or parent in _NOT_NAMES or child == parent:
                    continue
                child_pos = m.start(1) if rx is _SON_OF_RE else m.start(2)
                parent_pos = m.start(2) if rx is _SON_OF_RE else m.start(1)
                relations.append((child, parent, child_pos, parent_pos))
        if relations:
            candidates.append((context, relations))
    rng.shuffle(candidates)
    for context, relations in candidates:
        if len(out) >= n:
            break
        child, parent, _, _ = rng.choice(relations)
        kind, tpls = rng.choice(BIBLE_QUESTIONS)
        q_tpl = rng.choice(halves(tpls, split))
        if kind == "parent":
            golds = {(p, pp) for c, p, _, pp in relations if c == child}
            q = fill_template(q_tpl, {"child": child})[0]
        else:
            golds = {(c, cp) for c, p, cp, _ in relations if p == parent}
            q = fill_template(q_tpl, {"parent": parent})[0]
        # names asked about in two roles at once are ambiguous; skip those paragraphs
        asked = child if kind == "parent" else parent
        if any(g == asked for g, _ in golds):
            continue
        answers = tuple(sorted({Answer(t, s) for t, s in golds}, key=lambda a: a.start))
        out.append(
            QAExample(
                f"{split}-bible-{index}",
                q,
                context,
                answers,
                False,
                "bible-kjv",
                {
                    "source": "bible",
                    "question_template": q_tpl,
                    "group": f"bible-{kind}",
                    "values": {"child": child, "parent": parent},
                },
            )
        )
        index += 1
    return out


# ----------------------------------------------------------------------------------------- the corpus


def _reword(examples: Sequence[QAExample], rng: random.Random) -> list[QAExample]:
    """``examples`` with each question rewritten by a :data:`VALIDATION_QUESTIONS` wording of its group."""
    out = []
    for ex in examples:
        tpl = rng.choice(VALIDATION_QUESTIONS[ex.meta["group"]])
        out.append(
            replace(ex, question=fill_template(tpl, ex.meta["values"])[0], meta={**ex.meta, "question_template": tpl})
        )
    return out


def generate_split(
    split: str, n: int, seed: int = 0, unanswerable: float = 0.2, mix: dict[str, float] | None = None
) -> list[QAExample]:
    """About ``n`` questions of one split (``train`` or ``test``), from the sources in ``mix`` (fractions)."""
    if split not in SPLITS:
        raise InputError(f"split {split!r} is unknown (choose train or test)")
    if not 0.0 <= unanswerable < 0.5:
        raise InputError(f"unanswerable={unanswerable}: give a fraction in [0, 0.5)")
    mix = mix or {"facts": 0.6, "wordnet": 0.28, "bible": 0.12}
    unknown = set(mix) - set(SOURCES)
    if unknown:
        raise InputError(f"QA sources {sorted(unknown)} are unknown (choose from {', '.join(SOURCES)})")
    rng = random.Random(f"{seed}:{split}")
    out: list[QAExample] = []
    total = sum(mix.values())
    want = {s: round(n * f / total) for s, f in mix.items()}
    if want.get("facts"):
        facts: list[QAExample] = []
        index = 0
        while len(facts) < want["facts"]:
            if split == "train" and rng.random() < WORKS_SHARE:  # (the test split draws no number here)
                facts.extend(works_paragraph(rng, index, unanswerable))
            else:
                facts.extend(facts_paragraph(rng, split, index, unanswerable))
            index += 1
        out.extend(facts)
    if want.get("wordnet"):
        out.extend(_wordnet_paragraphs(rng, split, want["wordnet"], unanswerable))
    if want.get("bible"):
        out.extend(_bible_paragraphs(rng, split, want["bible"]))
    return _shuffled_paragraphs(out, rng)


def _shuffled_paragraphs(examples: list[QAExample], rng: random.Random) -> list[QAExample]:
    """``examples`` in a shuffled order of whole paragraphs (the questions of one paragraph stay together)."""
    groups: dict[str, list[QAExample]] = {}
    for ex in examples:
        groups.setdefault(ex.context, []).append(ex)
    keys = list(groups)
    rng.shuffle(keys)
    return [ex for key in keys for ex in groups[key]]


def make_qa_data(
    out_dir: str | Path,
    n_train: int = 8000,
    n_val: int = 800,
    n_test: int = 800,
    seed: int = 0,
    unanswerable: float = 0.2,
    mix: dict[str, float] | None = None,
    n_cloze: int = 3000,
) -> dict:
    """Write ``train.json``, ``validation.json``, ``test.json`` (SQuAD 2.0) and ``data_card.json`` under ``out_dir``.

    ``validation`` holds other paragraphs made with the training templates, asked with wordings of its own
    (:data:`VALIDATION_QUESTIONS`; it picks the best checkpoint and the no-answer threshold); ``test`` is the
    held-out split (its own templates and fillers). ``n_cloze`` questions asked of real sentences
    (:mod:`speechtao.corpora.qa_cloze`) join ``train`` only, after validation is cut. Returns the data
    card: counts per split and source and the checks that test shares no paragraph and no question template
    with train or validation.
    """
    if n_train < 1 or n_val < 1 or n_test < 1:
        raise InputError(f"n_train={n_train}, n_val={n_val}, n_test={n_test}: ask for at least one question per split")
    out = Path(out_dir)
    seen = generate_split("train", n_train + n_val, seed, unanswerable, mix)
    cut = len(seen)
    while cut > 0 and len(seen) - cut < n_val:  # move whole paragraphs from the end into validation
        ctx = seen[cut - 1].context
        while cut > 0 and seen[cut - 1].context == ctx:
            cut -= 1
    train = seen[:cut]
    if n_cloze:
        from .qa_cloze import cloze_examples

        train = _shuffled_paragraphs(
            train + cloze_examples(n_cloze, seed, min(unanswerable, 0.1)), random.Random(f"{seed}:cloze-mix")
        )
    splits = {
        "train": train,
        "validation": _reword(seen[cut:], random.Random(f"{seed}:validation")),
        "test": generate_split("test", n_test, seed, unanswerable, mix),
    }
    for name, exs in splits.items():
        if not exs:
            raise DataError(f"split {name!r} came out empty (raise n_train / n_val / n_test)")
    held_in = splits["train"] + splits["validation"]
    shared_contexts = {e.context for e in held_in} & {e.context for e in splits["test"]}
    shared_questions = {e.meta["question_template"] for e in held_in} & {
        e.meta["question_template"] for e in splits["test"]
    }
    if (
        shared_contexts
        or shared_questions
        or {e.context for e in splits["train"]} & {e.context for e in splits["validation"]}
    ):  # the construction rules this out; a failure is a bug
        raise DataError(
            f"test shares {len(shared_contexts)} paragraph(s) and {len(shared_questions)} question "
            "template(s) with train/validation"
        )
    card: dict[str, Any] = {"format": "SQuAD v2.0", "seed": seed, "splits": {}}
    for name, exs in splits.items():
        write_squad(exs, out / f"{name}.json")
        card["splits"][name] = {
            "file": f"{name}.json",
            "questions": len(exs),
            "paragraphs": len({e.context for e in exs}),
            "unanswerable": sum(e.is_impossible for e in exs),
            "by_source": dict(Counter(e.meta["source"] for e in exs)),
            "question_templates": len({e.meta["question_template"] for e in exs}),
        }
    card["shared_paragraphs"] = 0
    card["shared_question_templates"] = 0
    card["validation_question_wordings"] = "its own: seen in neither train nor test (VALIDATION_QUESTIONS)"
    card["sources"] = {
        "facts": "generated biographies (names, places, dates, organizations are invented)",
        "works": "train only: generated building histories of invented structures (part of the facts share)",
        "cloze": "train only: questions asked of real sentences (WordNet examples, King James Bible, fortunes) by "
        "rule: wh-questions with do-support, else the answer replaced by a wh-word (speechtao.corpora.qa_cloze)",
        "wordnet": "WordNet 3.0 noun definitions (Debian wordnet-base; WordNet 3.0 license, Princeton University)",
        "bible": "King James Bible (Debian bible-kjv-text; public domain text)",
    }
    (out / "data_card.json").write_text(json.dumps(card, indent=2) + "\n")
    return card
