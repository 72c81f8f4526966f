"""Question-answering data: the SQuAD 1.1 / 2.0 JSON format (strict reader, writer) and a generator of varied QA
data from real and generated paragraphs.

SQuAD JSON::

    {"version": "v2.0", "data": [{"title": "...", "paragraphs": [{"context": "...", "qas": [
        {"id": "q1", "question": "...", "answers": [{"text": "...", "answer_start": 17}], "is_impossible": false}
    ]}]}]}

:func:`read_squad` collects every defect before it raises :class:`ManifestError`, each as
``FILE: data[i].paragraphs[j].qas[k]: problem (fix)`` (an ``answer_start`` that does not point at its text, a
duplicate id, an answerable question without answers...). ``is_impossible`` (SQuAD 2.0) marks an unanswerable
question; such a question has no ``answers`` (``plausible_answers`` is accepted and ignored).

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
           fortunes; :mod:`speechtao.nlp.qa_cloze`)                (any relation the sentence states)
========== ======================================================= ===========================================

``validation`` holds further paragraphs built like ``train`` (it picks the checkpoint and the no-answer
threshold). The held-out ``test`` split is honest: every paragraph template, question template and filler list (names, cities,
companies) exists in two disjoint halves, one for ``train`` and one for ``test``; WordNet synsets and Bible
chapters are split by a hash, so no paragraph, template or real sentence is shared. About
``unanswerable`` of the questions ask about a person, attribute or word that the paragraph does not mention.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..errors import DataError, InputError, ManifestError

__all__ = ["Answer", "QAExample", "read_squad", "write_squad", "make_qa_data", "SPLITS", "SOURCES"]

SPLITS = ("train", "test")  # template halves; validation is cut from train
SOURCES = ("facts", "wordnet", "bible")


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


# --------------------------------------------------------------------------------------- template filling


_SLOT_RE = re.compile(r"\{(\w+)\}")


def _fill(template: str, values: dict[str, str]) -> tuple[str, dict[str, tuple[int, int]]]:
    """``"{name} was born in {city}."`` -> text and ``{slot: (start, end)}`` of each filled slot (first use)."""
    out, spans, pos = [], {}, 0
    length = 0
    for m in _SLOT_RE.finditer(template):
        lit = template[pos : m.start()]
        out.append(lit)
        length += len(lit)
        val = values[m.group(1)]
        spans.setdefault(m.group(1), (length, length + len(val)))
        out.append(val)
        length += len(val)
        pos = m.end()
    out.append(template[pos:])
    return "".join(out), spans


def _halves(items: Sequence, split: str) -> list:
    """Disjoint halves of a filler list: even positions for train, odd for test."""
    return list(items[0::2] if split == "train" else items[1::2])


def _stable_hash(text: str) -> int:
    return int(hashlib.sha1(text.encode()).hexdigest()[:8], 16)


# ------------------------------------------------------------------------------------- generated facts

FIRST_NAMES = (
    "Amelia",
    "Bruno",
    "Clara",
    "Dmitri",
    "Elena",
    "Farid",
    "Greta",
    "Hiroshi",
    "Ingrid",
    "Jonas",
    "Kamala",
    "Lorenzo",
    "Mira",
    "Nikolai",
    "Olga",
    "Pedro",
    "Quentin",
    "Rosa",
    "Stefan",
    "Tamsin",
    "Ulrich",
    "Vera",
    "Walter",
    "Ximena",
    "Yusuf",
    "Zofia",
    "Anders",
    "Beatrix",
    "Casimir",
    "Delia",
    "Emil",
    "Fiona",
    "Gustav",
    "Helga",
    "Ivo",
    "Julia",
    "Kenji",
    "Lena",
    "Magnus",
    "Nadia",
    "Oskar",
    "Priya",
    "Rafael",
    "Sabine",
    "Tobias",
    "Ursula",
    "Viktor",
    "Wanda",
    "Xavier",
    "Yara",
    "Arthur",
    "Bianca",
    "Conrad",
    "Dagny",
    "Edgar",
    "Freya",
    "Gideon",
    "Hazel",
    "Isidor",
    "Johanna",
    "Klaus",
    "Linnea",
    "Matteo",
    "Noor",
    "Otto",
    "Paloma",
)
SURNAMES = (
    "Abernathy",
    "Bergstrom",
    "Castellano",
    "Dubois",
    "Eriksen",
    "Fontaine",
    "Gallagher",
    "Hartmann",
    "Iwasaki",
    "Jankowski",
    "Kowalczyk",
    "Lindqvist",
    "Moreau",
    "Nakamura",
    "Okafor",
    "Petrovic",
    "Quinlan",
    "Rasmussen",
    "Santoro",
    "Thorne",
    "Ulvaeus",
    "Vasquez",
    "Whitfield",
    "Yamamoto",
    "Zeller",
    "Albrecht",
    "Brennan",
    "Carvalho",
    "Delacroix",
    "Esposito",
    "Fairbanks",
    "Grimaldi",
    "Holloway",
    "Ibarra",
    "Jorgensen",
    "Kaminski",
    "Lachance",
    "Mendoza",
    "Novak",
    "Oyelaran",
    "Pemberton",
    "Rossetti",
    "Sandoval",
    "Takahashi",
    "Underhill",
    "Vanderberg",
    "Wainwright",
    "Yilmaz",
    "Ashdown",
    "Blackwood",
    "Corrigan",
    "Drummond",
    "Ellison",
    "Falkner",
    "Gould",
    "Haverford",
    "Ingram",
    "Keller",
    "Lockhart",
    "Marlowe",
)
CITIES = (
    "Lisbon",
    "Krakow",
    "Osaka",
    "Montreal",
    "Nairobi",
    "Valparaiso",
    "Tampere",
    "Graz",
    "Porto",
    "Adelaide",
    "Bergen",
    "Cordoba",
    "Dresden",
    "Edinburgh",
    "Florence",
    "Gdansk",
    "Halifax",
    "Izmir",
    "Jaipur",
    "Kyoto",
    "Leipzig",
    "Marseille",
    "Nantes",
    "Odense",
    "Perth",
    "Quebec",
    "Riga",
    "Seville",
    "Trieste",
    "Utrecht",
    "Vilnius",
    "Winnipeg",
    "Zagreb",
    "Aarhus",
    "Bologna",
    "Cork",
    "Dundee",
    "Eindhoven",
    "Fukuoka",
    "Geneva",
    "Hamburg",
    "Innsbruck",
    "Kingston",
    "Lyon",
    "Malmo",
    "Naples",
    "Oslo",
    "Pune",
)
PROFESSIONS = (
    "chemist",
    "architect",
    "violinist",
    "surgeon",
    "cartographer",
    "geologist",
    "journalist",
    "pilot",
    "botanist",
    "engineer",
    "librarian",
    "sculptor",
    "economist",
    "astronomer",
    "translator",
    "pharmacist",
    "carpenter",
    "photographer",
    "mathematician",
    "veterinarian",
    "composer",
    "historian",
    "diplomat",
    "baker",
)
FIELDS = (
    "physics",
    "linguistics",
    "marine biology",
    "civil engineering",
    "philosophy",
    "statistics",
    "medieval history",
    "organic chemistry",
    "economics",
    "music theory",
    "geography",
    "computer science",
    "botany",
    "astronomy",
    "law",
    "psychology",
    "art history",
    "mechanical engineering",
    "sociology",
    "geology",
)
COMPANY_WORDS = (
    "Northwind",
    "Bluefield",
    "Ironbridge",
    "Silverline",
    "Redstone",
    "Greenhollow",
    "Brightwater",
    "Stonegate",
    "Clearpeak",
    "Oakridge",
    "Westmark",
    "Eastbrook",
    "Highmoor",
    "Lowell",
    "Sunmere",
    "Frostvale",
    "Goldcrest",
    "Riverbend",
    "Ashford",
    "Copperfield",
    "Pinecrest",
    "Seabright",
    "Windham",
    "Larkspur",
)
COMPANY_KINDS = (
    "Textiles",
    "Shipping",
    "Instruments",
    "Pharmaceuticals",
    "Analytics",
    "Foods",
    "Optics",
    "Publishing",
    "Robotics",
    "Ceramics",
    "Energy",
    "Logistics",
    "Press",
    "Laboratories",
    "Motors",
    "Software",
)
COMPANY_SUFFIXES = ("Ltd", "Inc", "Group", "and Sons", "Company", "Works")
GROUP_KINDS = (
    "Society",
    "Foundation",
    "Institute",
    "Association",
    "Trust",
    "Academy",
    "Guild",
    "Collective",
    "Club",
    "Council",
)
GROUP_TOPICS = (
    "Coastal Birds",
    "Young Musicians",
    "Rural Schools",
    "Rare Books",
    "Clean Rivers",
    "Amateur Astronomy",
    "Folk Dance",
    "Urban Gardens",
    "Mountain Rescue",
    "Historic Mills",
    "Chess",
    "Open Science",
    "Local History",
    "Street Art",
    "Seed Saving",
    "Public Libraries",
)
MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)

# Paragraph sentence templates per fact; index 0 and 2 are train, 1 and 3 test (see _halves).
FACT_SENTENCES: dict[str, tuple[str, ...]] = {
    "birth": (
        "{name} was born on {date} in {city}.",
        "{name} came into the world on {date} in the town of {city}.",
        "Born in {city} on {date}, {name} grew up in a large family.",
        "The records show that {name} was born in {city} on {date}.",
    ),
    "job": (
        "{name} worked as {a} {profession} for most of a long career.",
        "By trade, {name} was {a} {profession}.",
        "For many years {name} earned a living as {a} {profession}.",
        "Colleagues knew {name} as a gifted {profession}.",
    ),
    "employer": (
        "In {year}, {name} joined {company}, a firm based in {hq}.",
        "{company}, which is headquartered in {hq}, hired {name} in {year}.",
        "{name} took a position at {company} in {year}; the company has its offices in {hq}.",
        "It was in {year} that {name} started at {company}, whose main office is in {hq}.",
    ),
    "study": (
        "{name} studied {field} at the University of {ucity}.",
        "After earning a degree in {field} from the University of {ucity}, {name} moved abroad.",
        "At the University of {ucity}, {name} read {field}.",
        "{name} holds a degree in {field}, awarded by the University of {ucity}.",
    ),
    "founded": (
        "{name} founded the {group} in {fyear}.",
        "The {group} was established by {name} in {fyear}.",
        "In {fyear}, {name} set up the {group}.",
        "{name} is remembered as the person who started the {group} in {fyear}.",
    ),
}

# (slot answered, needs, question templates): train uses even positions, test odd ones.
FACT_QUESTIONS: dict[str, tuple[tuple[str, tuple[str, ...]], ...]] = {
    "birth": (
        (
            "date",
            (
                "When was {name} born?",
                "On what date was {name} born?",
                "What is the birth date of {name}?",
                "{name} was born on which day?",
            ),
        ),
        (
            "city",
            (
                "Where was {name} born?",
                "What is the birthplace of {name}?",
                "In which city was {name} born?",
                "Which town is {name} from?",
            ),
        ),
    ),
    "job": (
        (
            "profession",
            (
                "What did {name} do for a living?",
                "What was the occupation of {name}?",
                "What was the job of {name}?",
                "What profession did {name} have?",
            ),
        ),
    ),
    "employer": (
        (
            "company",
            (
                "Which company did {name} join?",
                "What firm hired {name}?",
                "Where did {name} work?",
                "Who employed {name}?",
            ),
        ),
        (
            "year",
            (
                "When did {name} join {company}?",
                "In what year was {name} hired by {company}?",
                "In which year did {name} start working at {company}?",
                "What year did {company} take on {name}?",
            ),
        ),
        (
            "hq",
            (
                "Where is {company} based?",
                "In which city is {company} headquartered?",
                "Where are the offices of {company}?",
                "What city is home to {company}?",
            ),
        ),
    ),
    "study": (
        (
            "field",
            (
                "What did {name} study?",
                "What subject did {name} get a degree in?",
                "Which field did {name} study at university?",
                "What is {name}'s degree in?",
            ),
        ),
        (
            "university",
            (
                "Which university did {name} attend?",
                "Where did {name} go to university?",
                "At which university did {name} study?",
                "What university did {name} graduate from?",
            ),
        ),
    ),
    "founded": (
        (
            "group",
            (
                "What did {name} found?",
                "Which organization was established by {name}?",
                "What organization did {name} start?",
                "What was set up by {name}?",
            ),
        ),
        (
            "fyear",
            (
                "When was the {group} founded?",
                "In what year did {name} establish the {group}?",
                "What year was the {group} created?",
                "When did {name} set up the {group}?",
            ),
        ),
    ),
}


# More wordings for the train split only, so the model learns the relation rather than a handful of phrasings.
# The test split keeps its own two templates per slot (the odd positions above) and never sees these. They were
# written after the test templates existed, so a rule keeps them from leaking test phrasings: no content word
# that only the test wordings of a fact or slot use (paragraph or question) appears in that fact's or slot's
# train-only wordings (tests/unit/test_nlp_qa_data.py checks it).
TRAIN_FACT_SENTENCES: dict[str, tuple[str, ...]] = {
    "birth": (
        "{name}, born in {city} on {date}, was the youngest of four children.",
        "On {date}, {name} was born in {city}.",
        "{name}'s birth took place in {city} on {date}.",
        "{city} is where {name} was born, on {date}.",
    ),
    "job": (
        "{name} spent decades working as {a} {profession}.",
        "{name} became {a} {profession} after leaving school.",
        "Before retiring, {name} had a long career as {a} {profession}.",
        "As {a} {profession}, {name} was respected by many.",
    ),
    "employer": (
        "{name} joined {company} in {year}; the business is based in {hq}.",
        "{name} began working for {company} in {year}, and the business has its head office in {hq}.",
        "In {year} {company}, a business with its head office in {hq}, gave {name} a job.",
        "{company} of {hq} took {name} into its staff in {year}.",
    ),
    "study": (
        "{name} studied {field} as an undergraduate at the University of {ucity}.",
        "The University of {ucity} trained {name} in {field}.",
        "{name} took a course in {field} at the University of {ucity}.",
        "A student of {field}, {name} attended the University of {ucity}.",
    ),
    "founded": (
        "{name} created the {group} in {fyear}.",
        "The {group} owes its existence to {name}, who founded it in {fyear}.",
        "In {fyear} the {group} was formed by {name}.",
        "{name} launched the {group} in {fyear}.",
    ),
}
TRAIN_FACT_QUESTIONS: dict[str, tuple[str, ...]] = {
    "date": (
        "What was {name}'s date of birth?",
        "What was the exact date of {name}'s birth?",
        "Give the date when {name} was born.",
        "{name} was born when?",
        "When is {name}'s birthday?",
    ),
    "city": (
        "In what city was {name} born?",
        "What city was {name} born in?",
        "{name} was born where?",
        "In which place was {name} born?",
        "Name the city in which {name} was born.",
    ),
    "profession": (
        "What kind of work did {name} do?",
        "What did {name} work as?",
        "What line of work was {name} in?",
        "What was {name}'s job?",
        "What was {name} known for doing as a job?",
    ),
    "company": (
        "Which company did {name} work for?",
        "Who did {name} work for?",
        "At which company did {name} hold a position?",
        "What business did {name} work at?",
        "Which company gave {name} a job?",
    ),
    "year": (
        "What year did {name} join {company}?",
        "When did {company} give {name} a job?",
        "In which year did {name} join {company}?",
        "When did {name} become part of {company}?",
        "When did {name} begin working for {company}?",
    ),
    "hq": (
        "Where is {company} located?",
        "In what place is {company} based?",
        "Where does {company} have its offices?",
        "Where can the offices of {company} be found?",
        "Where is the head office of {company}?",
    ),
    "field": (
        "What field did {name} study?",
        "What was {name}'s field of study?",
        "In which field did {name} study?",
        "What discipline did {name} study?",
        "What did {name} study at the university?",
    ),
    "university": (
        "What university did {name} attend?",
        "Which university was {name} a student at?",
        "Where did {name} study?",
        "Where was {name} a student?",
        "Which university did {name} study at?",
    ),
    "group": (
        "What organization did {name} found?",
        "Which group did {name} create?",
        "What body did {name} form?",
        "Which organization was formed by {name}?",
        "What was founded by {name}?",
    ),
    "fyear": (
        "When did {name} found the {group}?",
        "In what year was the {group} founded?",
        "When was the {group} formed?",
        "In which year did the {group} begin?",
        "What year did {name} form the {group}?",
    ),
}


def _fact_templates(items: Sequence[str], extra: Sequence[str], split: str) -> list[str]:
    """The split's half of a template list, plus the train-only wordings when ``split`` is train."""
    return _halves(items, split) + (list(extra) if split == "train" else [])


