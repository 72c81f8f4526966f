"""NeMo JSON-lines manifests: read, validate, write and filter.

One utterance per line, one JSON object per utterance::

    {"audio_filepath": "clips/a.wav", "duration": 2.41, "text": "turn left at the lights"}
    {"audio_filepath": "long.flac", "offset": 12.0, "duration": 3.5, "text": "a segment", "speaker": "s1"}

- ``audio_filepath``, ``duration`` (seconds) and ``text`` are required; ``offset`` (seconds) is optional.
  Any other field (``speaker``, ``engine``, ...) is kept unchanged through read and write.
- Relative audio paths resolve against the folder of the manifest, never against the working directory.
- Blank lines are ignored (NeMo skips them too); line numbers in messages count every physical line.
- Without ``offset`` the line stands for the whole file, so ``duration`` must match the file's length
  (within ``duration_tolerance``); with ``offset`` it is a segment, which must end inside the file.
- The same audio and offset on two lines is a defect for :func:`validate_manifest` (usually a merge
  mistake) and allowed by :func:`read_manifest` (deliberate oversampling); both take ``allow_duplicates``.
- With a vocabulary, text is checked as training sees it, after
  :func:`speechtao.text.normalize.normalize_text`: letters it cannot spell (CJK, Greek, ...), text left
  empty, and normalized characters outside the vocabulary are defects.

Every defect is one string ``FILE:LINE: problem (how to fix)``; readers collect them all before raising.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import unicodedata
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from ..errors import DataError, InputError, ManifestError
from ..text.normalize import normalize_text
from ..text.tokenizers import CHAR_VOCAB

REQUIRED_FIELDS = ("audio_filepath", "duration", "text")
CORE_FIELDS = REQUIRED_FIELDS + ("offset",)

DEFAULT_DURATION_TOLERANCE = 0.05  # seconds between a line's duration and the audio's real length


@dataclass(frozen=True)
class ManifestEntry:
    """One utterance of a manifest."""

    audio_filepath: str  # absolute path of the audio file (relative paths resolved on read)
    duration: float  # seconds of audio this utterance covers
    text: str  # transcript as written in the manifest (not normalized)
    offset: float = 0.0  # seconds into the file where the utterance starts
    extra: dict = field(default_factory=dict)  # every other field of the line, unchanged
    line: int = 0  # 1-based line number in ``source`` (0 for entries built in code)
    source: str = ""  # the manifest this entry came from ("" for entries built in code)
    segment: bool = False  # True when the line gave ``offset``: a span of the file, not the whole file

    def to_dict(self, relative_to: str | Path | None = None) -> dict:
        """The manifest line as a mapping; ``audio_filepath`` made relative to ``relative_to`` if given."""
        path = self.audio_filepath
        if relative_to is not None:
            path = os.path.relpath(path, os.path.abspath(relative_to))
        out: dict = {"audio_filepath": path, "duration": self.duration}
        if self.segment or self.offset:
            out["offset"] = self.offset
        out["text"] = self.text
        out.update(self.extra)
        return out

    def to_json(self, relative_to: str | Path | None = None) -> str:
        """One manifest line (no trailing newline); non-ASCII text is written as is."""
        return json.dumps(self.to_dict(relative_to), ensure_ascii=False)


@dataclass
class ManifestScan:
    """What one pass over a manifest found: the good entries, every defect, and the non-blank line count."""

    path: str
    entries: list[ManifestEntry]
    defects: list[str]
    lines: int


def load_vocab(spec: str | Path) -> frozenset[str]:
    """Allowed characters from ``"char"`` (NeMo's 28 symbols) or a file with one character per line.

    In a file, a line holding a single space is the space symbol; empty lines are skipped.
    """
    if str(spec) == "char":
        return frozenset(CHAR_VOCAB)
    p = Path(spec)
    if not p.is_file():
        raise InputError(f"vocabulary {str(spec)!r}: not found (pass 'char' or a file with one character per line)")
    symbols = set()
    for i, raw in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
        if raw == "":
            continue
        if len(raw) != 1:
            raise InputError(
                f"{p}:{i}: vocabulary symbol {raw!r} is not one character "
                "(write one character per line; a line with a single space is the space symbol)"
            )
        symbols.add(raw)
    if not symbols:
        raise InputError(f"{p}: vocabulary file is empty (write one character per line)")
    return frozenset(symbols)


@lru_cache(maxsize=4096)
def _unspellable(char: str) -> bool:
    """A letter or digit that the normalizer turns into nothing (e.g. CJK, Greek): its words would be lost."""
    return unicodedata.category(char)[0] in "LN" and not normalize_text(char)


def _vocab_defects(text: str, vocab: frozenset[str], where: str) -> list[str]:
    """Check ``text`` as training will see it: normalized by :func:`normalize_text`, over ``vocab``."""
    defects = []
    lost = sorted({c for c in text if _unspellable(c)})
    if lost:
        shown = ", ".join(repr(c) for c in lost)
        defects.append(
            f"{where}: text has characters the normalizer cannot spell: {shown} "
            "(transliterate them into English letters, or drop the line)"
        )
    normalized = normalize_text(text)
    if not normalized and not lost:
        defects.append(
            f"{where}: text {text!r} has no words left after normalization (give the spoken words, or drop the line)"
        )
    outside = sorted(set(normalized) - vocab)
    if outside:
        shown = ", ".join(repr(c) for c in outside)
        defects.append(
            f"{where}: normalized text {normalized!r} has characters outside the vocabulary: {shown} "
            "(add them to the vocabulary, or rewrite the text)"
        )
    return defects


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def audio_seconds(path: str | Path) -> float:
    """Seconds of audio in ``path``; raises ``RuntimeError``/``OSError`` when it cannot be decoded.

    Reads a few frames at the start and at the end, so truncated compressed files fail here too.
    """
    import soundfile as sf

    with sf.SoundFile(path) as f:
        frames, rate = f.frames, f.samplerate
        if frames > 0:
            f.read(min(frames, 1024))
            f.seek(max(0, frames - 1024))
            f.read(1024)
    return frames / rate


def _check_line(
    obj: dict,
    where: str,
    base: Path,
    vocab: frozenset[str] | None,
    check_audio: bool,
    tolerance: float,
    line: int,
    source: str,
) -> tuple[ManifestEntry | None, list[str]]:
    """Check one parsed line; returns (entry or None, defects)."""
    defects: list[str] = []
    missing = [k for k in REQUIRED_FIELDS if k not in obj]
    if missing:
        names = ", ".join(repr(k) for k in missing)
        defects.append(
            f"{where}: missing required field{'s' if len(missing) > 1 else ''} {names} "
            "(every line needs audio_filepath, duration and text)"
        )

    audio = obj.get("audio_filepath")
    resolved = None
    if "audio_filepath" in obj:
        if not isinstance(audio, str) or not audio.strip():
            defects.append(
                f"{where}: audio_filepath must be a non-empty string, got {audio!r} "
                "(give the audio file's path, absolute or relative to the manifest's folder)"
            )
        else:
            resolved = os.path.normpath(os.path.join(base, audio))  # an absolute audio path wins over base

    duration = obj.get("duration")
    if "duration" in obj:
        if not _is_number(duration):
            defects.append(
                f"{where}: duration must be a number of seconds, got {duration!r} "
                "(write a JSON number such as 2.35, without quotes)"
            )
            duration = None
        elif not math.isfinite(duration) or duration <= 0:
            defects.append(
                f"{where}: duration {duration!r} must be a positive number of seconds "
                "(measure it from the audio, e.g. speechtao data convert)"
            )
            duration = None

    offset = obj.get("offset", 0.0)
    if not _is_number(offset):
        defects.append(
            f"{where}: offset must be a number of seconds, got {offset!r} "
            "(write a JSON number such as 1.5, without quotes)"
        )
        offset = None
    elif not math.isfinite(offset) or offset < 0:
        defects.append(
            f"{where}: offset {offset!r} must be a finite number of seconds, 0 or more "
            "(give where the utterance starts, counted from the start of the file)"
        )
        offset = None

    text = obj.get("text")
    if "text" in obj:
        if not isinstance(text, str):
            defects.append(f"{where}: text must be a string, got {text!r} (write the transcript as a JSON string)")
            text = None
        elif not text.strip():
            defects.append(f"{where}: text is empty (give the transcript, or drop the line)")
            text = None
        elif vocab is not None:
            defects.extend(_vocab_defects(text, vocab, where))

    if check_audio and resolved is not None:
        if not os.path.isfile(resolved):
            defects.append(
                f"{where}: audio_filepath {audio!r} not found at {resolved} "
                "(paths resolve relative to the manifest's folder)"
            )
        else:
            try:
                length = audio_seconds(resolved)
            except (RuntimeError, OSError, ValueError) as exc:
                defects.append(f"{where}: audio {audio!r} cannot be decoded ({exc}; re-encode it as WAV or FLAC)")
            else:
                if duration is not None and offset is not None:
                    end = offset + duration
                    if "offset" in obj:
                        if end > length + tolerance:
                            defects.append(
                                f"{where}: segment ends at {end:.3f} s (offset {offset} + duration "
                                f"{duration}) past the end of {audio!r} ({length:.3f} s) "
                                "(fix offset/duration)"
                            )
                    elif abs(duration - length) > tolerance:
                        defects.append(
                            f"{where}: duration {duration} s differs from the audio's length "
                            f"{length:.3f} s by more than {tolerance} s (set duration to "
                            f"{length:.3f}, or give offset if the line is a segment)"
                        )

    if defects or resolved is None or duration is None or text is None or offset is None:
        return None, defects
    extra = {k: v for k, v in obj.items() if k not in CORE_FIELDS}
    entry = ManifestEntry(
        audio_filepath=resolved,
        duration=float(duration),
        text=text,
        offset=float(offset),
        extra=extra,
        line=line,
        source=source,
        segment="offset" in obj,
    )
    return entry, []


def scan_manifest(
    path: str | Path,
    *,
    vocab: Collection[str] | None = None,
    check_audio: bool = True,
    duration_tolerance: float = DEFAULT_DURATION_TOLERANCE,
    allow_duplicates: bool = False,
) -> ManifestScan:
    """Read ``path`` and check every line; never raises for bad content (see :class:`ManifestScan`).

    ``vocab``: allowed characters (see :func:`load_vocab`); ``None`` skips the check. The text is checked as
    training sees it, after :func:`speechtao.text.normalize.normalize_text`: letters the normalizer cannot
    spell, text that normalizes to nothing, and normalized characters outside ``vocab`` are defects.
    ``check_audio``: open every audio file (exists, decodes, length agrees with duration/offset).
    """
    name = str(path)
    p = Path(path)
    if not p.is_file():
        what = "is a folder, not a manifest file" if p.is_dir() else "not found"
        return ManifestScan(name, [], [f"{name}: manifest {what} (pass the path of a .json/.jsonl manifest)"], 0)
    base = Path(os.path.abspath(p)).parent
    allowed = frozenset(vocab) if vocab is not None else None
    entries: list[ManifestEntry] = []
    defects: list[str] = []
    seen: dict[tuple[str, float], int] = {}
    lines = 0
    with open(p, "rb") as f:
        for number, raw in enumerate(f, 1):
            where = f"{name}:{number}"
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                defects.append(f"{where}: not valid UTF-8 at byte {exc.start} (save the manifest as UTF-8)")
                lines += 1
                continue
            if number == 1:
                line = line.removeprefix("\ufeff")
            if not line.strip():
                continue
            lines += 1
            try:
                obj = json.loads(line.rstrip("\r\n"))
            except json.JSONDecodeError as exc:
                defects.append(
                    f"{where}: invalid JSON: {exc.msg} at column {exc.colno} "
                    "(each line must be one complete JSON object)"
                )
                continue
            if not isinstance(obj, dict):
                defects.append(
                    f"{where}: expected a JSON object, got {type(obj).__name__} "
                    '(write {"audio_filepath": ..., "duration": ..., "text": ...})'
                )
                continue
            entry, found = _check_line(obj, where, base, allowed, check_audio, duration_tolerance, number, name)
            defects.extend(found)
            if entry is None:
                continue
            key = (entry.audio_filepath, entry.offset)
            if key in seen and not allow_duplicates:
                defects.append(
                    f"{where}: repeats audio_filepath {obj['audio_filepath']!r} at offset "
                    f"{entry.offset} from line {seen[key]} (remove one of them; if the repetition is "
                    "deliberate, pass --allow-duplicates / allow_duplicates=True)"
                )
                continue
            seen.setdefault(key, number)
            entries.append(entry)
    if lines == 0 and not defects:
        defects.append(f"{name}: manifest has no utterances (write one JSON object per line)")
    return ManifestScan(name, entries, defects, lines)


def read_manifest(
    path: str | Path,
    *,
    check_audio: bool = False,
    vocab: Collection[str] | None = None,
    duration_tolerance: float = DEFAULT_DURATION_TOLERANCE,
    allow_duplicates: bool = True,
) -> list[ManifestEntry]:
    """All entries of ``path``, or :class:`ManifestError` listing every defect of the file."""
    scan = scan_manifest(
        path,
        vocab=vocab,
        check_audio=check_audio,
        duration_tolerance=duration_tolerance,
        allow_duplicates=allow_duplicates,
    )
    if scan.defects:
        raise ManifestError(scan.defects, summary=f"{path}: {len(scan.defects)} defect(s) in {scan.lines} lines")
    return scan.entries


def validate_manifest(
    path: str | Path,
    *,
    vocab: Collection[str] | None = None,
    check_audio: bool = True,
    duration_tolerance: float = DEFAULT_DURATION_TOLERANCE,
    allow_duplicates: bool = False,
) -> list[str]:
    """Every defect of ``path`` as ``FILE:LINE: problem (fix)`` strings; empty when the manifest is clean."""
    return scan_manifest(
        path,
        vocab=vocab,
        check_audio=check_audio,
        duration_tolerance=duration_tolerance,
        allow_duplicates=allow_duplicates,
    ).defects


def write_manifest(path: str | Path, entries: Iterable[ManifestEntry], relative: bool = True) -> None:
    """Write ``entries`` to ``path`` atomically (temporary file, then ``os.replace``).

    With ``relative`` the audio paths are written relative to the manifest's folder, so the manifest and
    its audio can move together.
    """
    p = Path(path)
    folder = Path(os.path.abspath(p)).parent
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            for entry in entries:
                f.write(entry.to_json(folder if relative else None) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _seconds(value: float) -> str:
    return f"{value:g} s"


def filter_by_duration(
    entries: list[ManifestEntry], min_duration: float | None = None, max_duration: float | None = None
) -> tuple[list[ManifestEntry], str]:
    """Keep entries with ``min_duration <= duration <= max_duration``; returns (kept, report).

    The report reads ``dropped 3 of 120 utterances: 2 shorter than 0.5 s, 1 longer than 20 s``.
    Raises :class:`DataError` when the bounds are inconsistent or nothing is left.
    """
    if min_duration is not None and max_duration is not None and min_duration > max_duration:
        raise DataError(f"min_duration {min_duration} s is above max_duration {max_duration} s (swap them)")
    entries = list(entries)
    if not entries:
        raise DataError("no utterances to filter (the manifest is empty)")
    short = [e for e in entries if min_duration is not None and e.duration < min_duration]
    long = [e for e in entries if max_duration is not None and e.duration > max_duration]
    kept = [
        e
        for e in entries
        if (min_duration is None or e.duration >= min_duration) and (max_duration is None or e.duration <= max_duration)
    ]
    if not kept:
        lo = min(e.duration for e in entries)
        hi = max(e.duration for e in entries)
        raise DataError(
            f"duration filter left no utterances: all {len(entries)} lie outside "
            f"[{min_duration if min_duration is not None else 0:g}, "
            f"{max_duration if max_duration is not None else math.inf:g}] s while durations range "
            f"{lo:g}-{hi:g} s (lower min_duration or raise max_duration)"
        )
    if len(kept) == len(entries):
        return kept, f"kept all {len(entries)} utterances"
    parts = []
    if short:
        parts.append(f"{len(short)} shorter than {_seconds(min_duration)}")
    if long:
        parts.append(f"{len(long)} longer than {_seconds(max_duration)}")
    return kept, f"dropped {len(entries) - len(kept)} of {len(entries)} utterances: {', '.join(parts)}"
