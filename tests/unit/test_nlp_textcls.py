"""Text classification data: strict TSV reading."""

import pytest

from speechtao.errors import ManifestError
from speechtao.nlp import textcls


def test_read_tsv_round_trip_and_defects(tmp_path):
    good = tmp_path / "a.tsv"
    textcls.write_tsv(good, [textcls.TextExample("Hello\tthere", "x"), textcls.TextExample("Bye", "y")])
    assert [(e.text, e.label) for e in textcls.read_tsv(good)] == [("Hello there", "x"), ("Bye", "y")]
    bad = tmp_path / "b.tsv"
    bad.write_text("one\ttwo\tthree\n\njust text\n\tlabel\nfine\tz\n")
    with pytest.raises(ManifestError) as err:
        textcls.read_tsv(bad, labels=["x", "y"])
    msg = str(err.value)
    for line, what in [
        (1, "3 tab-separated fields"),
        (2, "empty line"),
        (3, "1 tab-separated fields"),
        (4, "empty sentence"),
        (5, "label 'z' is not one of"),
    ]:
        assert f"{bad}:{line}: {what}" in msg


def test_shipped_fixture_is_balanced():
    exs = textcls.read_tsv("tests/fixtures/nlp/textcls/train.tsv")
    counts = {lab: sum(e.label == lab for e in exs) for lab in ("wordnet", "bible", "fortunes", "pydocs")}
    assert counts == {"wordnet": 25, "bible": 25, "fortunes": 25, "pydocs": 25}
    dev = {e.text for e in textcls.read_tsv("tests/fixtures/nlp/textcls/dev.tsv")}
    assert not dev & {e.text for e in exs}