def _person(rng: random.Random, split: str, taken: set[str]) -> dict[str, str]:
    """A made-up person whose name, company and organization are not in ``taken`` (which is updated)."""
    firsts, lasts, cities = _halves(FIRST_NAMES, split), _halves(SURNAMES, split), _halves(CITIES, split)
    while True:
        name = f"{rng.choice(firsts)} {rng.choice(lasts)}"
        company = (
            f"{rng.choice(_halves(COMPANY_WORDS, split))} {rng.choice(_halves(COMPANY_KINDS, split))} "
            f"{rng.choice(COMPANY_SUFFIXES)}"
        )
        group = f"{rng.choice(_halves(GROUP_KINDS, split))} for {rng.choice(_halves(GROUP_TOPICS, split))}"
        if not {name, company, group} & taken and name.split()[1] not in {t.split()[-1] for t in taken}:
            break
    taken.update((name, company, group))
    year = rng.randint(1880, 1970)
    month, day = rng.choice(MONTHS), rng.randint(1, 28)
    date = f"{day} {month} {year}" if rng.random() < 0.5 else f"{month} {day}, {year}"
    profession = rng.choice(PROFESSIONS)
    return {
        "name": name,
        "date": date,
        "city": rng.choice(cities),
        "profession": profession,
        "a": _article(profession),
        "company": company,
        "year": str(year + rng.randint(20, 35)),
        "hq": rng.choice(cities),
        "field": rng.choice(FIELDS),
        "ucity": rng.choice(cities),
        "group": group,
        "fyear": str(year + rng.randint(25, 50)),
    }


