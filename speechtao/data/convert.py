"""Manifests from common corpus layouts; durations are measured from the audio.

- ``folder``: audio files anywhere under a folder, each with a transcript of the same stem next to it
  (``a/b/c.wav`` + ``a/b/c.txt``). Hidden files and folders are skipped.
- ``csv``: a CSV file whose header has the columns ``path`` and ``text``; paths are relative to the CSV's
  folder. Further columns become extra manifest fields (e.g. ``speaker``).
- ``librispeech``: ``SPEAKER/CHAPTER/SPEAKER-CHAPTER.trans.txt`` files with lines ``UTTID WORDS...`` beside
  ``UTTID.flac``; pass a split folder (``LibriSpeech/dev-clean``) or any folder above them. The text is
  lowercased (NeMo's convention) and each line gets a ``speaker`` field.

Every missing transcript, missing or undecodable audio file and empty text is collected before one
:class:`ManifestError` is raised.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable
from pathlib import Path

from ..errors import DataError, ManifestError
from .manifest import ManifestEntry, audio_seconds, filter_by_duration, write_manifest


def _audio_extensions() -> frozenset[str]:
    import soundfile as sf

    exts = {".wav", ".flac", ".ogg", ".opus"}
    if "MP3" in sf.available_formats():
        exts.add(".mp3")
    return frozenset(exts)


def _visible(path: Path, root: Path) -> bool:
    return not any(part.startswith(".") for part in path.relative_to(root).parts)


def _measure(path: Path, where: str, defects: list[str]) -> float | None:
    try:
        seconds = audio_seconds(path)
    except (RuntimeError, OSError, ValueError) as exc:
        defects.append(f"{where}: audio cannot be decoded ({exc}; re-encode it as WAV or FLAC)")
        return None
    if seconds <= 0:
        defects.append(f"{where}: audio is empty (0 samples; remove it or re-record it)")
        return None
    return round(seconds, 4)


def _folder_must_exist(root: Path, what: str) -> None:
    if not root.is_dir():
        raise DataError(f"{root}: {what} folder not found (pass the folder that holds the corpus)")


def from_folder(root: str | Path) -> list[ManifestEntry]:
    """Entries for every audio file under ``root`` with a same-stem ``.txt`` transcript, sorted by path."""
    root = Path(root)
    _folder_must_exist(root, "audio")
    exts = _audio_extensions()
    files = sorted(p for p in root.rglob("*") if p.is_file() and _visible(p, root))
    audio: dict[Path, list[Path]] = {}
    texts: dict[Path, Path] = {}
    for p in files:
        if p.suffix.lower() in exts:
            audio.setdefault(p.with_suffix(""), []).append(p)
        elif p.suffix.lower() == ".txt":
            texts[p.with_suffix("")] = p
    if not audio:
        raise DataError(f"{root}: no audio files ({', '.join(sorted(exts))}) found in this folder or below")
    defects: list[str] = []
    entries: list[ManifestEntry] = []
    for stem, paths in sorted(audio.items()):
        if len(paths) > 1:
            names = ", ".join(p.name for p in paths)
            defects.append(f"{stem}: several audio files share this stem ({names}); keep one per transcript")
            continue
        path = paths[0]
        if stem not in texts:
            defects.append(
                f"{path}: no transcript {stem.name}.txt next to it "
                "(write the transcript in a .txt file with the audio's stem)"
            )
            continue
        txt = texts[stem]
        text = " ".join(txt.read_text(encoding="utf-8").split())
        if not text:
            defects.append(f"{txt}: transcript is empty (write the words spoken in {path.name})")
            continue
        seconds = _measure(path, str(path), defects)
        if seconds is not None:
            entries.append(ManifestEntry(audio_filepath=str(path.absolute()), duration=seconds, text=text))
    for stem in sorted(set(texts) - set(audio)):
        defects.append(
            f"{texts[stem]}: transcript without audio (add {stem.name}.wav or .flac beside it, or remove the .txt)"
        )
    if defects:
        raise ManifestError(defects, summary=f"{root}: {len(defects)} problem(s) converting the folder")
    return entries


def from_csv(path: str | Path) -> list[ManifestEntry]:
    """Entries for the rows of a ``path,text`` CSV (paths relative to the CSV), in file order."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: CSV file not found (pass a CSV with a header row 'path,text')")
    base = path.absolute().parent
    defects: list[str] = []
    entries: list[ManifestEntry] = []
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        columns = reader.fieldnames or []
        missing = [c for c in ("path", "text") if c not in columns]
        if missing:
            raise DataError(
                f"{path}:1: header {columns} lacks column(s) {missing} "
                "(the first row must name the columns, e.g. path,text)"
            )
        extra_cols = [c for c in columns if c not in ("path", "text")]
        for row in reader:
            where = f"{path}:{reader.line_num}"
            if None in row:
                defects.append(f"{where}: more cells than header columns (quote text that holds commas)")
                continue
            rel = (row["path"] or "").strip()
            text = " ".join((row["text"] or "").split())
            if not rel:
                defects.append(f"{where}: empty path (give the audio file, relative to the CSV's folder)")
                continue
            audio = base / rel
            if not audio.is_file():
                defects.append(
                    f"{where}: audio {rel!r} not found at {audio} (paths resolve relative to the CSV's folder)"
                )
                continue
            if not text:
                defects.append(f"{where}: text is empty (give the transcript of {rel!r})")
                continue
            seconds = _measure(audio, where, defects)
            if seconds is not None:
                extra = {c: row[c] for c in extra_cols}
                entries.append(
                    ManifestEntry(audio_filepath=os.path.normpath(audio), duration=seconds, text=text, extra=extra)
                )
    if defects:
        raise ManifestError(defects, summary=f"{path}: {len(defects)} problem(s) converting the CSV")
    if not entries:
        raise DataError(f"{path}: no rows under the header (add one row per utterance: path,text)")
    return entries


