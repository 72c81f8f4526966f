"""SQuAD reader/writer and the QA data generator."""

import importlib.util
import json
import re

import pytest

from speechtao.corpora import qa_facts, qa_gen, qa_templates, qa_words
from speechtao.corpora.qa_gen import make_qa_data
from speechtao.errors import DataError, InputError, ManifestError
from speechtao.nlp.squad import Answer, QAExample, read_squad, write_squad

CONTEXT = "Ada Lovelace was born in London in 1815. She worked with Charles Babbage."


def squad(qas, context=CONTEXT, version="v2.0"):
    return {"version": version, "data": [{"title": "t", "paragraphs": [{"context": context, "qas": qas}]}]}


def write(tmp_path, doc, name="d.json"):
    p = tmp_path / name
    p.write_text(json.dumps(doc))
    return p


def test_reads_squad_1_1_and_2_0(tmp_path):
    qas = [
        {"id": "a", "question": "Where was Ada born?", "answers": [{"text": "London", "answer_start": 25}]},
        {
            "id": "b",
            "question": "Who was Ada's husband?",
            "answers": [],
            "is_impossible": True,
            "plausible_answers": [{"text": "Charles Babbage", "answer_start": 57}],
        },
    ]
    exs = read_squad(write(tmp_path, squad(qas)))
    assert [e.id for e in exs] == ["a", "b"]
    assert exs[0].answers == (Answer("London", 25),) and not exs[0].is_impossible
    assert exs[1].answers == () and exs[1].is_impossible
    v1 = read_squad(write(tmp_path, squad(qas[:1], version="1.1"), "v1.json"))
    assert v1[0].answers[0].text == "London"


def test_every_defect_is_reported_with_its_path(tmp_path):
    qas = [
        {"id": "a", "question": "Where?", "answers": [{"text": "London", "answer_start": 3}]},  # wrong offset
        {"id": "a", "question": "When?", "answers": [{"text": "1815", "answer_start": 35}]},  # duplicate id
        {"id": "c", "question": "Who?", "answers": [{"text": "Grace Hopper", "answer_start": 0}]},  # not in text
        {"id": "d", "question": "Why?", "answers": []},  # answerable without answers
        {"id": "e", "question": "", "answers": [{"text": "Ada", "answer_start": 0}]},  # empty question
        {"id": "f", "question": "What?", "is_impossible": True, "answers": [{"text": "Ada", "answer_start": 0}]},
    ]
    path = write(tmp_path, squad(qas))
    with pytest.raises(ManifestError) as err:
        read_squad(path)
    defects = err.value.defects
    assert len(defects) == 6
    assert defects[0].startswith(f"{path}: data[0].paragraphs[0].qas[0].answers[0]: answer_start 3 does not point")
    assert "the text occurs at 25" in defects[0]
    assert "qas[1]: id 'a' repeats data[0].paragraphs[0].qas[0]" in defects[1]
    assert "qas[2].answers[0]" in defects[2] and "does not occur in the context" in defects[2]
    assert "qas[3]: no answers" in defects[3] and "is_impossible" in defects[3]
    assert "qas[4].question: missing or empty" in defects[4]
    assert "qas[5]: is_impossible is true but answers are given" in defects[5]


@pytest.mark.parametrize(
    "doc,needle",
    [
        ({"data": "x"}, '"data" list'),
        ({"data": [{"title": "t"}]}, 'data[0]: needs a "paragraphs" list'),
        ({"data": [{"paragraphs": [{"qas": []}]}]}, "paragraphs[0].context: missing or empty"),
    ],
)
def test_structure_defects(tmp_path, doc, needle):
    with pytest.raises(ManifestError, match=None) as err:
        read_squad(write(tmp_path, doc))
    assert needle in str(err.value)


def test_missing_file_and_bad_json(tmp_path):
    with pytest.raises(InputError, match="make-data"):
        read_squad(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ManifestError, match="not valid JSON"):
        read_squad(bad)


