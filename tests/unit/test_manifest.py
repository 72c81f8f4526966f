"""Manifests: every defect kind, path resolution, round trips, duration filter, converters, statistics."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from speechtao.data.convert import from_csv, from_folder, from_librispeech
from speechtao.data.manifest import (
    ManifestEntry,
    filter_by_duration,
    load_vocab,
    read_manifest,
    scan_manifest,
    validate_manifest,
    write_manifest,
)
from speechtao.data.stats import format_stats, manifest_stats
from speechtao.errors import DataError, InputError, ManifestError
from speechtao.text.tokenizers import CHAR_VOCAB

SR = 16000


def make_audio(path: Path, seconds: float, fmt: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    noise = np.random.default_rng(len(str(path))).standard_normal(int(round(seconds * SR))).astype("float32")
    sf.write(path, 0.1 * noise, SR, format=fmt)
    return path


def line(**fields) -> str:
    return json.dumps(fields)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """a.wav 1.0 s, b.flac 1.5 s, garbage.wav (not audio), cut.flac (truncated FLAC)."""
    root = tmp_path_factory.mktemp("corpus")
    make_audio(root / "a.wav", 1.0)
    make_audio(root / "b.flac", 1.5)
    (root / "garbage.wav").write_bytes(b"RIFF but not really a wave file")
    full = make_audio(root / "full.flac", 2.0).read_bytes()
    (root / "cut.flac").write_bytes(full[: len(full) // 2])
    return root


GOOD = line(audio_filepath="a.wav", duration=1.0, text="hello")

# (case id, second line of the manifest, substrings its single defect must contain)
DEFECTS = [
    ("broken-json", '{"audio_filepath": "a.wav", "duration": 1.0, "text": "x"', ["invalid JSON", "column 57"]),
    ("not-object", "[1, 2]", ["expected a JSON object, got list"]),
    ("no-text", line(audio_filepath="a.wav", duration=1.0), ["missing required field 'text'"]),
    ("no-path-no-duration", line(text="x"), ["missing required fields 'audio_filepath', 'duration'"]),
    ("path-not-str", line(audio_filepath=3, duration=1.0, text="x"), ["audio_filepath must be a non-empty string"]),
    ("path-empty", line(audio_filepath=" ", duration=1.0, text="x"), ["audio_filepath must be a non-empty string"]),
    ("duration-str", line(audio_filepath="a.wav", duration="1.0", text="x"), ["duration must be a number", "'1.0'"]),
    ("duration-bool", line(audio_filepath="a.wav", duration=True, text="x"), ["duration must be a number"]),
    ("duration-negative", line(audio_filepath="a.wav", duration=-1.0, text="x"), ["duration -1.0 must be a positive"]),
    ("duration-zero", line(audio_filepath="a.wav", duration=0, text="x"), ["duration 0 must be a positive"]),
    ("duration-nan", '{"audio_filepath": "a.wav", "duration": NaN, "text": "x"}', ["duration nan must be a positive"]),
    ("duration-inf", '{"audio_filepath": "a.wav", "duration": Infinity, "text": "x"}', ["duration inf"]),
    (
        "offset-negative",
        line(audio_filepath="a.wav", duration=0.5, offset=-0.1, text="x"),
        ["offset -0.1 must be a finite number of seconds, 0 or more"],
    ),
    ("offset-str", line(audio_filepath="a.wav", duration=0.5, offset="0", text="x"), ["offset must be a number"]),
    ("text-empty", line(audio_filepath="a.wav", duration=1.0, text="  "), ["text is empty"]),
    ("text-not-str", line(audio_filepath="a.wav", duration=1.0, text=12), ["text must be a string, got 12"]),
    (
        "audio-missing",
        line(audio_filepath="nope.wav", duration=1.0, text="x"),
        ["audio_filepath 'nope.wav' not found", "relative to the manifest's folder"],
    ),
    ("audio-garbage", line(audio_filepath="garbage.wav", duration=1.0, text="x"), ["'garbage.wav' cannot be decoded"]),
    ("audio-truncated", line(audio_filepath="cut.flac", duration=2.0, text="x"), ["'cut.flac' cannot be decoded"]),
    (
        "duration-mismatch",
        line(audio_filepath="b.flac", duration=1.2, text="x"),
        ["duration 1.2 s differs from the audio's length 1.500 s", "set duration to 1.500"],
    ),
    (
        "segment-past-end",
        line(audio_filepath="b.flac", offset=1.0, duration=0.8, text="x"),
        ["segment ends at 1.800 s", "past the end of 'b.flac' (1.500 s)"],
    ),
    (
        "vocab-unspellable",
        line(audio_filepath="a.wav", duration=1.0, text="ok 你好"),
        ["characters the normalizer cannot spell: '你', '好'"],
    ),
    (
        "vocab-nothing-left",
        line(audio_filepath="a.wav", duration=1.0, text="?!"),
        ["text '?!' has no words left after normalization"],
    ),
    ("duplicate", GOOD.replace("hello", "again"), ["repeats audio_filepath 'a.wav' at offset 0.0 from line 1"]),
]


@pytest.mark.parametrize("case,second,expected", DEFECTS, ids=[d[0] for d in DEFECTS])
def test_each_defect_is_reported_once_with_its_line(corpus, case, second, expected):
    path = corpus / f"{case}.jsonl"
    path.write_text(GOOD + "\n" + second + "\n")
    defects = validate_manifest(path, vocab=CHAR_VOCAB)
    assert len(defects) == 1, defects
    assert defects[0].startswith(f"{path}:2: ")
    for text in expected:
        assert text in defects[0]
    assert defects[0].endswith(")")  # every message ends with its fix in parentheses


def test_invalid_utf8_is_a_defect(corpus):
    path = corpus / "latin1.jsonl"
    path.write_bytes(GOOD.encode() + b"\n" + GOOD.replace("hello", "caf\xe9").encode("latin-1") + b"\n")
    (defect,) = validate_manifest(path)
    assert defect.startswith(f"{path}:2: not valid UTF-8")


# (case id, manifest lines) that must produce no defect (with the char vocabulary, audio checked)
CLEAN = [
    (
        "segment-inside",
        [
            line(audio_filepath="b.flac", offset=0.0, duration=0.7, text="x"),
            line(audio_filepath="b.flac", offset=0.7, duration=0.8, text="y"),
        ],
    ),
    ("within-tolerance", [line(audio_filepath="a.wav", duration=1.04, text="x")]),
    ("blank-lines", ["", GOOD, "   ", line(audio_filepath="b.flac", duration=1.5, text="y"), ""]),
    ("bom", ["\ufeff" + GOOD]),
    ("normalized-text", [line(audio_filepath="a.wav", duration=1.0, text="It's FINE: Café #2, 50%!")]),
]


@pytest.mark.parametrize("case,lines", CLEAN, ids=[c[0] for c in CLEAN])
def test_clean_manifests_have_no_defects(corpus, case, lines):
    path = corpus / f"clean-{case}.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert validate_manifest(path, vocab=CHAR_VOCAB) == []


def test_blank_lines_keep_physical_line_numbers(corpus):
    path = corpus / "blank-numbers.jsonl"
    path.write_text("\n\n" + GOOD + "\n\n" + line(audio_filepath="a.wav", duration=-2, text="x") + "\n")
    scan = scan_manifest(path)
    assert scan.lines == 2
    assert [d.split(": ")[0] for d in scan.defects] == [f"{path}:5"]


def test_empty_and_missing_manifests(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n")
    assert validate_manifest(empty) == [f"{empty}: manifest has no utterances (write one JSON object per line)"]
    (defect,) = validate_manifest(tmp_path / "absent.jsonl")
    assert "absent.jsonl: manifest not found" in defect
    with pytest.raises(ManifestError, match="is a folder"):
        read_manifest(tmp_path)


def test_read_manifest_collects_every_defect_before_raising(corpus):
    path = corpus / "many.jsonl"
    path.write_text(
        "\n".join(
            [
                GOOD,
                "{",
                line(audio_filepath="a.wav", duration=-1, text="x"),
                line(audio_filepath="nope.wav", duration=1.0, text="x"),
            ]
        )
        + "\n"
    )
    with pytest.raises(ManifestError) as info:
        read_manifest(path, check_audio=True)
    assert [d.split(": ")[0] for d in info.value.defects] == [f"{path}:2", f"{path}:3", f"{path}:4"]
    assert "3 defect(s) in 4 lines" in str(info.value)
    # without audio checks the missing file is not a defect
    with pytest.raises(ManifestError) as info:
        read_manifest(path)
    assert len(info.value.defects) == 2


def test_duplicates_are_allowed_when_reading_for_training(corpus):
    path = corpus / "oversampled.jsonl"
    path.write_text(GOOD + "\n" + GOOD + "\n")
    assert len(read_manifest(path)) == 2
    assert validate_manifest(path, allow_duplicates=True) == []
    assert len(validate_manifest(path)) == 1


def test_relative_paths_resolve_against_the_manifest_folder(tmp_path, monkeypatch):
    audio = make_audio(tmp_path / "audio" / "a.wav", 1.0)
    manifest = tmp_path / "lists" / "train.jsonl"
    manifest.parent.mkdir()
    manifest.write_text(
        line(audio_filepath="../audio/a.wav", duration=1.0, text="x")
        + "\n"
        + line(audio_filepath=str(audio), duration=1.0, text="y")
        + "\n"
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    entries = read_manifest(Path("..") / "lists" / "train.jsonl", check_audio=True, allow_duplicates=True)
    assert [e.audio_filepath for e in entries] == [str(audio), str(audio)]
    assert entries[0].line == 1 and entries[1].line == 2


def test_extra_fields_offsets_and_text_round_trip(tmp_path):
    make_audio(tmp_path / "src" / "clips" / "a.wav", 2.0)
    src = tmp_path / "src" / "m.jsonl"
    original = [
        {
            "audio_filepath": "clips/a.wav",
            "duration": 2.0,
            "text": "naïve café",
            "speaker": "s1",
            "meta": {"snr": 12.5, "tags": ["x"]},
        },
        {"audio_filepath": "clips/a.wav", "offset": 0.0, "duration": 0.5, "text": "first half", "engine": "flite"},
        {"audio_filepath": "clips/a.wav", "offset": 0.5, "duration": 1.5, "text": "rest"},
    ]
    src.write_text("".join(json.dumps(o, ensure_ascii=False) + "\n" for o in original), encoding="utf-8")
    entries = read_manifest(src, check_audio=True)
    assert entries[0].extra == {"speaker": "s1", "meta": {"snr": 12.5, "tags": ["x"]}}
    assert [e.segment for e in entries] == [False, True, True]

    out = tmp_path / "out" / "nested" / "copy.jsonl"
    write_manifest(out, entries)
    written = [json.loads(x) for x in out.read_text(encoding="utf-8").splitlines()]
    assert [w["audio_filepath"] for w in written] == ["../../src/clips/a.wav"] * 3
    for w, o in zip(written, original):
        assert {k: v for k, v in w.items() if k != "audio_filepath"} == {
            k: v for k, v in o.items() if k != "audio_filepath"
        }
    again = read_manifest(out, check_audio=True)
    assert [(e.audio_filepath, e.duration, e.offset, e.text, e.extra, e.segment) for e in again] == [
        (e.audio_filepath, e.duration, e.offset, e.text, e.extra, e.segment) for e in entries
    ]

    write_manifest(out, entries, relative=False)
    assert json.loads(out.read_text().splitlines()[0])["audio_filepath"] == entries[0].audio_filepath


def test_write_manifest_is_atomic(tmp_path):
    out = tmp_path / "m.jsonl"
    out.write_text("previous content\n")

    def entries():
        yield ManifestEntry(audio_filepath=str(tmp_path / "a.wav"), duration=1.0, text="x")
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError, match="interrupted"):
        write_manifest(out, entries())
    assert out.read_text() == "previous content\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.jsonl"]


def _entries(durations):
    return [ManifestEntry(audio_filepath=f"/x/{i}.wav", duration=d, text="x") for i, d in enumerate(durations)]


@pytest.mark.parametrize(
    "lo,hi,kept,report",
    [
        (0.5, 20, 3, "dropped 2 of 5 utterances: 1 shorter than 0.5 s, 1 longer than 20 s"),
        (None, 20, 4, "dropped 1 of 5 utterances: 1 longer than 20 s"),
        (0.5, None, 4, "dropped 1 of 5 utterances: 1 shorter than 0.5 s"),
        (0.3, 25, 5, "kept all 5 utterances"),  # bounds are inclusive
        (None, None, 5, "kept all 5 utterances"),
    ],
)
def test_filter_by_duration_reports_what_it_dropped(lo, hi, kept, report):
    entries = _entries([0.3, 1.0, 2.0, 19.5, 25.0])
    out, text = filter_by_duration(entries, lo, hi)
    assert text == report
    assert len(out) == kept
    assert all((lo is None or e.duration >= lo) and (hi is None or e.duration <= hi) for e in out)


def test_filter_by_duration_refuses_an_empty_result():
    with pytest.raises(DataError, match=r"left no utterances: all 2 .* range 0.3-1 s \(lower min_duration"):
        filter_by_duration(_entries([0.3, 1.0]), min_duration=5)
    with pytest.raises(DataError, match="above max_duration"):
        filter_by_duration(_entries([1.0]), 3, 2)
    with pytest.raises(DataError, match="empty"):
        filter_by_duration([], 1, 2)


def test_custom_vocab_is_checked_after_normalization(corpus):
    path = corpus / "custom-vocab.jsonl"
    path.write_text(line(audio_filepath="a.wav", duration=1.0, text="Bad cab 2") + "\n")
    (defect,) = validate_manifest(path, vocab=set(" abcd"))
    assert defect == (
        f"{path}:1: normalized text 'bad cab two' has characters outside the vocabulary: 'o', 't', "
        "'w' (add them to the vocabulary, or rewrite the text)"
    )
    assert validate_manifest(path, vocab=set(" abcdotw")) == []
    assert validate_manifest(path) == []  # no vocabulary, no text check


def test_load_vocab(tmp_path):
    assert load_vocab("char") == frozenset(" abcdefghijklmnopqrstuvwxyz'")
    assert len(CHAR_VOCAB) == 28
    good = tmp_path / "v.txt"
    good.write_text(" \na\nb\n\n")
    assert load_vocab(good) == {" ", "a", "b"}
    bad = tmp_path / "bad.txt"
    bad.write_text("a\nab\n")
    with pytest.raises(InputError, match=r"bad.txt:2: vocabulary symbol 'ab' is not one character"):
        load_vocab(bad)
    with pytest.raises(InputError, match="not found"):
        load_vocab(tmp_path / "none.txt")


# ---- converters -------------------------------------------------------------------------------------------


def test_from_folder_measures_durations_recursively(tmp_path):
    make_audio(tmp_path / "x" / "one.wav", 0.5)
    (tmp_path / "x" / "one.txt").write_text("Hello\n  world \n")
    make_audio(tmp_path / "x" / "y" / "two.flac", 1.25)
    (tmp_path / "x" / "y" / "two.txt").write_text("second one")
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden" / "junk.txt").write_text("ignored")
    entries = from_folder(tmp_path)
    assert [(Path(e.audio_filepath).name, e.duration, e.text) for e in entries] == [
        ("one.wav", 0.5, "Hello world"),
        ("two.flac", 1.25, "second one"),
    ]
    assert all(Path(e.audio_filepath).is_absolute() for e in entries)


def test_from_folder_reports_all_problems_together(tmp_path):
    make_audio(tmp_path / "ok.wav", 0.5)
    (tmp_path / "ok.txt").write_text("fine")
    make_audio(tmp_path / "lonely.wav", 0.5)
    (tmp_path / "orphan.txt").write_text("no audio")
    (tmp_path / "broken.wav").write_bytes(b"not audio")
    (tmp_path / "broken.txt").write_text("x")
    make_audio(tmp_path / "blank.wav", 0.5)
    (tmp_path / "blank.txt").write_text("  \n")
    with pytest.raises(ManifestError) as info:
        from_folder(tmp_path)
    defects = info.value.defects
    assert len(defects) == 4, defects
    assert any(d.startswith(f"{tmp_path / 'lonely.wav'}: no transcript lonely.txt") for d in defects)
    assert any(d.startswith(f"{tmp_path / 'orphan.txt'}: transcript without audio") for d in defects)
    assert any(d.startswith(f"{tmp_path / 'broken.wav'}: audio cannot be decoded") for d in defects)
    assert any(d.startswith(f"{tmp_path / 'blank.txt'}: transcript is empty") for d in defects)


def test_from_csv_keeps_extra_columns_and_reports_rows(tmp_path):
    make_audio(tmp_path / "clips" / "a.wav", 0.75)
    make_audio(tmp_path / "clips" / "b.wav", 1.0)
    csv_path = tmp_path / "list.csv"
    csv_path.write_text('path,text,speaker\nclips/a.wav,"hello, there",s1\nclips/b.wav,bye,s2\n')
    entries = from_csv(csv_path)
    assert [(e.audio_filepath, e.duration, e.text, e.extra) for e in entries] == [
        (str(tmp_path / "clips" / "a.wav"), 0.75, "hello, there", {"speaker": "s1"}),
        (str(tmp_path / "clips" / "b.wav"), 1.0, "bye", {"speaker": "s2"}),
    ]

    csv_path.write_text("path,text\nclips/a.wav,ok\nclips/gone.wav,x\nclips/b.wav,\n")
    with pytest.raises(ManifestError) as info:
        from_csv(csv_path)
    assert [d.split(": ")[0] for d in info.value.defects] == [f"{csv_path}:3", f"{csv_path}:4"]
    assert "audio 'clips/gone.wav' not found" in info.value.defects[0]
    assert "text is empty" in info.value.defects[1]

    csv_path.write_text("file,transcript\na.wav,x\n")
    with pytest.raises(DataError, match=r"lacks column\(s\) \['path', 'text'\]"):
        from_csv(csv_path)


def _librispeech(root: Path) -> Path:
    chapter = root / "dev-clean" / "84" / "121123"
    make_audio(chapter / "84-121123-0000.flac", 0.5, "FLAC")
    make_audio(chapter / "84-121123-0001.flac", 1.0, "FLAC")
    (chapter / "84-121123.trans.txt").write_text("84-121123-0001 SECOND LINE\n84-121123-0000 GO DO YOU HEAR\n")
    other = root / "dev-clean" / "174" / "50561"
    make_audio(other / "174-50561-0000.flac", 0.25, "FLAC")
    (other / "174-50561.trans.txt").write_text("174-50561-0000 DON'T STOP\n")
    return root / "dev-clean"


def test_from_librispeech_adds_speakers_and_lowercases(tmp_path):
    entries = from_librispeech(_librispeech(tmp_path))
    assert [(Path(e.audio_filepath).name, e.duration, e.text, e.extra) for e in entries] == [
        ("174-50561-0000.flac", 0.25, "don't stop", {"speaker": "174"}),
        ("84-121123-0000.flac", 0.5, "go do you hear", {"speaker": "84"}),
        ("84-121123-0001.flac", 1.0, "second line", {"speaker": "84"}),
    ]


def test_from_librispeech_reports_missing_audio_and_unlisted_audio(tmp_path):
    split = _librispeech(tmp_path)
    chapter = split / "84" / "121123"
    (chapter / "84-121123-0000.flac").unlink()
    make_audio(chapter / "84-121123-0009.flac", 0.5, "FLAC")
    with pytest.raises(ManifestError) as info:
        from_librispeech(split)
    trans = chapter / "84-121123.trans.txt"
    assert info.value.defects == [
        f"{trans}:2: audio 84-121123-0000.flac not found in {chapter} (restore the file or remove the line)",
        f"{chapter / '84-121123-0009.flac'}: no line for '84-121123-0009' in 84-121123.trans.txt "
        "(add its transcript or remove the audio)",
    ]
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"no \*\.trans\.txt found"):
        from_librispeech(tmp_path / "empty")


# ---- statistics ------------------------------------------------------------------------------------------


def test_manifest_stats_numbers():
    rows = [
        (1.0, "the cat", {"speaker": "a", "engine": "flite"}),
        (2.0, "the dog", {"speaker": "b", "engine": "flite"}),
        (3.0, "The end", {"speaker": "a", "engine": "espeak-ng"}),
        (6.0, "a cat's tail", {"engine": "espeak-ng"}),
    ]
    entries = [
        ManifestEntry(audio_filepath=f"/x/{i}.wav", duration=d, text=t, extra=x) for i, (d, t, x) in enumerate(rows)
    ]
    s = manifest_stats(entries)
    assert s["utterances"] == 4 and s["seconds"] == 12.0 and math.isclose(s["hours"], 12 / 3600)
    assert s["duration"] == {"min": 1.0, "mean": 3.0, "median": 2.5, "max": 6.0}
    assert s["speakers"] == {"field": "speaker", "count": 2, "utterances_without": 1}
    assert s["engines"] == {
        "espeak-ng": {"utterances": 2, "hours": pytest.approx(9 / 3600)},
        "flite": {"utterances": 2, "hours": pytest.approx(3 / 3600)},
    }
    assert s["characters"] == {"count": 15, "symbols": " 'Tacdeghilnost"}
    assert s["words"]["total"] == 9 and s["words"]["vocabulary"] == 7
    assert s["words"]["top"][:3] == [["the", 3], ["a", 1], ["cat", 1]]  # ties in alphabetical order
    assert s["histogram"] == {"edges": [1.0 + 0.5 * i for i in range(11)], "counts": [1, 0, 1, 0, 1, 0, 0, 0, 0, 1]}
    text = format_stats(s)
    assert "utterances  4" in text and "speakers    2 (field 'speaker', 1 utterances without it)" in text
    assert "engines     espeak-ng 2 (0.003 h), flite 2 (0.001 h)" in text
    assert text.splitlines()[-1].endswith("| 1") and text.count("|") == 20


def test_stats_voice_field_and_no_speakers():
    one = [ManifestEntry(audio_filepath="/x.wav", duration=4.0, text="hi", extra={"voice": "v1"})]
    s = manifest_stats(one)
    assert s["speakers"] == {"field": "voice", "count": 1, "utterances_without": 0}
    assert s["engines"] is None and s["histogram"]["counts"] == [1]
    s = manifest_stats([ManifestEntry(audio_filepath="/x.wav", duration=4.0, text="hi")])
    assert s["speakers"] is None and "speakers    unknown" in format_stats(s)