# How FIRST_NAMES read (for "she"/"he" in train paragraphs); a name in neither set is never replaced by a pronoun.
FEMALE_NAMES = frozenset(
    (
        "Amelia",
        "Clara",
        "Elena",
        "Greta",
        "Ingrid",
        "Kamala",
        "Mira",
        "Olga",
        "Rosa",
        "Tamsin",
        "Vera",
        "Ximena",
        "Zofia",
        "Beatrix",
        "Delia",
        "Fiona",
        "Helga",
        "Julia",
        "Lena",
        "Nadia",
        "Priya",
        "Sabine",
        "Ursula",
        "Wanda",
        "Yara",
        "Bianca",
        "Dagny",
        "Freya",
        "Hazel",
        "Johanna",
        "Linnea",
        "Paloma",
    )
)
MALE_NAMES = frozenset(
    (
        "Bruno",
        "Dmitri",
        "Farid",
        "Hiroshi",
        "Jonas",
        "Lorenzo",
        "Nikolai",
        "Pedro",
        "Quentin",
        "Stefan",
        "Ulrich",
        "Walter",
        "Yusuf",
        "Anders",
        "Casimir",
        "Emil",
        "Gustav",
        "Ivo",
        "Kenji",
        "Magnus",
        "Oskar",
        "Rafael",
        "Tobias",
        "Viktor",
        "Xavier",
        "Arthur",
        "Conrad",
        "Edgar",
        "Gideon",
        "Isidor",
        "Klaus",
        "Matteo",
        "Otto",
    )
)

