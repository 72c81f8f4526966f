"""The bundled custom domain (sentences, voices, split of a pretraining manifest) and the real-speech manifests."""

import json
import shutil

import numpy as np
import pytest
import soundfile as sf

from speechtao.corpora.domain import (
    DOMAIN_VOICES,
    HELDOUT_VOICES,
    DomainSpec,
    domain_sentences,
    make_domain_corpus,
    matches,
    plan,
    pretrain_split,
)
from speechtao.corpora.realspeech import alsa_entries, parse_transcription, pocketsphinx_entries
from speechtao.data.manifest import read_manifest
from speechtao.errors import DataError, InputError
from speechtao.text.normalize import normalize_text


@pytest.mark.parametrize(
    "voice, prefixes, expected",
    [
        ("espeak-ng:en-us-nyc", DOMAIN_VOICES, True),
        ("espeak-ng:en-us-nyc+Andy", DOMAIN_VOICES, True),
        ("espeak-ng:en-us", DOMAIN_VOICES, False),  # a prefix of the accent, not a variant of it
        ("espeak-ng:en-us-nycX", DOMAIN_VOICES, False),
        ("flite:rms", DOMAIN_VOICES, True),
        ("flite:awb", DOMAIN_VOICES, False),
        ("flite:awb", HELDOUT_VOICES, True),
        ("espeak-ng:en-gb-scotland+f3", HELDOUT_VOICES, True),
    ],
)
def test_matches(voice, prefixes, expected):
    assert matches(voice, prefixes) is expected


def test_sentences_are_deterministic_normalized_and_test_is_unseen():
    train, test = domain_sentences(160, 40, seed=0)
    assert (train, test) == domain_sentences(160, 40, seed=0)
    assert domain_sentences(160, 40, seed=1) != (train, test)
    assert len(train) == 160 and len(test) == 40
    assert not set(test) & set(train)
    assert len(set(test)) == 40
    assert all(normalize_text(s) == s for s in train + test)  # labels are already in the normalized alphabet


def test_plan_uses_only_domain_voices_and_indices_follow_on():
    voices = ["espeak-ng:en-us-nyc", "espeak-ng:en-us-nyc+f3", "flite:rms"]
    spec = DomainSpec(n_train=30, n_test=10)
    train, test = plan(spec, voices)
    assert [u.index for u in train + test] == list(range(40))
    assert {u.voice for u in train + test} <= set(voices)
    assert {u.engine for u in train} == {"espeak-ng", "flite"}  # both engines drawn
    assert all(spec.rate_range[0] <= u.rate <= spec.rate_range[1] for u in train + test)
    assert plan(spec, voices) == (train, test)


def _write_synth_manifest(path, voices):
    lines = [
        {
            "audio_filepath": f"wav/{i}.wav",
            "duration": 1.0 + i,
            "text": f"line {i}",
            "voice": v,
            "engine": v.split(":")[0],
        }
        for i, v in enumerate(voices)
    ]
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))


def test_pretrain_split_keeps_domain_voices_out_and_holds_out_test_voices(tmp_path):
    voices = [
        "piper:joe",
        "espeak-ng:en-us-nyc+Andy",
        "flite:rms",
        "flite:awb",
        "espeak-ng:en-gb-scotland",
        "espeak-ng:en-gb+f3",
        "flite:slt",
    ]
    _write_synth_manifest(tmp_path / "manifest.jsonl", voices)
    train, test, counts = pretrain_split(tmp_path / "manifest.jsonl")
    tr = [e.extra["voice"] for e in read_manifest(train)]
    te = [e.extra["voice"] for e in read_manifest(test)]
    assert tr == ["piper:joe", "espeak-ng:en-gb+f3", "flite:slt"]
    assert te == ["flite:awb", "espeak-ng:en-gb-scotland"]
    assert counts["excluded"] == 2
    assert counts["train_hours"] == pytest.approx((1 + 6 + 7) / 3600)
    # paths stay relative to the manifest's folder
    assert json.loads(train.read_text().splitlines()[0])["audio_filepath"] == "wav/0.wav"


def test_pretrain_split_errors_name_the_problem(tmp_path):
    _write_synth_manifest(tmp_path / "manifest.jsonl", ["piper:joe", "flite:slt"])
    with pytest.raises(DataError, match=r"leaves 2 train and 0 test"):
        pretrain_split(tmp_path / "manifest.jsonl")
    (tmp_path / "plain.jsonl").write_text(json.dumps({"audio_filepath": "a.wav", "duration": 1.0, "text": "a"}) + "\n")
    with pytest.raises(DataError, match=r"plain.jsonl:1: no 'voice' field"):
        pretrain_split(tmp_path / "plain.jsonl")


