"""Offline augmentation: augmented copies of a manifest's audio written to disk as a new manifest
(``speechtao data augment``), TAO's offline data-augmentation tool.

Each utterance gets ``copies`` augmented versions. Copy ``k`` of line ``i`` draws every random choice from
``np.random.default_rng([seed, i, k])``, so a run is deterministic and any file can be made again alone: a
rerun skips the files already written (they are written atomically) and ends with the same manifest, which
is how an interrupted run resumes. The chain is the training-time :class:`~speechtao.augment.WaveAugmenter`
(speed, room reverberation, noise at an SNR, babble, telephone band, gain, each with its own probability)
followed by an optional codec round trip (G.711 mu-law / A-law at 8 kHz in process; GSM, Opus and MP3 through
ffmpeg). Each output line keeps the transcript and every extra field, and adds ``augmentation`` (what was
applied, in order) and ``source_audio``.

Mix the result into training by listing its manifest in ``data.train`` next to the clean one.

Usage::

    report = augment_manifest("train.jsonl", "data/aug", OfflineAugmentOptions(copies=2, chain=AugmentSpec(
        speed_prob=0.5, noise_prob=0.8, reverb_prob=0.3), codecs=("opus",), codec_prob=0.3))
    report.manifest        # data/aug/train.aug.jsonl
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..audio import alaw_decode, alaw_encode, mulaw_decode, mulaw_encode, read_audio, resample, write_wav
from ..augment import AugmentSpec, WaveAugmenter
from ..errors import InputError, MissingDependencyError
from .manifest import ManifestEntry, read_manifest, write_manifest

log = logging.getLogger(__name__)

# Codec name -> ffmpeg arguments of the lossy encode (None: done in process). Rates are telephone / VoIP ones.
CODECS: dict[str, tuple[str, ...] | None] = {
    "mulaw": None,  # G.711 mu-law, 8 kHz
    "alaw": None,  # G.711 A-law, 8 kHz
    "gsm": ("-ar", "8000", "-ac", "1", "-c:a", "libgsm", "-f", "gsm"),
    "opus": ("-ar", "16000", "-ac", "1", "-c:a", "libopus", "-b:a", "12k", "-f", "ogg"),
    "mp3": ("-ar", "16000", "-ac", "1", "-c:a", "libmp3lame", "-b:a", "24k", "-f", "mp3"),
}


@dataclass(frozen=True)
class OfflineAugmentOptions:
    copies: int = 1  # augmented copies per utterance
    seed: int = 0  # copy k of line i draws from default_rng([seed, i, k])
    chain: AugmentSpec = AugmentSpec(speed_prob=0.5, noise_prob=0.5, reverb_prob=0.3)  # waveform steps
    codecs: tuple[str, ...] = ()  # one is drawn when the codec step fires (see CODECS)
    codec_prob: float = 0.0  # probability of the codec round trip
    keep_original: bool = False  # also list the clean utterances in the output manifest
    sample_rate: int = 16000  # rate of the written WAVs
    noise_files: tuple[Path, ...] = ()  # noise recordings (WAV/FLAC); none: synthetic white/pink/brown noise
    babble_from_manifest: bool = False  # babble sources: the manifest's own utterances (needs chain.babble_prob)

    def __post_init__(self):
        if self.copies < 1:
            raise ValueError(f"copies must be >= 1, got {self.copies}")
        unknown = [c for c in self.codecs if c not in CODECS]
        if unknown:
            raise ValueError(f"codec {unknown[0]!r} is not one of {list(CODECS)}")
        if not 0.0 <= self.codec_prob <= 1.0:
            raise ValueError(f"codec_prob must be in [0, 1], got {self.codec_prob}")
        if self.codec_prob > 0 and not self.codecs:
            raise ValueError("codec_prob > 0 needs at least one codec (e.g. codecs: [mulaw, opus])")
        if not self.chain.enabled and self.codec_prob == 0:
            raise ValueError("nothing to apply: every probability is 0 (set a *_prob above 0)")


@dataclass
class AugmentReport:
    manifest: Path  # the written manifest
    written: int  # audio files made by this run
    reused: int  # audio files found from an earlier run (resumed)
    entries: int  # lines of the manifest
    applied: dict[str, int] = field(default_factory=dict)  # step name -> how many copies got it


def _ffmpeg() -> str:
    exe = shutil.which("ffmpeg")
    if exe is None:
        raise MissingDependencyError(
            "the gsm/opus/mp3 codecs need ffmpeg: `apt-get install ffmpeg` (or use codecs mulaw/alaw)"
        )
    return exe


def codec_round_trip(x: np.ndarray, sr: int, codec: str) -> np.ndarray:
    """Encode ``x`` (float32 at ``sr``) with ``codec`` and decode it back to ``sr``; same length as ``x``."""
    if codec in ("mulaw", "alaw"):
        narrow = resample(x, sr, 8000) if sr != 8000 else x
        enc, dec = (mulaw_encode, mulaw_decode) if codec == "mulaw" else (alaw_encode, alaw_decode)
        y = dec(enc(narrow))
        y = resample(y, 8000, sr) if sr != 8000 else y
    else:
        exe = _ffmpeg()
        with tempfile.TemporaryDirectory(prefix="speechtao-codec-") as tmp:
            src, coded, back = Path(tmp) / "in.wav", Path(tmp) / "coded", Path(tmp) / "out.wav"
            write_wav(src, x, sr)
            for cmd in (
                [exe, "-v", "error", "-y", "-i", str(src), *CODECS[codec], str(coded)],
                [exe, "-v", "error", "-y", "-i", str(coded), "-ar", str(sr), "-ac", "1", str(back)],
            ):
                r = subprocess.run(cmd, capture_output=True, text=True)
                if r.returncode != 0:
                    raise MissingDependencyError(
                        f"ffmpeg could not {codec}-encode/decode ({r.stderr.strip()[:200]}); Debian's ffmpeg "
                        "has libgsm, libopus and libmp3lame: `apt-get install ffmpeg`"
                    )
            y = read_audio(back, sr)
    return np.pad(y, (0, max(0, len(x) - len(y))))[: len(x)].astype(np.float32)


def _load_noise(files: tuple[Path, ...], sr: int) -> list[np.ndarray] | None:
    if not files:
        return None
    out = []
    for f in files:
        if not Path(f).is_file():
            raise InputError(f"noise file '{f}' not found (pass WAV/FLAC recordings of noise)")
        out.append(read_audio(f, sr))
    return out


def augment_manifest(
    manifest: str | Path,
    out_dir: str | Path,
    options: OfflineAugmentOptions = OfflineAugmentOptions(),
    progress: Callable[[int, int], None] | None = None,
) -> AugmentReport:
    """Write ``options.copies`` augmented copies of every utterance of ``manifest`` under ``out_dir/audio`` and
    the manifest ``out_dir/<name>.aug.jsonl`` (paths relative to it). ``progress(done, total)`` per utterance."""
    entries = read_manifest(manifest, check_audio=True)
    out_dir = Path(out_dir)
    audio_dir = out_dir / "audio"
    audio_dir.mkdir(parents=True, exist_ok=True)
    sr = options.sample_rate
    babble = None
    if options.chain.babble_prob > 0:
        if not options.babble_from_manifest:
            raise InputError("chain.babble_prob > 0 needs babble sources: set babble_from_manifest (--babble)")
        babble = [read_audio(e.audio_filepath, sr, e.offset, e.duration) for e in entries[:200]]
    augmenter = WaveAugmenter(options.chain, _load_noise(options.noise_files, sr), babble)
    if any(CODECS[c] is not None for c in options.codecs):
        _ffmpeg()  # fail before any work
    out: list[ManifestEntry] = []
    report = AugmentReport(out_dir / f"{Path(manifest).stem}.aug.jsonl", 0, 0, 0)
    for i, e in enumerate(entries):
        clean = read_audio(e.audio_filepath, sr, e.offset, e.duration if e.segment else None)
        stem = f"{i:06d}_{Path(e.audio_filepath).stem}"[:80]
        if options.keep_original:
            out.append(e)
        for k in range(options.copies):
            target = audio_dir / f"{stem}_aug{k}.wav"
            rng = np.random.default_rng([options.seed, i, k])
            applied: list[str] = []
            y = augmenter(clean, sr, rng, applied=applied)
            if options.codec_prob and rng.random() < options.codec_prob:
                codec = options.codecs[int(rng.integers(len(options.codecs)))]
                applied.append(f"codec:{codec}")
                if not target.exists():
                    y = codec_round_trip(y, sr, codec)
            if target.exists():  # made by an earlier run with the same draws
                report.reused += 1
                n = _frames(target)
            else:
                _write_atomic(target, y, sr)
                report.written += 1
                n = len(y)
            for step in applied:
                name = step.split(":")[0]
                report.applied[name] = report.applied.get(name, 0) + 1
            extra = {**e.extra, "augmentation": applied, "source_audio": e.audio_filepath}
            out.append(ManifestEntry(str(target.resolve()), round(n / sr, 4), e.text, extra=extra))
        if progress is not None:
            progress(i + 1, len(entries))
    write_manifest(report.manifest, out)
    report.entries = len(out)
    log.info("augmented %d utterances x %d copies -> %s", len(entries), options.copies, report.manifest)
    return report


def _frames(path: Path) -> int:
    import soundfile as sf

    return int(sf.info(str(path)).frames)


def _write_atomic(path: Path, y: np.ndarray, sr: int) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".wav", dir=path.parent)
    os.close(fd)
    try:
        write_wav(tmp, y, sr)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