# Train-only questions that ask for the person (the answer is the name as the sentence states it).
TRAIN_PERSON_QUESTIONS: dict[str, tuple[str, ...]] = {
    "founded": ("Who founded the {group}?", "Who created the {group}?", "The {group} was founded by whom?"),
    "employer": ("Who joined {company} in {year}?", "Which person did {company} take into its staff in {year}?"),
}


def _mention_again(rng: random.Random, template: str, person: dict[str, str]) -> tuple[str, dict[str, str]]:
    """A sentence template and values that name ``person`` a second time in a paragraph: by pronoun when the
    template opens with the name ("She was born ...", "Her birth ..."), by surname, or in full."""
    first, surname = person["name"].split(" ", 1)
    pronoun = "she" if first in FEMALE_NAMES else "he" if first in MALE_NAMES else None
    r = rng.random()
    if pronoun and r < 0.6:
        if template.startswith("{name}'s "):
            return ("Her " if pronoun == "she" else "His ") + template[len("{name}'s ") :], person
        if template.startswith("{name} "):
            return pronoun.capitalize() + template[len("{name}") :], person
    if r < 0.8:
        return template, {**person, "name": surname}
    return template, person


COMPOUND_SENTENCES = 0.35  # train: chance that a fact's sentence joins the previous one of the same person


