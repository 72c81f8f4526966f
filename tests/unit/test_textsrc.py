import re

import pytest

from speechtao.corpora import textsrc
from speechtao.corpora.textsrc import (
    DEFAULT_SOURCES,
    SOURCES,
    is_available,
    is_clean,
    iter_sentences,
    load_sentences,
    sample_sentences,
)
from speechtao.errors import DataError, InputError, MissingDependencyError
from speechtao.text.normalize import normalize_text


def need(*names):
    for name in names:
        if not is_available(name):
            pytest.skip(f"{name} source not installed (apt-get install {' '.join(SOURCES[name].packages)})")


# --- pure functions ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, sentences",
    [
        ("One. Two words! Three? four", ["One.", "Two words!", "Three? four"]),
        ('He said "Stop." Then he left.', ['He said "Stop."', "Then he left."]),
        ("Mr. Smith went home. He slept.", ["Mr. Smith went home.", "He slept."]),
        ("See e.g. Python docs. Next one", ["See e.g. Python docs.", "Next one"]),
        ("  spread\n over\tlines.  ", ["spread over lines."]),
        ("", []),
    ],
)
def test_split_sentences(text, sentences):
    assert list(textsrc.split_sentences(text)) == sentences


@pytest.mark.parametrize(
    "sentence, clean",
    [
        ("The cat sat on the mat.", "the cat sat on the mat"),
        ("he admired her long graceful neck", "he admired her long graceful neck"),
        ('"Is it raining?" she asked, looking out.', "is it raining she asked looking out"),
        ("Question: Is it better to wait?", "question is it better to wait"),
        ("It's a well-known fact (mostly).", "it's a well known fact mostly"),
        ("Too short.", None),
        ("This sentence has 3 digits in it.", None),  # digits: TTS engines may read them differently
        ("The LORD spoke to them all.", None),  # all-capital word
        ("Send it to me@example.com please now.", None),
        ("See the U.S. report for this.", None),  # inner period (abbreviation)
        ("Wait... what happened here", None),
        ("And then they went away;", None),  # fragment
        ("He said (quietly that it was late.", None),  # unbalanced
        ('He said "hello to everyone there.', None),
        ("Call the print() function now please.", None),
        ("Caf\u00e9 au lait is good for you.", None),  # non-ASCII
        ("- a list item with words", None),
        (
            "one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
            "seventeen eighteen nineteen twenty twentyone.",
            None,
        ),  # 21 words
    ],
)
def test_is_clean(sentence, clean):
    assert is_clean(sentence) == clean


def test_is_clean_word_limits():
    assert is_clean("a b c d e", min_words=5, max_words=5) == "a b c d e"
    assert is_clean("a b c d", min_words=5, max_words=5) is None
    assert is_clean("a b c d e f", min_words=5, max_words=5) is None


# --- readers on crafted files (no Debian package needed) --------------------------------------------------------


def test_wordnet_reader_takes_quoted_examples_from_glosses(tmp_path):
    header = "  1 This software and database is being provided to you\n"
    lines = {
        "noun": "00217593 04 n 01 kill 1 002 @ 00217014 n 0000 | the destruction of an enemy plane; "
        '"the pilot reported two kills during the mission"  \n',
        "verb": '00001740 29 v 04 breathe 0 | draw air into the lungs; "I can breathe better. The air is clean"\n',
        "adj": "00001740 00 a 01 able 0 | having the necessary means or skill\n",
        "adv": '00001740 02 r 01 very 0 | precisely; "the very thing"; "so very nice"\n',
    }
    for pos, line in lines.items():
        (tmp_path / f"data.{pos}").write_text(header + line)
    assert list(iter_sentences("wordnet", path=tmp_path)) == [
        "the pilot reported two kills during the mission",
        "I can breathe better.",
        "The air is clean",
        "the very thing",
        "so very nice",
    ]


def test_fortunes_reader_drops_attributions_and_overstrike(tmp_path):
    (tmp_path / "fortunes").write_text(
        "A gift of a flower will soon be made to you.\n%\n"
        "Be _\bb_\bo_\bl_\bd in all things.  Drain the moat.\n\t\t-- Someone Famous\n%\n"
        "Last one here\n"
    )
    (tmp_path / "art").write_text("not read: art is not in the curated list\n")
    assert list(iter_sentences("fortunes", path=tmp_path)) == [
        "A gift of a flower will soon be made to you.",
        "Be bold in all things.",
        "Drain the moat.",
        "Last one here",
    ]


