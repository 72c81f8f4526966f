"""NER: IOB spans, entity-level scores, CoNLL conversion, strict reading, generated data with disjoint splits."""

import pytest

from speechtao.corpora import ner_gen
from speechtao.errors import ManifestError
from speechtao.nlp import ner


@pytest.mark.parametrize(
    "tags,spans",
    [
        ("B-PER I-PER O B-LOC", {(0, 2, "PER"), (3, 4, "LOC")}),
        ("B-PER B-PER", {(0, 1, "PER"), (1, 2, "PER")}),
        ("I-ORG I-ORG O", {(0, 2, "ORG")}),  # a dangling I- starts an entity
        ("B-PER I-LOC", {(0, 1, "PER"), (1, 2, "LOC")}),
        ("O O", set()),
    ],
)
def test_entities(tags, spans):
    assert ner.entities(tags.split()) == spans


def test_entity_report_by_hand():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O"]]
    pred = [["B-PER", "O", "O", "B-LOC"], ["B-ORG", "B-LOC"]]
    r = ner.entity_report(gold, pred)
    # gold: PER(0,2) LOC(3,4) ORG(0,1); pred: PER(0,1) LOC(3,4) ORG(0,1) LOC(1,2): 2 of 4 predicted are right
    assert r["micro"]["precision"] == 0.5 and r["micro"]["recall"] == pytest.approx(2 / 3)
    assert r["per_class"]["PER"]["f1"] == 0.0 and r["per_class"]["ORG"]["f1"] == 1.0
    assert r["per_class"]["LOC"]["precision"] == 0.5 and r["f1"] == pytest.approx(4 / 7)


def test_iob1_to_iob2():
    assert ner.iob1_to_iob2("I-PER I-PER O I-LOC B-LOC I-ORG".split()) == "B-PER I-PER O B-LOC B-LOC B-ORG".split()


def test_convert_conll(tmp_path):
    f = tmp_path / "eng.train"
    f.write_text(
        "-DOCSTART- -X- O O\n\nEU NNP I-NP I-ORG\nrejects VBZ I-VP O\nGerman JJ I-NP I-MISC\n\n"
        "Peter NNP I-NP I-PER\nBlackburn NNP I-NP I-PER\n"
    )
    exs = ner.convert_conll(f)
    assert [e.words for e in exs] == [["EU", "rejects", "German"], ["Peter", "Blackburn"]]
    assert [e.tags for e in exs] == [["B-ORG", "O", "B-MISC"], ["B-PER", "I-PER"]]
    bad = tmp_path / "bad.conll"
    bad.write_text("EU NNP X-ORG\nalone\n")
    with pytest.raises(ManifestError) as err:
        ner.convert_conll(bad)
    assert f"{bad}:1: tag 'X-ORG'" in str(err.value) and f"{bad}:2: one column" in str(err.value)


def test_read_dataset_defects(tmp_path):
    (tmp_path / "text.txt").write_text("Ann went home\nBob\n")
    (tmp_path / "labels.txt").write_text("B-PER O\nS-PER\n")
    with pytest.raises(ManifestError) as err:
        ner.read_dataset(tmp_path)
    assert f"{tmp_path / 'labels.txt'}:1: 2 tags for 3 words" in str(err.value)
    assert f"{tmp_path / 'labels.txt'}:2: tag 'S-PER'" in str(err.value)


def test_label_set():
    exs = [ner.NerExample(["a", "b"], ["B-PER", "O"]), ner.NerExample(["c"], ["B-DATE"])]
    assert ner.label_set(exs) == ["O", "B-DATE", "I-DATE", "B-PER", "I-PER"]


def test_templates_are_disjoint_and_fill_tags_every_word():
    assert not set(ner_gen.TRAIN_TEMPLATES) & set(ner_gen.TEST_TEMPLATES)
    import random

    pool = {"PER": ["Ada Lovelace"], "LOC": ["Lisbon"], "ORG": ["Red Cross"]}
    ex = ner_gen.fill("{PER} met {ORG} in {LOC} on {DATE} .", pool, random.Random(3))
    spans = {(" ".join(ex.words[s:e]).lower(), k) for s, e, k in ner.entities(ex.tags)}
    assert {("ada lovelace", "PER"), ("red cross", "ORG"), ("lisbon", "LOC")} <= spans
    assert len(ex.words) == len(ex.tags) and any(k == "DATE" for _, k in spans)


def test_entity_pools_do_not_share_names():
    pools = ner_gen.entity_pools(seed=0)
    for kind in ("PER", "LOC", "ORG"):
        assert pools["train"][kind] and pools["test"][kind]
        assert not set(pools["train"][kind]) & set(pools["test"][kind])


def test_wordnet_entities_types():
    wn = ner_gen.wordnet_entities()
    if not wn["PER"]:
        pytest.skip("wordnet-base is not installed (apt-get install wordnet-base)")
    assert "Einstein" in wn["PER"] and "Paris" in wn["LOC"] and "Greenpeace" in wn["ORG"]


def test_make_data_without_wordnet_says_so_and_other_errors_propagate(tmp_path, monkeypatch, caplog):
    from speechtao.corpora import textsrc
    from speechtao.errors import MissingDependencyError

    def missing(source, path=None):
        raise MissingDependencyError("WordNet is not installed (apt-get install wordnet-base)")

    monkeypatch.setattr(textsrc, "iter_sentences", missing)
    options = ner_gen.NerDataOptions(train=40, dev=10, test=10)
    with caplog.at_level("WARNING", logger="speechtao.corpora.ner_gen"):
        result = ner_gen.make_data(tmp_path / "a", options)
    assert "no plain (all-O) sentences" in caplog.text
    assert "wordnet-base is not installed" in result["plain_sentences"]
    assert result["counts"]["train"]["sentences"] == 40  # all from templates

    def broken(source, path=None):
        raise ValueError("a bug, not a missing package")

    monkeypatch.setattr(textsrc, "iter_sentences", broken)
    with pytest.raises(ValueError, match="a bug"):
        ner_gen.make_data(tmp_path / "b", options)