def _facts_paragraph(rng: random.Random, split: str, index: int, unanswerable: float) -> list[QAExample]:
    taken: set[str] = set()
    people = [_person(rng, split, taken) for _ in range(rng.choice((1, 2, 2, 3)))]
    sent_tpls = {
        fact: _fact_templates(tpls, TRAIN_FACT_SENTENCES[fact], split) for fact, tpls in FACT_SENTENCES.items()
    }
    sentences: list[tuple[str, dict]] = []  # (text, {slot: (start, end)}) with spans relative to the sentence
    stated: list[tuple[dict, str, int]] = []  # (person, fact, sentence index)
    # train only: half the paragraphs keep each person's facts together and name the person again by pronoun
    # or surname after the first sentence (the test split always interleaves full names)
    coref = split == "train" and rng.random() < 0.5
    for person in people:
        facts = rng.sample(list(FACT_SENTENCES), rng.randint(2, len(FACT_SENTENCES)))
        chosen: list[tuple[str, list[str]]] = []  # (sentence template, facts it states)
        for fact in facts:
            tpl = sent_tpls[fact][rng.randrange(len(sent_tpls[fact]))]
            prev = chosen[-1][0] if chosen else ""
            # train only: two facts of one person in one sentence ("X was born on D in C and founded the G in Y"),
            # so a question must tell two places or two years of a sentence apart by their verbs
            if (
                split == "train"
                and chosen
                and len(chosen[-1][1]) == 1
                and prev.startswith("{name} ")
                and prev.endswith(".")
                and not {";", ","} & set(prev)
                and tpl.startswith("{name} ")
                and rng.random() < COMPOUND_SENTENCES
            ):
                chosen[-1] = (prev[:-1] + " and " + tpl[len("{name} ") :], chosen[-1][1] + [fact])
            else:
                chosen.append((tpl, [fact]))
        for k, (tpl, stated_facts) in enumerate(chosen):
            values = person
            if coref and k > 0:
                tpl, values = _mention_again(rng, tpl, person)
            text, spans = _fill(tpl, values)
            if "study" in stated_facts:  # the university answer is "University of X"
                u = text.index(f"University of {person['ucity']}")
                spans["university"] = (u, u + len(f"University of {person['ucity']}"))
            for fact in stated_facts:
                stated.append((person, fact, len(sentences)))
            sentences.append((text, spans))
    order = list(range(len(sentences)))
    if not coref:
        rng.shuffle(order)  # facts of different people interleave
    context, offsets = "", {}
    for si in order:
        if context:
            context += " "
        offsets[si] = len(context)
        context += sentences[si][0]
    out = []
    for qn, (person, fact, si) in enumerate(stated):
        slot, q_tpls = rng.choice(FACT_QUESTIONS[fact])
        q_tpls = _fact_templates(q_tpls, TRAIN_FACT_QUESTIONS[slot], split)
        q_tpl = q_tpls[rng.randrange(len(q_tpls))]
        s, e = sentences[si][1][slot]
        base = offsets[si]
        answer = Answer(context[base + s : base + e], base + s)
        question = _fill(q_tpl, person)[0]
        out.append(
            QAExample(
                f"{split}-facts-{index}-{qn}",
                question,
                context,
                (answer,),
                False,
                "facts",
                {"source": "facts", "question_template": q_tpl, "fact": fact, "group": slot, "values": person},
            )
        )
    if split == "train":  # and some questions the other way round: who did it?
        for qn, (person, fact, si) in enumerate(stated):
            if fact not in TRAIN_PERSON_QUESTIONS or rng.random() >= 0.3:
                continue
            text, spans = sentences[si]
            if "name" not in spans or text[spans["name"][0] : spans["name"][1]] != person["name"]:
                continue  # named by pronoun or surname in this sentence
            q_tpl = rng.choice(TRAIN_PERSON_QUESTIONS[fact])
            s, e = spans["name"]
            answer = Answer(person["name"], offsets[si] + s)
            out.append(
                QAExample(
                    f"{split}-facts-{index}-p{qn}",
                    _fill(q_tpl, person)[0],
                    context,
                    (answer,),
                    False,
                    "facts",
                    {
                        "source": "facts",
                        "question_template": q_tpl,
                        "fact": fact,
                        "group": f"person-{fact}",
                        "values": person,
                    },
                )
            )
    # unanswerable: a fact not stated for a mentioned person, or a person not mentioned at all
    n_impossible = sum(rng.random() < unanswerable / (1 - unanswerable) for _ in range(len(out)))
    for k in range(n_impossible):
        if rng.random() < 0.5:
            person = rng.choice(people)
            missing = [f for f in FACT_SENTENCES if not any(p is person and f == g for p, g, _ in stated)]
            if not missing:
                continue
            fact = rng.choice(missing)
        else:
            person = _person(rng, split, taken)
            fact = rng.choice(list(FACT_SENTENCES))
        slot, q_tpls = rng.choice(FACT_QUESTIONS[fact])
        q_tpls = _fact_templates(q_tpls, TRAIN_FACT_QUESTIONS[slot], split)
        q_tpl = q_tpls[rng.randrange(len(q_tpls))]
        out.append(
            QAExample(
                f"{split}-facts-{index}-x{k}",
                _fill(q_tpl, person)[0],
                context,
                (),
                True,
                "facts",
                {"source": "facts", "question_template": q_tpl, "fact": fact, "group": slot, "values": person},
            )
        )
    return out


