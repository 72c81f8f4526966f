"""Punctuation/capitalization data: labels from real punctuated text, NeMo's file format, strict reading."""

import pytest

from speechtao.errors import DataError, ManifestError
from speechtao.nlp import punct


@pytest.mark.parametrize("text,words,labels", [
    ("How are you? I am fine.", "how are you i am fine", "OU OO ?O OU OO .O"),
    ("Well, I'm here!", "well i'm here", ",U OU .O"),
    ('He said: "Stop; now."', "he said stop now", "OU ,O ,U .O"),
    ("The well-known man (Paris) left?!", "the well known man paris left", "OU OO OO OO OU ?O"),
    ("Python 3 is here.", "python 3 is here", "OU OO OO .O"),
    ("no marks at all", "no marks at all", "OO OO OO OO"),
])
def test_label_text(text, words, labels):
    ex = punct.label_text(text)
    assert " ".join(ex.words) == words
    assert punct.format_labels(ex) == labels


@pytest.mark.parametrize("words,p,c,out", [
    ("how are you i am fine", [0, 0, 3, 0, 0, 2], [1, 0, 0, 1, 0, 0], "How are you? I am fine."),
    ("i'm here", [0, 1], [1, 0], "I'm here,"),
    ("", [], [], ""),
])
def test_apply_labels(words, p, c, out):
    assert punct.apply_labels(words.split(), p, c) == out


def test_write_then_read_round_trip(tmp_path):
    exs = [punct.label_text("Hello there, Sam."), punct.label_text("What now?")]
    punct.write_dataset(tmp_path, exs)
    assert (tmp_path / "text.txt").read_text() == "hello there sam\nwhat now\n"
    assert (tmp_path / "labels.txt").read_text() == "OU ,O .U\nOU ?O\n"
    back = punct.read_dataset(tmp_path)
    assert [(e.words, e.punct, e.capit) for e in back] == [(e.words, e.punct, e.capit) for e in exs]


def test_read_dataset_lists_every_defect(tmp_path):
    (tmp_path / "text.txt").write_text("a b c\n\nd e\nf\n")
    (tmp_path / "labels.txt").write_text("OO OO .U\nOO\nOO\n!O\n")
    with pytest.raises(ManifestError) as err:
        punct.read_dataset(tmp_path)
    msg = str(err.value)
    assert f"{tmp_path / 'text.txt'}:2: empty line" in msg
    assert f"{tmp_path / 'labels.txt'}:3: 1 labels for 2 words" in msg
    assert f"{tmp_path / 'labels.txt'}:4: label '!O'" in msg
    assert "defect(s)" in msg and len(err.value.defects) == 3


def test_read_dataset_missing_files_say_how_to_make_them(tmp_path):
    with pytest.raises(DataError, match="punct make-data"):
        punct.read_dataset(tmp_path)


def test_shipped_fixture_reads():
    train = punct.read_dataset("tests/fixtures/nlp/punct/train")
    assert len(train) == 90 and all(len(e.words) == len(e.punct) for e in train)
    assert {p for e in train for p in e.punct} == {0, 1, 2, 3}  # every mark occurs
