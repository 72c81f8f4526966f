"""speechtao.corpora.synth without running engines: planning, trimming, splitting, spec checks, chunking."""

import numpy as np
import pytest

from speechtao.corpora import synth, tts
from speechtao.corpora.synth import SynthSpec, holdout_split, plan_utterance, trim_silence
from speechtao.errors import DataError, InputError, MissingDependencyError

VOICES = {
    "espeak-ng": ("espeak-ng:en-us", "espeak-ng:en-gb+f3", "espeak-ng:en-029+m2"),
    "flite": ("flite:kal", "flite:kal16", "flite:slt"),
    "festival": ("festival:kal_diphone", "festival:cmu_us_slt_arctic_hts"),
    "piper": ("piper:en_US-joe-medium",),
}


def test_plan_is_a_function_of_seed_and_index():
    spec = SynthSpec(n_utterances=10, seed=5)
    a = [plan_utterance(i, "Hello there, old friend.", spec, VOICES) for i in range(50)]
    b = [plan_utterance(i, "Hello there, old friend.", spec, VOICES) for i in reversed(range(50))][::-1]
    assert a == b
    other = [
        plan_utterance(i, "Hello there, old friend.", SynthSpec(n_utterances=10, seed=6), VOICES) for i in range(50)
    ]
    assert [u.voice for u in a] != [u.voice for u in other]
    assert {u.engine for u in a} == set(VOICES)  # every engine drawn in 50 utterances with the default weights
    for u in a:
        assert u.label == "hello there old friend"
        assert u.text == "Hello there, old friend."  # plain sentences keep their punctuation for prosody
        assert -2.0 <= u.pitch <= 2.0
        if u.engine == "piper":  # rate from a 3-point grid over the range, noise from its grid
            assert u.rate in (0.85, 1.025, 1.2)
            assert u.noise in synth.PIPER_NOISE_LEVELS
        else:
            assert 0.85 <= u.rate <= 1.2 and u.noise == (0.0, 0.0)


@pytest.mark.parametrize(
    "sentence, spoken",
    [
        ('He said: "go (now)!"', 'He said: "go (now)!"'),
        ("It costs $5 today.", "it costs five dollars today"),  # symbols and digits: read the label
    ],
)
def test_engine_reads_the_sentence_or_its_label(sentence, spoken):
    u = plan_utterance(0, sentence, SynthSpec(n_utterances=1), VOICES)
    assert u.text == spoken


def test_engine_weights_pick_only_weighted_engines():
    spec = SynthSpec(n_utterances=1, engine_weights={"flite": 1.0})
    assert {plan_utterance(i, "a b c", spec, VOICES).engine for i in range(30)} == {"flite"}


def test_trim_silence_keeps_a_margin():
    sr = 16000
    tone = 0.5 * np.sin(2 * np.pi * 220 * np.arange(sr) / sr)  # 1 s
    audio = np.concatenate([np.zeros(sr), tone, np.zeros(2 * sr)]).astype(np.float32)
    audio[: sr // 2] += 1e-4  # a faint hum below the threshold is still silence
    out = trim_silence(audio, sr)
    assert abs(len(out) - (sr + 2 * 0.1 * sr)) <= sr // 100
    assert np.max(np.abs(out[: int(0.09 * sr)])) < 1e-3


def test_holdout_closes_over_recorded_speakers():
    voices = [v for vs in VOICES.values() for v in vs]
    seen_groups = set()
    for seed in range(20):
        held = holdout_split(voices, 1, seed)
        assert held and len(held) < len(voices)
        for v in held:
            if v in ("flite:kal", "flite:kal16", "festival:kal_diphone"):
                assert {"flite:kal", "flite:kal16", "festival:kal_diphone"} <= held
                seen_groups.add("kal")
    assert seen_groups  # the kal family was drawn at least once in 20 seeds
    assert holdout_split(voices, ["flite:kal"], 0) == {"flite:kal"}  # explicit lists are taken as given


@pytest.mark.parametrize(
    "holdout, message",
    [
        (["flite:nobody"], "flite:nobody"),
        (9, "holdout_voices=9"),
    ],
)
def test_holdout_errors_name_the_value(holdout, message):
    with pytest.raises(DataError, match=message):
        holdout_split([v for vs in VOICES.values() for v in vs], holdout, 0)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({}, "exactly one of hours and n_utterances"),
        ({"hours": 1.0, "n_utterances": 3}, "exactly one"),
        ({"hours": -1.0}, "hours must be > 0"),
        ({"n_utterances": 2, "engines": ("espeak",)}, "unknown engine 'espeak'"),
        ({"n_utterances": 2, "workers": 0}, "workers"),
        ({"n_utterances": 2, "rate_range": (1.5, 1.0)}, "rate_range"),
        ({"n_utterances": 2, "pitch_range": (-20.0, 0.0)}, "pitch_range"),
        ({"n_utterances": 2, "engine_weights": {"flite": -1.0}}, "engine_weights"),
    ],
)
def test_spec_rejects_bad_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SynthSpec(**kwargs)


def test_missing_engines_are_skipped_or_raise(monkeypatch):
    monkeypatch.setattr(tts, "list_voices", lambda e: VOICES["flite"] if e == "flite" else ())
    notes = []
    assert tts.available_voices(["piper", "flite"], notes.append) == {"flite": VOICES["flite"]}
    assert len(notes) == 1 and "piper not installed" in notes[0] and "pip install piper-tts" in notes[0]
    with pytest.raises(MissingDependencyError, match="apt-get install espeak-ng flite festival"):
        tts.available_voices(["espeak-ng", "festival"], notes.append)


def test_piper_jobs_group_by_voice_rate_and_noise():
    spec = SynthSpec(n_utterances=1)
    utts = [plan_utterance(i, "one two three", spec, VOICES) for i in range(200)]
    jobs = tts.plan_chunks(utts, 8)
    assert sorted(u.index for job in jobs for u in job) == list(range(200))
    for job in jobs:
        if job[0].engine == "piper":
            assert len({(u.voice, u.rate, u.noise) for u in job}) == 1 and len(job) <= 64
        else:
            assert all(u.engine != "piper" for u in job) and len(job) <= 8


def test_resume_refuses_other_content_options_or_voices(tmp_path):
    spec = SynthSpec(n_utterances=3, seed=1)
    synth._check_spec_file(tmp_path, spec, VOICES)
    synth._check_spec_file(tmp_path, SynthSpec(n_utterances=50, seed=1, workers=4), VOICES)  # size, workers: fine
    with pytest.raises(InputError, match=r"rate_range=\[0.85, 1.2\], now rate_range=\[0.9, 1.2\]"):
        synth._check_spec_file(tmp_path, SynthSpec(n_utterances=3, seed=1, rate_range=(0.9, 1.2)), VOICES)
    fewer = {k: v for k, v in VOICES.items() if k != "piper"}
    with pytest.raises(InputError, match="install the same TTS engines and voices"):
        synth._check_spec_file(tmp_path, spec, fewer)