# ------------------------------------------------------------------------------- works (train only)

# Made-up structures with a building history: when work started, when it was finished, when it was restored,
# who built it, where it stands. Two dated events often share a sentence, and later sentences call the work
# "the bridge" or "it", so a question must pick the year of its own event ("When was the X finished?" in "Work
# on the X started in 1901, and the bridge was finished in 1905"). Train only: test.json stays as it was. The
# wordings avoid the relations the hand-written tests ask about (opening, designing, dying, connecting).
WORK_KINDS = (
    "Bridge",
    "Tower",
    "Canal",
    "Dam",
    "Lighthouse",
    "Cathedral",
    "Museum",
    "Theatre",
    "Observatory",
    "Viaduct",
    "Tunnel",
    "Library",
    "Station",
    "Harbour",
    "Aqueduct",
    "Chapel",
    "Palace",
    "Fortress",
)
WORKS_SHARE = 0.2  # train: chance that a generated paragraph is about a structure instead of people

# (template, events it states); {it} is the work named again: "the bridge" or "it" after the first sentence.
WORK_SENTENCES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Work on {the_work} started in {start}, and {it} was finished in {finish}.", ("start", "finish")),
    ("Building {the_work} began in {start}; {it} was completed in {finish}.", ("start", "finish")),
    ("{The_work} was completed in {finish}, after work had begun in {start}.", ("start", "finish")),
    ("Builders laid the first stone of {the_work} in {start} and finished {it} in {finish}.", ("start", "finish")),
    ("Construction of {the_work} lasted from {start} until {finish}.", ("start", "finish")),
    ("The first stone of {the_work} was laid in {start}.", ("start",)),
    ("{The_work} was completed in {finish}.", ("finish",)),
    ("In {finish}, the builders of {the_work} finished their work.", ("finish",)),
    ("{The_work} was restored in {restore}.", ("restore",)),
    ("In {restore} {the_work} underwent a full restoration.", ("restore",)),
    ("{The_work} was finished in {finish} and restored in {restore}.", ("finish", "restore")),
    ("{The_work} was built under the direction of {name}.", ("builder",)),
    ("Its chief builder was {name}.", ("builder",)),
    ("The architect of {the_work} was {name}.", ("builder",)),
    ("{name} drew up the plans for {the_work}.", ("builder",)),
    ("{The_work} stands in {city}.", ("city",)),
    ("{The_work} is located in {city}.", ("city",)),
    ("Visitors to {city} can see {the_work} near the old town.", ("city",)),
)
WORK_QUESTIONS: dict[str, tuple[str, ...]] = {
    "start": (
        "When did work on the {work} start?",
        "When did construction of the {work} begin?",
        "In what year was the first stone of the {work} laid?",
        "When was building the {work} begun?",
    ),
    "finish": (
        "When was the {work} finished?",
        "When was the {work} completed?",
        "In what year was construction of the {work} completed?",
        "When did the builders finish the {work}?",
    ),
    "restore": (
        "When was the {work} restored?",
        "In which year was the {work} restored?",
        "When did the {work} undergo a restoration?",
    ),
    "builder": (
        "Who built the {work}?",
        "Who was the architect of the {work}?",
        "Who drew up the plans for the {work}?",
        "Under whose direction was the {work} built?",
    ),
    "city": (
        "Where is the {work}?",
        "In which city does the {work} stand?",
        "Where can the {work} be found?",
        "In what city is the {work} located?",
    ),
}
_WORK_SLOT = {"start": "start", "finish": "finish", "restore": "restore", "builder": "name", "city": "city"}


def _work(rng: random.Random, taken: set[str]) -> dict[str, str]:
    """A made-up structure (train fillers only) with its years, builder and city."""
    kind = rng.choice(WORK_KINDS)
    while True:  # one surname per structure in a paragraph ("the Moreau Bridge" and "the Moreau Dam" would blur)
        surname = rng.choice(_halves(SURNAMES, "train"))
        if surname not in taken:
            break
    taken.add(surname)
    work = f"{surname} {kind}"
    start = rng.randint(1650, 1960)
    finish = start + rng.randint(2, 12)
    return {
        "work": work,
        "kind": kind.lower(),
        "start": str(start),
        "finish": str(finish),
        "restore": str(finish + rng.randint(20, 60)),
        "city": rng.choice(_halves(CITIES, "train")),
        "name": f"{rng.choice(_halves(FIRST_NAMES, 'train'))} {rng.choice(_halves(SURNAMES, 'train'))}",
    }


