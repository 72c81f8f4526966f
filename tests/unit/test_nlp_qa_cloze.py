"""Questions asked of real sentences by rule (speechtao.corpora.qa_cloze): the question forms, the answer spans, and
the training examples built from the Debian text sources."""

import re

import pytest

from speechtao.corpora.textsrc import is_available

pytestmark = pytest.mark.skipif(not is_available("wordnet"), reason="needs WordNet (apt-get install wordnet-base)")


def _asked(pairs, sentence):
    return {q: sentence[a:b] for a, b, q in pairs}


def test_wh_questions_with_do_support():
    from speechtao.corpora.qa_cloze import fronted_questions

    s = "The committee approved the new budget on Friday."
    assert _asked(fronted_questions(s), s) == {
        "What approved the new budget on Friday?": "The committee",
        "What did the committee approve on Friday?": "the new budget",
    }
    s = "David smote the Philistine in Gath."  # an irregular past from WordNet's exception list
    assert _asked(fronted_questions(s), s) == {
        "Who smote the Philistine in Gath?": "David",
        "Where did David smite the Philistine?": "Gath",
    }
    s = "She moved to Paris in 1891 with her sister."
    assert _asked(fronted_questions(s), s)["When did she move to Paris with her sister?"] == "1891"
    s = "I served him three times, and after that he helped himself."
    assert _asked(fronted_questions(s), s) == {
        "How many times did I serve him and after that he helped himself?": "three"
    }
    # no finite lexical verb after the subject: nothing to front
    assert fronted_questions("The plains were sparsely populated.") == []
    assert fronted_questions("Put the kettle on the fire.") == []


def test_cloze_questions_put_the_wh_word_in_place():
    from speechtao.corpora.qa_cloze import cloze_questions

    s = "He put his coat over the back of the chair and sat down."
    assert _asked(cloze_questions(s), s) == {"He put his coat over the back of what and sat down?": "the chair"}
    s = "The old house was sold in 1920 to a farmer from Bergen."
    asked = _asked(cloze_questions(s), s)
    assert asked["What was sold in 1920 to a farmer from Bergen?"] == "The old house"
    assert asked["The old house was sold when to a farmer from Bergen?"] == "1920"
    assert asked["The old house was sold in 1920 to a farmer where?"] == "Bergen"  # "where" replaces "from ..."
    assert asked["The old house was sold in 1920 to what from Bergen?"] == "a farmer"


@pytest.fixture(scope="module")
def examples():
    from speechtao.corpora.qa_cloze import cloze_examples

    if not (is_available("bible") and is_available("fortunes")):
        pytest.skip("needs bible-kjv and fortunes (apt-get install bible-kjv fortunes)")
    return cloze_examples(400, seed=5, unanswerable=0.1)


def test_examples_answer_at_their_offsets_and_are_asked_not_copied(examples):
    from speechtao.corpora.qa_cloze import PRONOUNS, UNTAUGHT

    assert len(examples) == 400 and len({e.id for e in examples}) == 400
    assert {e.title for e in examples} == {"cloze-wordnet", "cloze-bible", "cloze-fortunes"}
    impossible = [e for e in examples if e.is_impossible]
    assert 0.04 < len(impossible) / len(examples) < 0.2
    fronted = do_support = 0
    for e in examples:
        assert e.question.endswith("?") and not UNTAUGHT.search(e.question)
        sentences = re.split(r"(?<=[.!?])\s+", e.context)
        assert e.question.rstrip("?") not in sentences
        if e.is_impossible:
            assert not e.answers
            continue
        (a,) = e.answers
        assert e.context[a.start : a.start + len(a.text)] == a.text and e.context.count(a.text) == 1
        assert not re.search(rf"\b{re.escape(a.text.lower())}\b", e.question.lower())  # taken out of the question
        assert a.text.lower() not in PRONOUNS
        fronted += bool(re.match(r"(What|Who|When|Where|How many) ", e.question))
        do_support += bool(re.match(r"(What|Who|When|Where|How many \w+) (did|does|do) ", e.question))
    assert fronted > 150 and do_support > 40  # (measured: 185 and 60 of 400 open with the wh-word / with do-support)


def test_same_arguments_same_examples(examples):
    from speechtao.corpora.qa_cloze import cloze_examples

    again = cloze_examples(400, seed=5, unanswerable=0.1)
    assert [(e.question, e.context, e.answers) for e in again] == [(e.question, e.context, e.answers) for e in examples]


def test_bible_paragraphs_of_test_stay_unseen(examples):
    from speechtao.corpora.qa_gen import bible_test_sentences
    from speechtao.corpora.textsrc import iter_sentences

    held_out = [s for s in bible_test_sentences(list(iter_sentences("bible"))) if len(s) > 30]
    assert len(held_out) > 1000
    bible = [e.context for e in examples if e.title == "cloze-bible"]
    assert len(bible) > 50
    assert not [s for s in held_out for context in bible if s in context]
