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
import json
import math
import os
import re
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from ..data.manifest import ManifestEntry, write_manifest
from ..errors import DataError, InputError
from ..text.normalize import normalize_text
from .textsrc import load_sentences
from .tts import (
    ENGINES,
    WAV_DIR,
    Utterance,
    available_voices,
    list_voices,
    plan_chunks,
    speaker_group,
    synthesize_chunk,
    trim_silence,
    wav_seconds,
)

# Share of utterances per engine when all are installed (renormalized over the engines in use). espeak-ng
# brings most of the voices, piper the most natural one; festival is the slowest to run.
DEFAULT_ENGINE_WEIGHTS: dict[str, float] = {"espeak-ng": 0.4, "flite": 0.2, "festival": 0.15, "piper": 0.25}

# Piper takes its settings per process (loading costs ~1 s), so its utterances are grouped by settings and
# the settings come from small grids: noise (noise_scale, noise_w_scale) pairs around its defaults (0.667,
# 0.8), and PIPER_RATE_LEVELS length scales spread over the spec's rate range.
PIPER_NOISE_LEVELS: tuple[tuple[float, float], ...] = ((0.5, 0.6), (0.8, 1.0))
PIPER_RATE_LEVELS = 3

SPEC_FILE = "synth_spec.yaml"
SENTENCES_FILE = "sentences.txt"
MANIFEST_FILE = "manifest.jsonl"

_SECONDS_PER_SENTENCE = 2.5  # a low guess of the mean utterance, to size the sentence list for ``hours``
_MAX_SENTENCES = 40_000  # distinct sentences to draw at most; longer corpora reuse them with other voices


def check_corpus_size(hours: float | None, n_utterances: int | None) -> None:
    """A corpus is sized by exactly one of ``hours`` (> 0) and ``n_utterances`` (>= 1); ValueError otherwise."""
    if (hours is None) == (n_utterances is None):
        raise ValueError(f"give exactly one of hours and n_utterances (got hours={hours}, n_utterances={n_utterances})")
    if hours is not None and not hours > 0:
        raise ValueError(f"hours must be > 0, got {hours}")
    if n_utterances is not None and n_utterances < 1:
        raise ValueError(f"n_utterances must be >= 1, got {n_utterances}")


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
        check_corpus_size(self.hours, self.n_utterances)
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
                    s = wav_seconds(out_dir / utt(i).relpath())
                    if s is None:
                        todo.append(utt(i))
                    else:
                        seconds[i] = s
                        bar.update(round(s, 2) if by_time else 1)
                n_planned = n_next
                futures = {
                    pool.submit(synthesize_chunk, job, out_dir, spec.sample_rate)
                    for job in plan_chunks(todo, spec.chunk_size)
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