def _works_paragraph(rng: random.Random, index: int, unanswerable: float) -> list[QAExample]:
    """One or two structures, each in two to four sentences, and questions about their events (train split)."""
    taken: set[str] = set()
    works = [_work(rng, taken) for _ in range(rng.choice((1, 1, 2)))]
    sentences: list[tuple[str, dict, dict, tuple[str, ...]]] = []  # (text, spans, work, events)
    for work in works:
        chosen: list[tuple[str, tuple[str, ...]]] = []
        covered: set[str] = set()
        want = rng.randint(2, 4)
        for tpl, events in rng.sample(WORK_SENTENCES, len(WORK_SENTENCES)):
            if covered & set(events) or (tpl.startswith("Its") and not chosen):
                continue
            chosen.append((tpl, events))
            covered.update(events)
            if len(chosen) == want:
                break
        for k, (tpl, events) in enumerate(chosen):
            again = k > 0 and rng.random() < 0.5  # "the bridge" instead of "the X Bridge"
            the_work = f"the {work['kind']}" if again else f"the {work['work']}"
            values = {
                **work,
                "the_work": the_work,
                "The_work": the_work[0].upper() + the_work[1:],
                "it": rng.choice(("it", f"the {work['kind']}")),
            }
            text, spans = _fill(tpl, values)
            sentences.append((text[0].upper() + text[1:], spans, work, events))
    context, offsets = "", {}  # each work's sentences together: "the bridge" and "its" refer back unambiguously
    for si in range(len(sentences)):
        context += " " if context else ""
        offsets[si] = len(context)
        context += sentences[si][0]

    def meta(q_tpl: str, event: str, work: dict) -> dict:
        return {"source": "works", "question_template": q_tpl, "fact": "work", "group": f"work-{event}", "values": work}

    out: list[QAExample] = []
    for si, (_text, spans, work, events) in enumerate(sentences):
        for event in events:
            s, e = spans[_WORK_SLOT[event]]
            q_tpl = rng.choice(WORK_QUESTIONS[event])
            answer = Answer(context[offsets[si] + s : offsets[si] + e], offsets[si] + s)
            out.append(
                QAExample(
                    f"train-works-{index}-{len(out)}",
                    _fill(q_tpl, work)[0],
                    context,
                    (answer,),
                    False,
                    "works",
                    meta(q_tpl, event, work),
                )
            )
    asked = len(out)
    for k in range(sum(rng.random() < unanswerable / (1 - unanswerable) for _ in range(asked))):
        work = rng.choice(works)  # an event the paragraph does not state for it, or a work it does not mention
        stated = {ev for _, _, w, evs in sentences if w is work for ev in evs}
        missing = [ev for ev in WORK_QUESTIONS if ev not in stated]
        if rng.random() < 0.5 or not missing:
            work, missing = _work(rng, taken), list(WORK_QUESTIONS)
        event = rng.choice(missing)
        q_tpl = rng.choice(WORK_QUESTIONS[event])
        out.append(
            QAExample(
                f"train-works-{index}-x{k}", _fill(q_tpl, work)[0], context, (), True, "works", meta(q_tpl, event, work)
            )
        )
    return out


# ------------------------------------------------------------------------------------------- WordNet

WORDNET_SENTENCES = (
    "{An} {lemma} is {definition}.",
    "{Lemma}: {definition}.",
    "The word {lemma} means {definition}.",
    "By {lemma} one means {definition}.",
)
WORDNET_QUESTIONS = (
    "What is {an} {lemma}?",
    "What is the meaning of the word {lemma}?",
    "What does {lemma} mean?",
    "How would you define {lemma}?",
)
_WN_LEMMA_RE = re.compile(r"[a-z]{3,}")
_WN_DEF_RE = re.compile(r"[A-Za-z ,'-]+")


def _wordnet_synsets(root: Path = Path("/usr/share/wordnet")) -> dict[str, list[tuple[str, str, str]]]:
    """``{lexicographer file: [(offset, lemma, definition)]}`` of nouns with a one-word lemma and a clean
    4-20 word definition (the gloss up to its first ``;``)."""
    data = root / "data.noun"
    if not data.is_file():
        from ..corpora.textsrc import SOURCES as TEXT_SOURCES
        from ..corpora.textsrc import _missing

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


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _wordnet_paragraphs(rng: random.Random, split: str, n: int, unanswerable: float) -> list[QAExample]:
    groups = _wordnet_synsets()
    pools = {
        lex: [s for s in items if (_stable_hash(s[0]) % 10 == 0) == (split == "test")] for lex, items in groups.items()
    }
    pools = {lex: items for lex, items in pools.items() if len(items) >= 8}
    for items in pools.values():
        rng.shuffle(items)
    lexes = sorted(pools)
    sent_tpls, q_tpls = _halves(WORDNET_SENTENCES, split), _halves(WORDNET_QUESTIONS, split)
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
                "an": _article(lemma),
                "An": _article(lemma).capitalize(),
                "definition": definition,
            }
            text, sp = _fill(rng.choice(sent_tpls), values)
            if context:
                context += " "
            s, e = sp["definition"]
            spans.append((lemma, len(context) + s, len(context) + e))
            context += text
        for qn, (lemma, s, e) in enumerate(rng.sample(spans, rng.randint(1, 2))):
            q_tpl = rng.choice(q_tpls)
            q = _fill(q_tpl, {"lemma": lemma, "an": _article(lemma)})[0]
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
                        "values": {"lemma": lemma, "an": _article(lemma)},
                    },
                )
            )
        if rng.random() < unanswerable / (1 - unanswerable) * 1.5 and pools[lex]:
            lemma = pools[lex][-1][1]  # a word of the same topic that the paragraph does not define
            q_tpl = rng.choice(q_tpls)
            q = _fill(q_tpl, {"lemma": lemma, "an": _article(lemma)})[0]
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
                        "values": {"lemma": lemma, "an": _article(lemma)},
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
# (relation, answer group, question templates): the child/parent asked of a "son of" or "begat" relation
BIBLE_QUESTIONS = (
    (
        "parent",
        (
            "Whose son was {child}?",
            "Who was the father of {child}?",
            "{child} was the son of whom?",
            "Who was {child} descended from?",
        ),
    ),
    (
        "child",
        (
            "Who was a son of {parent}?",
            "Name a son of {parent}.",
            "Which son of {parent} is mentioned?",
            "Who was a child of {parent}?",
        ),
    ),
)