def test_write_read_round_trip(tmp_path):
    exs = [
        QAExample("1", "Where was Ada born?", CONTEXT, (Answer("London", 25),), False, "t"),
        QAExample("2", "Who?", CONTEXT, (), True, "t"),
        QAExample("3", "When?", "In 1815.", (Answer("1815", 3),), False, "u"),
    ]
    write_squad(exs, tmp_path / "x.json")
    assert read_squad(tmp_path / "x.json") == exs
    doc = json.loads((tmp_path / "x.json").read_text())
    assert len(doc["data"]) == 2 and len(doc["data"][0]["paragraphs"][0]["qas"]) == 2
    with pytest.raises(InputError, match="v2.0"):
        write_squad(exs, tmp_path / "y.json", version="1.1")


def test_fill_reports_slot_spans():
    text, spans = qa_facts.fill_template(
        "{name} was born in {city} in {year}.", {"name": "Ada", "city": "Lyon", "year": "1901"}
    )
    assert text == "Ada was born in Lyon in 1901."
    assert {k: text[s:e] for k, (s, e) in spans.items()} == {"name": "Ada", "city": "Lyon", "year": "1901"}


def test_template_halves_are_disjoint():
    for tpls in qa_templates.FACT_SENTENCES.values():
        assert not set(qa_facts.halves(tpls, "train")) & set(qa_facts.halves(tpls, "test"))
    for fillers in (qa_words.FIRST_NAMES, qa_words.SURNAMES, qa_words.CITIES, qa_words.COMPANY_WORDS):
        assert not set(qa_facts.halves(fillers, "train")) & set(qa_facts.halves(fillers, "test"))