@pytest.mark.parametrize(
    "line, expected",
    [
        ("<s> ten of clubs  </s> (001)", {"001": "ten of clubs"}),
        (
            "<s> he was not an ill disposed young man </s> (sense-0880)",
            {"sense-0880": "he was not an ill disposed young man"},
        ),
        ("go forward ten meters (gf)", {"gf": "go forward ten meters"}),
        ("", {}),
    ],
)
def test_parse_transcription(line, expected):
    assert parse_transcription(line) == expected


def test_parse_transcription_rejects_lines_without_an_id():
    with pytest.raises(DataError, match=r"cards.transcription:2: expected"):
        parse_transcription("<s> a </s> (1)\n<s> no id here </s>\n", "cards.transcription")


def test_realspeech_entries_from_package_layouts(tmp_path):
    ps = tmp_path / "ps" / "cards"
    ps.mkdir(parents=True)
    sf.write(ps / "001.wav", np.zeros(8000, dtype=np.float32), 16000)
    (ps / "cards.transcription").write_text("<s> ten of clubs </s> (001)\n")
    entries = pocketsphinx_entries(tmp_path / "ps")
    assert [(e.text, e.duration) for e in entries] == [("ten of clubs", 0.5)]
    alsa = tmp_path / "alsa"
    alsa.mkdir()
    for name in ("Front_Left", "Rear_Center", "Noise"):
        sf.write(alsa / f"{name}.wav", np.zeros(4800, dtype=np.float32), 48000)
    assert [e.text for e in alsa_entries(alsa)] == ["front left", "rear center"]
    (ps / "cards.transcription").write_text("<s> ten of clubs </s> (001)\n<s> five </s> (002)\n")
    with pytest.raises(DataError, match=r"'002' has no audio file"):
        pocketsphinx_entries(tmp_path / "ps")


@pytest.mark.skipif(
    shutil.which("espeak-ng") is None or shutil.which("sox") is None,
    reason="espeak-ng and sox are needed to synthesize (apt-get install espeak-ng sox)",
)
def test_make_domain_corpus_small_resumes_and_refuses_other_options(tmp_path):
    spec = DomainSpec(n_train=3, n_test=2, workers=1)
    train, test = make_domain_corpus(tmp_path / "d", spec, log=lambda m: None)
    tr, te = read_manifest(train), read_manifest(test)
    assert [e.text for e in tr] == domain_sentences(3, 2, 0)[0]
    assert [e.text for e in te] == domain_sentences(3, 2, 0)[1]
    assert all(matches(e.extra["voice"], DOMAIN_VOICES) for e in tr + te)
    for e in tr + te:
        info = sf.info(e.audio_filepath)
        assert info.samplerate == 16000 and 0.3 < e.duration < 10
        assert e.duration == pytest.approx(info.frames / info.samplerate, abs=1e-3)
    before = train.read_text()
    notes = []
    make_domain_corpus(tmp_path / "d", spec, log=notes.append)  # nothing left to synthesize
    assert notes == [] and train.read_text() == before
    with pytest.raises(InputError, match=r"made with other options"):
        make_domain_corpus(tmp_path / "d", DomainSpec(n_train=4, n_test=2), log=lambda m: None)


def test_realspeech_manifests_of_the_installed_packages(tmp_path):
    from speechtao.corpora.realspeech import ALSA_DIR, POCKETSPHINX_DIR, write_realspeech_manifests

    if (
        not (POCKETSPHINX_DIR / "cards" / "cards.transcription").is_file()
        or not (ALSA_DIR / "Front_Left.wav").is_file()
    ):
        pytest.skip(
            "pocketsphinx-testdata and alsa-utils are not installed (apt-get install pocketsphinx-testdata alsa-utils)"
        )
    paths = write_realspeech_manifests(tmp_path)
    ps, alsa, both = (read_manifest(paths[k]) for k in ("pocketsphinx", "alsa", "all"))
    assert len(ps) == 10 and len(alsa) == 8 and len(both) == 18
    by_name = {e.audio_filepath.rsplit("/", 1)[1]: e.text for e in both}
    assert by_name["001.wav"] == "ten of clubs"
    assert by_name["sense_and_sensibility_01_austen_64kb-0880.wav"] == "he was not an ill disposed young man"
    assert by_name["Front_Left.wav"] == "front left"