def _bible_windows(sentences: Sequence[str]) -> Iterable[tuple[list[str], str]]:
    """The Bible paragraphs: runs of 2-3 consecutive sentences, ``(sentences, split)``; a hash of the text sends
    one in ten to test."""
    i = 0
    while i < len(sentences):
        k = 2 + (_stable_hash(f"len{i}") % 2)
        window = list(sentences[i : i + k])
        i += k
        yield window, "test" if _stable_hash(" ".join(window)) % 10 == 0 else "train"


def bible_test_sentences(sentences: Sequence[str]) -> set[str]:
    """The Bible sentences that test paragraphs are made of (other training data must leave them out)."""
    return {s for window, split in _bible_windows(sentences) if split == "test" for s in window}


def _bible_paragraphs(rng: random.Random, split: str, n: int) -> list[QAExample]:
    from ..corpora.textsrc import iter_sentences

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
        q_tpl = rng.choice(_halves(tpls, split))
        if kind == "parent":
            golds = {(p, pp) for c, p, _, pp in relations if c == child}
            q = _fill(q_tpl, {"child": child})[0]
        else:
            golds = {(c, cp) for c, p, cp, _ in relations if p == parent}
            q = _fill(q_tpl, {"parent": parent})[0]
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


# Validation questions are reworded with these (seen in neither train nor test), so that validation, which picks
# the best checkpoint and the no-answer threshold, measures what test measures: questions phrased in a way the
# model has not trained on. On training wordings the model is so sure that the threshold lands far on the
# "no answer" side, and on new wordings it then leaves answerable questions empty. Same lexical rule as the
# train-only wordings (no test-only content word of the slot).
VALIDATION_QUESTIONS: dict[str, tuple[str, ...]] = {
    "date": ("What is the date on which {name} was born?", "Tell me when {name} was born."),
    "city": ("Tell me the city where {name} was born.", "Where did the life of {name} begin?"),
    "profession": ("What was {name}'s line of business?", "How did {name} make a living?"),
    "company": ("Tell me which company {name} worked for.", "With which company did {name} find work?"),
    "year": ("Tell me the year {name} joined {company}.", "When did {name} first work for {company}?"),
    "hq": ("Tell me where {company} is based.", "Where does {company} keep its head office?"),
    "field": ("Tell me what {name} studied.", "Which discipline was {name} trained in?"),
    "university": ("Tell me which university {name} attended.", "At what university was {name} a student?"),
    "group": ("Tell me what {name} founded.", "Which body was formed by {name}?"),
    "fyear": ("Tell me when the {group} was founded.", "In what year did the {group} come into being?"),
    "wordnet": ("Tell me what {lemma} means.", "Explain what {an} {lemma} is."),
    "bible-parent": ("Tell me whose son {child} was.", "Who was the parent of {child}?"),
    "bible-child": ("Tell me a son of {parent}.", "{parent} had which son?"),
    "person-founded": ("Tell me who founded the {group}.", "Whose idea was the {group}?"),
    "person-employer": ("Tell me who joined {company} in {year}.", "Who began at {company} in {year}?"),
    "work-start": ("Tell me when work on the {work} started.", "In which year did builders begin the {work}?"),
    "work-finish": ("Tell me when the {work} was completed.", "By which year was the {work} complete?"),
    "work-restore": ("Tell me when the {work} was restored.", "What year saw the {work} restored?"),
    "work-builder": ("Tell me who built the {work}.", "Whose plans was the {work} built to?"),
    "work-city": ("Tell me where the {work} stands.", "Which city has the {work}?"),
}


def _reword(examples: Sequence[QAExample], rng: random.Random) -> list[QAExample]:
    """``examples`` with each question rewritten by a :data:`VALIDATION_QUESTIONS` wording of its group."""
    out = []
    for ex in examples:
        tpl = rng.choice(VALIDATION_QUESTIONS[ex.meta["group"]])
        out.append(replace(ex, question=_fill(tpl, ex.meta["values"])[0], meta={**ex.meta, "question_template": tpl}))
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
                facts.extend(_works_paragraph(rng, index, unanswerable))
            else:
                facts.extend(_facts_paragraph(rng, split, index, unanswerable))
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
    (:mod:`speechtao.nlp.qa_cloze`) join ``train`` only, after validation is cut. Returns the data
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
        "rule: wh-questions with do-support, else the answer replaced by a wh-word (speechtao.nlp.qa_cloze)",
        "wordnet": "WordNet 3.0 noun definitions (Debian wordnet-base; WordNet 3.0 license, Princeton University)",
        "bible": "King James Bible (Debian bible-kjv-text; public domain text)",
    }
    (out / "data_card.json").write_text(json.dumps(card, indent=2) + "\n")
    return card