def from_librispeech(root: str | Path) -> list[ManifestEntry]:
    """Entries for a LibriSpeech-layout corpus under ``root``, sorted by utterance id, with ``speaker``."""
    root = Path(root)
    _folder_must_exist(root, "LibriSpeech")
    transcripts = sorted(p for p in root.rglob("*.trans.txt") if _visible(p, root))
    if not transcripts:
        raise DataError(
            f"{root}: no *.trans.txt found (expected SPEAKER/CHAPTER/SPEAKER-CHAPTER.trans.txt beside UTTID.flac files)"
        )
    defects: list[str] = []
    entries: list[tuple[str, ManifestEntry]] = []
    for trans in transcripts:
        folder = trans.parent
        listed: set[str] = set()
        for number, line in enumerate(trans.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            where = f"{trans}:{number}"
            parts = line.split(maxsplit=1)
            utt = parts[0]
            if len(parts) < 2:
                defects.append(f"{where}: utterance {utt!r} has no text (lines read 'UTTID WORDS...')")
                continue
            listed.add(utt)
            audio = folder / f"{utt}.flac"
            if not audio.is_file():
                defects.append(
                    f"{where}: audio {audio.name} not found in {folder} (restore the file or remove the line)"
                )
                continue
            seconds = _measure(audio, where, defects)
            if seconds is not None:
                entry = ManifestEntry(
                    audio_filepath=str(audio.absolute()),
                    duration=seconds,
                    text=" ".join(parts[1].lower().split()),
                    extra={"speaker": utt.split("-")[0]},
                )
                entries.append((utt, entry))
        for flac in sorted(folder.glob("*.flac")):
            if flac.stem not in listed:
                defects.append(
                    f"{flac}: no line for {flac.stem!r} in {trans.name} (add its transcript or remove the audio)"
                )
    if defects:
        raise ManifestError(defects, summary=f"{root}: {len(defects)} problem(s) converting the LibriSpeech folder")
    return [entry for _, entry in sorted(entries, key=lambda pair: pair[0])]


SOURCES: dict[str, Callable[[str | Path], list[ManifestEntry]]] = {
    "folder": from_folder,
    "csv": from_csv,
    "librispeech": from_librispeech,
}


def convert(
    kind: str, src: str | Path, out: str | Path, min_duration: float | None = None, max_duration: float | None = None
) -> tuple[list[ManifestEntry], str]:
    """Build a manifest from ``src`` laid out as ``kind``, filter by duration, write it to ``out``.

    Returns (written entries, filter report). Audio paths in ``out`` are relative to its folder.
    """
    if kind not in SOURCES:
        raise DataError(f"source kind {kind!r} is unknown (choose one of {', '.join(SOURCES)})")
    entries = SOURCES[kind](src)
    kept, report = filter_by_duration(entries, min_duration, max_duration)
    write_manifest(out, kept, relative=True)
    return kept, report