def test_pydocs_reader_keeps_prose_and_marks_code(tmp_path):
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "x.rst.txt").write_text(
        ".. _label:\n\n"
        "Title\n=====\n\n"
        "The :keyword:`for` statement loops over items.  See :ref:`tut-if` for more.\n"
        "Call :func:`os.path.join` to join.  Use *emphasis* and ``literal`` here.\n\n"
        "For example::\n\n"
        "   >>> print(1)\n\n"
        "* a list item is skipped\n\n"
        "Read `the tutorial <https://example.org>`_ first.\n"
    )
    sents = list(iter_sentences("pydocs", path=tmp_path))
    assert sents[0] == "The for statement loops over items."
    assert "Use emphasis and literal here." in sents
    assert "For example:" in sents and "Read the tutorial first." in sents
    assert not any("list item" in s or "print" in s for s in sents)
    # references and dotted names are marked so the clean filter drops them
    marked = [s for s in sents if "See" in s or "Call" in s]
    assert len(marked) == 2 and all(is_clean(s) is None for s in marked)


@pytest.mark.parametrize(
    "source, package",
    [
        ("wordnet", "wordnet-base"),
        ("fortunes", "fortunes"),
        ("pydocs", "python3-doc"),
        ("bible", "bible-kjv-text"),
    ],
)
def test_missing_package_names_the_debian_package(source, package, tmp_path):
    with pytest.raises(MissingDependencyError, match=rf"text source '{source}'.*apt-get install .*{package}"):
        iter_sentences(source, path=tmp_path / "nothing-here")


def test_unknown_source_and_bad_arguments():
    with pytest.raises(InputError, match="text source 'wiki' is unknown .*wordnet, bible, fortunes, pydocs"):
        iter_sentences("wiki")
    with pytest.raises(InputError, match="repeat a name"):
        sample_sentences(["wordnet", "wordnet"], 10)
    with pytest.raises(InputError, match="n=0"):
        sample_sentences(["wordnet"], 0)
    with pytest.raises(InputError, match="min_words=9, max_words=3"):
        sample_sentences(["wordnet"], 5, min_words=9, max_words=3)


# --- the installed packages --------------------------------------------------------------------------------------


def test_sample_is_deterministic_clean_and_deduplicated():
    need("wordnet", "fortunes")
    a = load_sentences(["wordnet", "fortunes"], 300, seed=0)
    assert a == load_sentences(["wordnet", "fortunes"], 300, seed=0)
    assert a != load_sentences(["wordnet", "fortunes"], 300, seed=1)
    assert len(a) == 300
    keys = [is_clean(s) for s in a]
    assert None not in keys
    assert len(set(keys)) == 300
    for s in a:
        assert s.isascii() and not re.search(r"\d", s), s
        assert 3 <= len(normalize_text(s).split()) <= 20
    picked = sample_sentences(["wordnet", "fortunes"], 300, seed=0)
    assert {k: len(v) for k, v in picked.items()} == {"wordnet": 150, "fortunes": 150}
    assert sorted(a) == sorted(picked["wordnet"] + picked["fortunes"])


def test_word_limits_and_shortfall():
    need("wordnet")
    sents = load_sentences(["wordnet"], 50, seed=3, min_words=6, max_words=7)
    assert all(6 <= len(normalize_text(s).split()) <= 7 for s in sents)
    with pytest.raises(DataError, match=r"only \d+ clean sentences of 19-20 words in wordnet: \d+; asked for n=100000"):
        load_sentences(["wordnet"], 100_000, seed=0, min_words=19, max_words=20)


def test_bible_reads_the_king_james_text():
    need("bible")
    first = []
    for s in iter_sentences("bible"):
        first.append(s)
        if len(first) == 3:
            break
    assert first[0] == "In the beginning God created the heaven and the earth."
    sents = load_sentences(["bible"], 100, seed=0)
    assert any("Lord" in s for s in sents) and not any("LORD" in s for s in sents)


def test_pydocs_sample_has_no_markup():
    need("pydocs")
    sents = load_sentences(["pydocs"], 100, seed=0)
    assert not any(re.search(r"[`*_<>\x00]|:\w+:", s) for s in sents)


def test_default_sources():
    assert DEFAULT_SOURCES == ("wordnet", "bible", "fortunes")
    need(*DEFAULT_SOURCES)
    picked = sample_sentences(None, 31, seed=0)
    assert {k: len(v) for k, v in picked.items()} == {"wordnet": 11, "bible": 10, "fortunes": 10}
    assert load_sentences(None, 31, seed=0) == load_sentences(list(DEFAULT_SOURCES), 31, seed=0)
    for src in SOURCES.values():
        assert src.description and src.license and src.packages