def test_train_only_wordings_stay_out_of_test_and_fill_every_slot():
    test_questions = {
        t for pairs in qa_templates.FACT_QUESTIONS.values() for _, tpls in pairs for t in qa_facts.halves(tpls, "test")
    }
    test_sentences = {t for tpls in qa_templates.FACT_SENTENCES.values() for t in qa_facts.halves(tpls, "test")}
    slots = {slot for pairs in qa_templates.FACT_QUESTIONS.values() for slot, _ in pairs}
    assert set(qa_templates.TRAIN_FACT_QUESTIONS) == slots
    assert set(qa_templates.TRAIN_FACT_SENTENCES) == set(qa_templates.FACT_SENTENCES)
    assert not {t for ts in qa_templates.TRAIN_FACT_QUESTIONS.values() for t in ts} & test_questions
    assert not {t for ts in qa_templates.TRAIN_FACT_SENTENCES.values() for t in ts} & test_sentences
    # stricter: a content word (5-letter stem) that only the test wordings of a fact or slot use never
    # appears in that fact's or slot's train-only wordings, so test phrasings stay unseen
    stop = {
        "what",
        "which",
        "who",
        "where",
        "when",
        "how",
        "is",
        "was",
        "were",
        "did",
        "do",
        "does",
        "the",
        "of",
        "in",
        "a",
        "an",
        "on",
        "at",
        "to",
        "by",
        "for",
        "s",
        "and",
        "as",
        "its",
    }

    def stems(*texts):
        words = re.findall(r"[a-z]+", re.sub(r"\{\w+\}", " ", " ".join(texts).lower()))
        return {w[:5] for w in words if w not in stop}

    for fact, pairs in qa_templates.FACT_QUESTIONS.items():
        sent = qa_templates.FACT_SENTENCES[fact]
        test_only = stems(*qa_facts.halves(sent, "test")) - stems(*qa_facts.halves(sent, "train"))
        for tpl in qa_templates.TRAIN_FACT_SENTENCES[fact]:
            assert not stems(tpl) & test_only, (tpl, stems(tpl) & test_only)
        for slot, tpls in pairs:
            banned = test_only | (stems(*qa_facts.halves(tpls, "test")) - stems(*qa_facts.halves(tpls, "train")))
            for tpl in qa_templates.TRAIN_FACT_QUESTIONS[slot] + qa_templates.VALIDATION_QUESTIONS[slot]:
                assert not stems(tpl) & banned, (tpl, stems(tpl) & banned)
    others = {"wordnet": qa_templates.WORDNET_QUESTIONS, **{f"bible-{k}": t for k, t in qa_templates.BIBLE_QUESTIONS}}
    for group, tpls in others.items():
        banned = stems(*qa_facts.halves(tpls, "test")) - stems(*qa_facts.halves(tpls, "train"))
        for tpl in qa_templates.VALIDATION_QUESTIONS[group]:
            assert not stems(tpl) & banned, (tpl, stems(tpl) & banned)
    person_groups = {f"person-{fact}" for fact in qa_templates.TRAIN_PERSON_QUESTIONS}
    work_groups = {f"work-{event}" for event in qa_templates.WORK_QUESTIONS}
    assert set(qa_templates.VALIDATION_QUESTIONS) == slots | set(others) | person_groups | work_groups
    for event, tpls in qa_templates.WORK_QUESTIONS.items():
        assert not set(tpls) & set(qa_templates.VALIDATION_QUESTIONS[f"work-{event}"])
    assert qa_words.FEMALE_NAMES <= set(qa_words.FIRST_NAMES) and qa_words.MALE_NAMES <= set(qa_words.FIRST_NAMES)
    assert not qa_words.FEMALE_NAMES & qa_words.MALE_NAMES
    train_questions = (
        {t for ts in qa_templates.TRAIN_FACT_QUESTIONS.values() for t in ts}
        | {t for tpls in others.values() for t in tpls}
        | {t for pairs in qa_templates.FACT_QUESTIONS.values() for _, tpls in pairs for t in tpls}
    )
    assert not {t for ts in qa_templates.VALIDATION_QUESTIONS.values() for t in ts} & train_questions
    person = qa_facts._person(__import__("random").Random(0), "train", set())
    for fact, tpls in qa_templates.TRAIN_FACT_SENTENCES.items():
        needed = {slot for f, pairs in qa_templates.FACT_QUESTIONS.items() if f == fact for slot, _ in pairs}
        for tpl in tpls:  # every slot a question can ask about is stated (university: "University of {ucity}")
            text, spans = qa_facts.fill_template(tpl, person)
            stated = set(spans) | ({"university"} if f"University of {person['ucity']}" in text else set())
            assert needed <= stated, tpl
    assert qa_facts._fact_templates(("a", "b", "c", "d"), ("x",), "test") == ["b", "d"]
    assert qa_facts._fact_templates(("a", "b", "c", "d"), ("x",), "train") == ["a", "c", "x"]


def test_training_templates_leave_the_hand_written_relations_untaught():
    # tests/e2e/test_nlp_qa_model.py asks when someone died or something opened, who designed it and
    # what it connects: no training or validation template may teach those, so they measure generalization
    train = [t for tpls in qa_templates.FACT_SENTENCES.values() for t in qa_facts.halves(tpls, "train")]
    train += [
        t for pairs in qa_templates.FACT_QUESTIONS.values() for _, tpls in pairs for t in qa_facts.halves(tpls, "train")
    ]
    for table in (
        qa_templates.TRAIN_FACT_SENTENCES,
        qa_templates.TRAIN_FACT_QUESTIONS,
        qa_templates.TRAIN_PERSON_QUESTIONS,
        qa_templates.VALIDATION_QUESTIONS,
        qa_templates.WORK_QUESTIONS,
    ):
        train += [t for tpls in table.values() for t in tpls]
    train += [t for t, _ in qa_templates.WORK_SENTENCES] + [k.lower() for k in qa_words.WORK_KINDS]
    words = {w for t in train for w in re.findall(r"[a-z]+", t.lower())}
    assert not {w for w in words if w.startswith(("die", "death", "open", "design", "connect"))}


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    from speechtao.corpora.textsrc import is_available

    missing = [s for s in ("wordnet", "bible") if not is_available(s)]
    if missing:
        pytest.skip(f"text sources {missing} are not installed (apt-get install wordnet-base bible-kjv)")
    out = tmp_path_factory.mktemp("qa")
    card = make_qa_data(out, n_train=300, n_val=60, n_test=120, seed=3, n_cloze=120)
    return out, card


