"""Generated QA paragraphs: made-up biographies (facts) and building histories of made-up structures (works,
train only), each with its questions (:mod:`speechtao.corpora.qa_gen` mixes them with real paragraphs)."""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Sequence

from ..nlp.squad import Answer, QAExample
from .qa_templates import (
    FACT_QUESTIONS,
    FACT_SENTENCES,
    TRAIN_FACT_QUESTIONS,
    TRAIN_FACT_SENTENCES,
    TRAIN_PERSON_QUESTIONS,
    WORK_QUESTIONS,
    WORK_SENTENCES,
)
from .qa_words import (
    CITIES,
    COMPANY_KINDS,
    COMPANY_SUFFIXES,
    COMPANY_WORDS,
    FEMALE_NAMES,
    FIELDS,
    FIRST_NAMES,
    GROUP_KINDS,
    GROUP_TOPICS,
    MALE_NAMES,
    MONTHS,
    PROFESSIONS,
    SURNAMES,
    WORK_KINDS,
)

# --------------------------------------------------------------------------------------- template filling


_SLOT_RE = re.compile(r"\{(\w+)\}")


def fill_template(template: str, values: dict[str, str]) -> tuple[str, dict[str, tuple[int, int]]]:
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


def halves(items: Sequence, split: str) -> list:
    """Disjoint halves of a filler list: even positions for train, odd for test."""
    return list(items[0::2] if split == "train" else items[1::2])


def stable_hash(text: str) -> int:
    return int(hashlib.sha1(text.encode()).hexdigest()[:8], 16)


def article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


# ------------------------------------------------------------------------------------- generated facts


def _fact_templates(items: Sequence[str], extra: Sequence[str], split: str) -> list[str]:
    """The split's half of a template list, plus the train-only wordings when ``split`` is train."""
    return halves(items, split) + (list(extra) if split == "train" else [])


def _person(rng: random.Random, split: str, taken: set[str]) -> dict[str, str]:
    """A made-up person whose name, company and organization are not in ``taken`` (which is updated)."""
    firsts, lasts, cities = halves(FIRST_NAMES, split), halves(SURNAMES, split), halves(CITIES, split)
    while True:
        name = f"{rng.choice(firsts)} {rng.choice(lasts)}"
        company = (
            f"{rng.choice(halves(COMPANY_WORDS, split))} {rng.choice(halves(COMPANY_KINDS, split))} "
            f"{rng.choice(COMPANY_SUFFIXES)}"
        )
        group = f"{rng.choice(halves(GROUP_KINDS, split))} for {rng.choice(halves(GROUP_TOPICS, split))}"
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
        "a": article(profession),
        "company": company,
        "year": str(year + rng.randint(20, 35)),
        "hq": rng.choice(cities),
        "field": rng.choice(FIELDS),
        "ucity": rng.choice(cities),
        "group": group,
        "fyear": str(year + rng.randint(25, 50)),
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


def facts_paragraph(rng: random.Random, split: str, index: int, unanswerable: float) -> list[QAExample]:
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
            text, spans = fill_template(tpl, values)
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
        question = fill_template(q_tpl, person)[0]
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
                    fill_template(q_tpl, person)[0],
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
                fill_template(q_tpl, person)[0],
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
WORKS_SHARE = 0.2  # train: chance that a generated paragraph is about a structure instead of people
_WORK_SLOT = {"start": "start", "finish": "finish", "restore": "restore", "builder": "name", "city": "city"}


def _work(rng: random.Random, taken: set[str]) -> dict[str, str]:
    """A made-up structure (train fillers only) with its years, builder and city."""
    kind = rng.choice(WORK_KINDS)
    while True:  # one surname per structure in a paragraph ("the Moreau Bridge" and "the Moreau Dam" would blur)
        surname = rng.choice(halves(SURNAMES, "train"))
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
        "city": rng.choice(halves(CITIES, "train")),
        "name": f"{rng.choice(halves(FIRST_NAMES, 'train'))} {rng.choice(halves(SURNAMES, 'train'))}",
    }


def works_paragraph(rng: random.Random, index: int, unanswerable: float) -> list[QAExample]:
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
            text, spans = fill_template(tpl, values)
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
                    fill_template(q_tpl, work)[0],
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
                f"train-works-{index}-x{k}",
                fill_template(q_tpl, work)[0],
                context,
                (),
                True,
                "works",
                meta(q_tpl, event, work),
            )
        )
    return out
