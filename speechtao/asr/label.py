"""A teacher for unlabeled audio: transcripts with a confidence per utterance, filtered into a training manifest.

Any model :func:`speechtao.asr.backends.open_model` opens can label: a CTC checkpoint, an ONNX export, a server,
or a Whisper encoder-decoder (``whisper:base``, usually the best teacher here). Each kept line is a NeMo manifest
line (``audio_filepath``, ``duration``, ``text``, ``offset`` for segments) plus ``confidence`` (the model's: a CTC
model's mean chosen-symbol probability, Whisper's ``exp`` of its tokens' mean log-probability) and ``label_model``.
``speechtao asr finetune`` reads it like any manifest (extra fields are kept and ignored).

Filter: an utterance is kept when its transcript has at least ``min_words`` words and its confidence is at least
``min_confidence``; with ``max_chars_per_second`` also when it does not read faster than that (a teacher that
loops or hallucinates). The rejected lines go to ``<out>.rejected.jsonl`` with a ``reason``.

Usage::

    report = label_audio("whisper:base", LabelOptions(min_confidence=0.5), audio_dir="recordings/",
                         out="labeled.jsonl")
    print(report.kept, report.rejected)
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..data.manifest import ManifestEntry, read_manifest, write_manifest
from ..errors import InputError
from .infer import Utterance

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3")


@dataclass(frozen=True)
class LabelOptions:
    min_confidence: float = 0.0  # keep utterances whose confidence is at least this (0..1)
    min_words: int = 1  # keep transcripts of at least this many words
    max_chars_per_second: float | None = 25.0  # reject faster "speech" (a looping teacher); None: no check
    batch_size: int = 8
    threads: int = 1  # ONNX Runtime threads (PyTorch: the caller's torch.set_num_threads)

    def __post_init__(self):
        if not 0.0 <= self.min_confidence <= 1.0:
            raise ValueError(f"min_confidence must be in [0, 1], got {self.min_confidence}")
        if self.min_words < 0 or self.batch_size < 1:
            raise ValueError(f"min_words must be >= 0 and batch_size >= 1, got {self.min_words}, {self.batch_size}")


@dataclass(frozen=True)
class LabelReport:
    out: Path
    rejected_out: Path
    kept: int
    rejected: int
    hours_kept: float
    reasons: dict[str, int]


def audio_files(folder: str | Path) -> list[Path]:
    """Audio files under ``folder`` (recursively, sorted), by suffix."""
    root = Path(folder)
    if not root.is_dir():
        raise InputError(f"--audio {folder}: not a folder (pass a folder of WAV/FLAC/OGG files)")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file())
    if not files:
        raise InputError(f"--audio {folder}: no audio files ({', '.join(AUDIO_SUFFIXES)}) found")
    return files


def _reason(text: str, confidence: float, duration: float, opts: LabelOptions) -> str | None:
    n_words = len(text.split())
    if n_words < opts.min_words:
        return "too few words"
    if confidence < opts.min_confidence:
        return "low confidence"
    if opts.max_chars_per_second is not None and duration > 0 and len(text) / duration > opts.max_chars_per_second:
        return "too fast"
    return None


def label_audio(
    model,
    opts: LabelOptions = LabelOptions(),
    *,
    out: str | Path,
    audio_dir: str | Path | None = None,
    manifest: str | Path | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> LabelReport:
    """Transcribe ``audio_dir`` (or the utterances of ``manifest``; its texts are ignored) with ``model`` and write
    the kept lines to ``out`` and the rejected ones to ``<out>.rejected.jsonl``."""
    from .backends import open_model

    if (audio_dir is None) == (manifest is None):
        raise InputError("give exactly one of --audio DIR and --manifest M")
    if manifest is not None:
        entries = read_manifest(manifest)
        utts = [Utterance(e.audio_filepath, e.offset, e.duration if e.segment else None) for e in entries]
    else:
        utts = [Utterance(str(p.resolve())) for p in audio_files(audio_dir)]
    backend = open_model(model, threads=opts.threads) if isinstance(model, (str, Path)) else model
    kept: list[ManifestEntry] = []
    rejected: list[dict] = []
    reasons: dict[str, int] = {}
    try:
        for b in range(0, len(utts), opts.batch_size):
            group = utts[b : b + opts.batch_size]
            for utt, res in zip(group, backend.transcribe(group, opts.batch_size)):
                extra = {"confidence": round(float(res.confidence), 4), "label_model": str(model)}
                why = _reason(res.text.strip(), res.confidence, res.duration, opts)
                entry = ManifestEntry(
                    audio_filepath=utt.audio_filepath,
                    duration=round(res.duration, 4),
                    text=res.text.strip(),
                    offset=utt.offset,
                    extra=extra,
                    segment=utt.duration is not None,
                )
                if why is None:
                    kept.append(entry)
                else:
                    reasons[why] = reasons.get(why, 0) + 1
                    rejected.append({**entry.to_dict(), "reason": why})
            if progress is not None:
                progress(min(b + opts.batch_size, len(utts)), len(utts))
    finally:
        if isinstance(model, (str, Path)):
            backend.close()
    out = Path(out)
    write_manifest(out, kept, relative=False)
    rejected_out = out.with_name(out.stem + ".rejected.jsonl")
    tmp = rejected_out.with_name(f".{rejected_out.name}.tmp")
    tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rejected), encoding="utf-8")
    os.replace(tmp, rejected_out)
    return LabelReport(out, rejected_out, len(kept), len(rejected), sum(e.duration for e in kept) / 3600, reasons)


__all__ = ["LabelOptions", "LabelReport", "label_audio", "audio_files"]
