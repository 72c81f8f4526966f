"""speechtao.corpora.realtext on a tiny stand-in for the gensim wheel's Wikipedia and news text, and
`punct make-data --real-text` on it."""

import re

import pytest

from speechtao.cli import main
from speechtao.corpora import realtext
from speechtao.errors import InputError
from speechtao.nlp import punct
from speechtao.text.normalize import normalize_text
from tests.unit import realtext_fixture


@pytest.mark.parametrize(
    "markup, text",
    [
        ("A [[Europe|western Europe]] land.", "A western Europe land."),
        ("A [[Beta City]] town.", "A Beta City town."),
        ("Word{{cite|a={{b}}}} here.", "Word here."),
        ("Text<ref name=x>{{cite}}</ref> more<ref name=y/>.", "Text more."),
        ("One.<!-- note --> Two.", "One. Two."),
        ("'''Bold''' and ''italic''.", "Bold and italic."),
        ("See [http://x.org the site] now.", "See the site now."),
        ("==Heading==\n* item\n{|\n| cell\n|}\nProse line.", "Prose line."),
        ("[[File:F.svg|thumb|A [[b]] c]]Kept.[[Category:X]][[fr:Y]]", "Kept."),
        ("Fish &amp; chips.", "Fish & chips."),
    ],
)
def test_wiki_text_keeps_prose_only(markup, text):
    assert realtext.wiki_text(markup) == text


@pytest.mark.parametrize(
    "sentence, kept",
    [
        ("Alpha (from Latin alfa) was formed in 1821 , after a war.", "Alpha was formed in 1821, after a war."),
        ("It said \u201cyes\u201d to the plan today.", 'It said "yes" to the plan today.'),
        ("Too short.", None),
        ("no capital at the start here.", None),
        ("No final stop in this sentence", None),
        ("A table | cell left over here.", None),
        ('An unbalanced "quote in this one.', None),
        ("Greek \u03b1\u03bd\u03b1\u03c1\u03c7\u03af\u03b1 is not Latin text.", None),
        ("Values 1 2 3 4 5 6 7 8 9 are mostly digits.", None),
    ],
)
def test_clean_sentence(sentence, kept):
    assert realtext.clean_sentence(sentence) == kept


@pytest.mark.parametrize(
    "written, spoken",
    [
        ("It was formed in 1821.", "It was formed in eighteen twenty one."),
        ("1995 was a good year.", "Nineteen ninety five was a good year."),
        ("It cost 40% of the budget, or $5.", "It cost forty percent of the budget, or five dollars."),
        ("The war of 1914-1918 ended.", "The war of nineteen fourteen to nineteen eighteen ended."),
        ("Mr. Smith moved to the U.S.", "Mr Smith moved to the US."),
        ("The U.S. army and CO2 levels.", "The US army and CO2 levels."),
        ("In the 1990s, on the 3rd day.", "In the nineteen nineties, on the third day."),
        ("The caf\u00e9 in Z\u00fcrich sold \u00e6ther.", "The cafe in Zurich sold aether."),
    ],
)
def test_spoken_form(written, spoken):
    assert realtext.spoken_form(written) == spoken


@pytest.mark.parametrize("wheel", [False, True])
def test_read_documents_from_folder_or_wheel(tmp_path, wheel):
    docs = realtext.read_documents(realtext_fixture.write(tmp_path, wheel=wheel))
    wiki = {d.doc_id: d for d in docs if d.source == "wiki"}
    assert "AlphaRedirect" not in wiki and "Talk:Alpha" not in wiki  # redirects and other namespaces go
    assert len(wiki) == 13 and sum(d.source == "news" for d in docs) == 10
    alpha = wiki["Alpha"].sentences
    assert alpha[0] == "Alpha is a country in western Europe with a population of 3,500,000 people."
    assert "Its capital is Beta City, founded in 1204 by Mr. Gamma." in alpha  # "Mr." does not end a sentence
    assert "Did the war end quickly?" in alpha
    assert not any(re.search(r"[\[\]{}|<>=]|cite|Category|wikitable|list item", s) for s in alpha)
    news = next(d for d in docs if d.doc_id == "news-1").sentences
    assert news[0] == "The café in Paris reopened on Monday, the owner said."  # latin-1 read right


def test_read_documents_errors_say_how_to_get_the_text(tmp_path):
    with pytest.raises(InputError, match="pip download --no-deps gensim==4.4.0"):
        realtext.read_documents(tmp_path / "missing")
    with pytest.raises(InputError, match="choose from wiki, news"):
        realtext.read_documents(realtext_fixture.write(tmp_path), ["books"])


def test_split_documents_keeps_each_document_in_one_split(tmp_path):
    docs = realtext.read_documents(realtext_fixture.write(tmp_path))
    a = realtext.split_documents(docs, 0.2, seed=3)
    assert a == realtext.split_documents(docs, 0.2, seed=3)  # seeded
    ids = [(d.source, d.doc_id) for split in a.values() for d in split]
    assert sorted(ids) == sorted((d.source, d.doc_id) for d in docs)  # each once
    assert all(a[s] for s in ("train", "dev", "test"))
    assert a != realtext.split_documents(docs, 0.2, seed=4)


def test_punct_make_data_real_text(tmp_path, capsys):
    gensim = realtext_fixture.write(tmp_path)
    out = tmp_path / "punct"
    opts = ["--lines-per-source", "5", "--extra-lines", "0", "--question-lines", "0", "--real-eval-fraction", "0.2"]
    assert main(["punct", "make-data", "--sources", "", "--real-text", str(gensim), "--out", str(out), *opts]) == 0
    splits = realtext.split_documents(realtext.read_documents(gensim), 0.2, seed=0)
    words = {name: [" ".join(e.words) for e in punct.read_dataset(out / name)] for name in ("train", "dev", "test")}
    test_real = punct.read_dataset(out / "test_real")
    assert sorted(" ".join(e.words) for e in test_real) == sorted(words["test"])  # no Debian source: test is real
    for name, lines in words.items():  # every line comes from a document of its own split, numbers as words
        text = " ".join(lines)
        assert not re.search(r"\d", text)
        held = [normalize_text(realtext.spoken_form(s)) for d in splits[name] for s in d.sentences]
        assert all(any(h.startswith(line[:15]) for h in held) for line in lines), name
    assert "the kingdom of alpha was formed on twelve may eighteen twenty one" in " ".join(sum(words.values(), []))