def test_generated_data_is_valid_and_honestly_split(generated):
    out, card = generated
    splits = {name: read_squad(out / f"{name}.json") for name in ("train", "validation", "test")}  # validates
    assert {name: len(exs) for name, exs in splits.items()} == {n: card["splits"][n]["questions"] for n in splits}
    assert card["splits"]["validation"]["questions"] >= 60
    held_in = splits["train"] + splits["validation"]
    assert not {e.context for e in held_in} & {e.context for e in splits["test"]}
    assert not {e.context for e in splits["train"]} & {e.context for e in splits["validation"]}
    assert not {e.question for e in held_in} & {e.question for e in splits["test"]}
    pronoun = re.compile(r"(^|\. )(She|He|Her|His) ")
    facts = {name: [e for e in exs if e.title == "facts"] for name, exs in splits.items()}
    assert any(pronoun.search(e.context) for e in facts["train"])  # train names people again by pronoun
    assert not any(pronoun.search(e.context) for e in facts["test"])  # test never does
    val_wordings = {t for ts in qa_templates.VALIDATION_QUESTIONS.values() for t in ts}
    val_questions = {e.question for e in splits["validation"]}
    assert not val_questions & {e.question for e in splits["train"]}
    pattern = "|".join(re.sub(r"\\\{\w+\\\}", ".+", re.escape(t)) for t in val_wordings)
    for e in splits["validation"]:  # every validation question is one of its own wordings, filled in
        assert re.fullmatch(pattern, e.question), e.question
    for name, exs in splits.items():
        sources = {e.title.split("-")[0] for e in exs}
        assert sources - {"works", "cloze"} == {"facts", "wordnet", "bible"}, name
        if name != "validation":  # structures are train-only (validation is cut from the train stream)
            assert ("works" in sources) is (name == "train"), name
        assert ("cloze" in sources) is (name == "train"), name  # joined to train after validation is cut
        frac = sum(e.is_impossible for e in exs) / len(exs)
        assert 0.05 < frac < 0.35, (name, frac)
        for e in exs:
            for a in e.answers:
                assert e.context[a.start : a.start + len(a.text)] == a.text


def test_train_joins_two_facts_of_a_person_in_one_sentence_and_test_never_does(generated):
    def joined(examples):  # sentences that answer questions about two different facts
        facts_at: dict[tuple[str, int], set[str]] = {}
        for e in examples:
            if e.title == "facts" and not e.is_impossible:
                sentence = e.context.rfind(". ", 0, e.answers[0].start)
                facts_at.setdefault((e.context, sentence), set()).add(e.meta["fact"])
        return [ctx[s + 1 : ctx.find(".", s + 2)].strip() for (ctx, s), v in facts_at.items() if len(v) > 1]

    train = joined(qa_gen.generate_split("train", 600, seed=3))
    assert train and all(" and " in sentence for sentence in train)
    assert not joined(qa_gen.generate_split("test", 600, seed=3))


