"""Manifests of the real human speech that Debian packages ship with transcripts.

Two small test sets, for measuring how a model trained on synthetic speech does on people:

- ``pocketsphinx``: the utterances of ``pocketsphinx-testdata`` that come with a ``.transcription`` file:
  five playing-card phrases (``cards/NNN.wav``, "ten of clubs") and five LibriVox sentences of *Sense and
  Sensibility* (``librivox/*.wav``). Transcription lines look like ``<s> ten of clubs </s> (001)``.
- ``alsa``: the spoken channel names of ``alsa-utils`` (``/usr/share/sounds/alsa/Front_Left.wav`` says
  "front left"); ``Noise.wav`` holds no speech and is left out.

Paths are absolute (the audio stays where the packages put it); durations are read from the files.

Usage::

    paths = write_realspeech_manifests("data/realspeech")   # {"pocketsphinx": ..., "alsa": ..., "all": ...}
"""

from __future__ import annotations

import re
from pathlib import Path

import soundfile as sf

from ..data.manifest import ManifestEntry, write_manifest
from ..errors import DataError, MissingDependencyError

POCKETSPHINX_DIR = Path("/usr/share/pocketsphinx/test/data")
ALSA_DIR = Path("/usr/share/sounds/alsa")

_LINE_RE = re.compile(r"^\s*(?:<s>)?\s*(?P<text>.*?)\s*(?:</s>)?\s*\((?P<id>[^()\s]+)\)\s*$")


def parse_transcription(text: str, where: str = "transcription") -> dict[str, str]:
    """``{utterance id: words}`` from Sphinx transcription lines (``<s> words </s> (id)``)."""
    out = {}
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        m = _LINE_RE.match(line)
        if m is None:
            raise DataError(f"{where}:{n}: expected '<s> words </s> (id)', got {line.strip()!r}")
        out[m.group("id")] = " ".join(m.group("text").split())
    return out


def _entry(path: Path, text: str, corpus: str) -> ManifestEntry:
    info = sf.info(str(path))
    return ManifestEntry(
        audio_filepath=str(path), duration=round(info.frames / info.samplerate, 4), text=text, extra={"corpus": corpus}
    )


def pocketsphinx_entries(root: Path = POCKETSPHINX_DIR) -> list[ManifestEntry]:
    """The transcribed WAV utterances of pocketsphinx-testdata, sorted by path."""
    files = sorted(root.glob("**/*transcription"))
    if not files:
        raise MissingDependencyError(
            f"{root}: no pocketsphinx test transcriptions found (apt-get install pocketsphinx-testdata)"
        )
    entries = []
    for trans in files:
        for utt_id, words in parse_transcription(trans.read_text(), str(trans)).items():
            wav = trans.parent / f"{utt_id}.wav"
            if not wav.is_file():
                raise DataError(
                    f"{trans}: utterance {utt_id!r} has no audio file {wav} (reinstall pocketsphinx-testdata)"
                )
            entries.append(_entry(wav, words, "pocketsphinx"))
    return sorted(entries, key=lambda e: e.audio_filepath)


def alsa_entries(root: Path = ALSA_DIR) -> list[ManifestEntry]:
    """The spoken channel names of alsa-utils: ``Front_Left.wav`` -> "front left" (``Noise.wav`` excluded)."""
    files = sorted(p for p in root.glob("*.wav") if p.stem.lower() != "noise")
    if not files:
        raise MissingDependencyError(f"{root}: no ALSA channel-name recordings found (apt-get install alsa-utils)")
    return [_entry(p, p.stem.replace("_", " ").lower(), "alsa") for p in files]


def write_realspeech_manifests(
    out_dir: str | Path, pocketsphinx_root: Path = POCKETSPHINX_DIR, alsa_root: Path = ALSA_DIR
) -> dict[str, Path]:
    """Write ``pocketsphinx.jsonl``, ``alsa.jsonl`` and ``all.jsonl`` (both) into ``out_dir``; absolute paths."""
    out = Path(out_dir)
    sets = {"pocketsphinx": pocketsphinx_entries(pocketsphinx_root), "alsa": alsa_entries(alsa_root)}
    sets["all"] = sets["pocketsphinx"] + sets["alsa"]
    paths = {}
    for name, entries in sets.items():
        paths[name] = out / f"{name}.jsonl"
        write_manifest(paths[name], entries, relative=False)
    return paths


__all__ = [
    "POCKETSPHINX_DIR",
    "ALSA_DIR",
    "parse_transcription",
    "pocketsphinx_entries",
    "alsa_entries",
    "write_realspeech_manifests",
]