def test_structure_paragraphs_tell_the_years_of_one_sentence_apart():
    import random

    rng = random.Random(11)
    examples = [e for i in range(40) for e in qa_facts.works_paragraph(rng, i, 0.2)]
    assert {e.meta["source"] for e in examples} == {"works"}  # the data card counts them apart from biographies
    answered = [e for e in examples if not e.is_impossible]
    assert 0.05 < 1 - len(answered) / len(examples) < 0.35
    two_years = 0
    for e in answered:
        (a,) = e.answers
        assert e.context[a.start : a.start + len(a.text)] == a.text
        event = e.meta["group"].removeprefix("work-")
        assert a.text == e.meta["values"][qa_facts._WORK_SLOT[event]]
        begin = e.context.rfind(". ", 0, a.start)
        sentence = e.context[begin + 1 : e.context.find(".", a.start)]
        two_years += len(re.findall(r"\b1[6-9]\d\d\b", sentence)) == 2
    assert two_years > 20  # questions whose sentence holds a second year
    for e in examples:  # every paragraph names each structure in full before "the bridge" / "its"
        first = re.match(r"[^.]*\.", e.context).group(0)
        assert re.search(r"[A-Z][a-z]+ (" + "|".join(qa_words.WORK_KINDS) + r")\b", first), first
    assert not [e for e in qa_gen.generate_split("test", 400, seed=3) if e.title == "works"]
    assert [e for e in qa_gen.generate_split("train", 400, seed=3) if e.title == "works"]


def test_generation_is_deterministic(generated, tmp_path):
    out, _ = generated
    make_qa_data(tmp_path, n_train=300, n_val=60, n_test=120, seed=3, n_cloze=120)
    for name in ("train.json", "validation.json", "test.json"):
        assert (tmp_path / name).read_bytes() == (out / name).read_bytes()
    # the cloze questions only join train: validation and test are the same without them
    make_qa_data(tmp_path / "none", n_train=300, n_val=60, n_test=120, seed=3, n_cloze=0)
    for name in ("validation.json", "test.json"):
        assert (tmp_path / "none" / name).read_bytes() == (out / name).read_bytes()
    without = read_squad(tmp_path / "none" / "train.json")
    assert len(read_squad(out / "train.json")) == len(without) + 120


def test_generator_rejects_bad_arguments(tmp_path):
    with pytest.raises(InputError, match="at least one"):
        make_qa_data(tmp_path, n_train=0)
    with pytest.raises(InputError, match="unanswerable"):
        qa_gen.generate_split("train", 10, unanswerable=0.7)
    with pytest.raises(InputError, match="unknown"):
        qa_gen.generate_split("train", 10, mix={"novels": 1.0})
    with pytest.raises(DataError):
        read_squad(write(tmp_path, {"data": []}))


def test_hand_written_dev_set_is_valid_squad():
    # bench/qa_handwritten_dev.json: questions written by hand about paragraphs outside the generator's relations,
    # a development set for data and training choices (the hand-written test paragraphs stay unseen)
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "bench" / "qa_handwritten_dev.json"
    dev = read_squad(path)
    assert len(dev) == 35 and sum(e.is_impossible for e in dev) == 5
    spec = importlib.util.spec_from_file_location(
        "qa_model_test", Path(__file__).parents[1] / "e2e" / "test_nlp_qa_model.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    tested = {context for context, _ in module.PARAGRAPHS}
    assert not tested & {e.context for e in dev}


def test_train_examples_skip_then_keep_in_file_order(tmp_path):
    from speechtao.nlp.qa import QADataSpec, train_examples

    qas = [
        {"id": f"q{i}", "question": f"Where was Ada born {i}?", "answers": [{"text": "London", "answer_start": 25}]}
        for i in range(6)
    ]
    path = write(tmp_path, squad(qas))
    ids = lambda **kw: [e.id for e in train_examples(QADataSpec(train=path, validation=path, **kw))]  # noqa: E731
    assert ids() == [f"q{i}" for i in range(6)]
    assert ids(max_train_samples=2) == ["q0", "q1"]
    assert ids(skip_train_samples=2, max_train_samples=3) == ["q2", "q3", "q4"]  # the next questions, not seen
    assert ids(skip_train_samples=4) == ["q4", "q5"]
    with pytest.raises(InputError, match="skip_train_samples=6"):
        ids(skip_train_samples=6)
    with pytest.raises(ValueError, match="skip_train_samples"):
        QADataSpec(train=path, validation=path, skip_train_samples=-1)
