"""Transcribe audio with a CTC model: text, word times and confidences, as JSON lines, CTM or SRT.

Utterances are batched in order of duration (longest first), so a batch pads little; results come back in
input order. Audio is read with :func:`speechtao.audio.read_audio` and resampled to the model's rate.
Word times are integer milliseconds from the start of the audio *file*: a manifest segment's ``offset`` is
added, so segments of one long recording line up in one CTM or SRT.

Usage::

    loaded = load_model("model.ckpt")
    results = Transcriber.from_loaded(loaded).transcribe([Utterance("a.wav"), Utterance("b.wav")])
    print(results[0].text, results[0].words[0])
    write_results(results, "jsonl", sys.stdout)
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np

from ..errors import InputError, MissingDependencyError
from .ctc import Word, greedy_decode, word_times
from .longform import DEFAULT_OVERLAP_S, DEFAULT_WINDOW_S

FORMATS = ("jsonl", "ctm", "srt")


@dataclass(frozen=True)
class Utterance:
    """What to transcribe: a file, or a segment of one."""

    audio_filepath: str
    offset: float = 0.0  # seconds into the file
    duration: float | None = None  # seconds to read; None: to the end of the file


@dataclass(frozen=True)
class Transcript:
    audio_filepath: str
    text: str  # the decoded transcript
    words: list[Word]  # times in ms from the start of the file (offset included)
    duration: float  # seconds of audio transcribed
    confidence: float  # mean chosen-symbol probability over the output frames
    offset: float = 0.0

    def to_dict(self) -> dict:
        out = {
            "audio_filepath": self.audio_filepath,
            "text": self.text,
            "words": [w.to_dict() for w in self.words],
            "duration": round(self.duration, 3),
            "confidence": round(self.confidence, 4),
        }
        if self.offset:
            out["offset"] = self.offset
        return out


@dataclass(frozen=True)
class SubtitleOptions:
    max_words: int = 8  # words per subtitle at most
    max_chars: int = 42  # characters per subtitle at most (a common broadcast line length)
    max_seconds: float = 5.0  # longest subtitle
    max_gap_s: float = 1.0  # a pause longer than this starts a new subtitle


def resolve_device(device: str):
    """``"cpu"``, ``"cuda"`` or ``"cuda:N"`` as a torch device; raises when CUDA is asked for but absent."""
    import torch

    if device == "cpu":
        return torch.device("cpu")
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise MissingDependencyError(f"device {device!r}: CUDA is not available here (use --device cpu)")
        return torch.device(device)
    raise InputError(f"device {device!r}: unknown (use cpu or cuda)")


def utterance_seconds(utt: Utterance) -> float:
    """Seconds the utterance covers: its ``duration``, else the file's length minus ``offset``."""
    if utt.duration is not None:
        return utt.duration
    import soundfile as sf

    try:
        info = sf.info(utt.audio_filepath)
    except (RuntimeError, OSError) as exc:
        if not os.path.exists(utt.audio_filepath):
            raise InputError(f"audio {utt.audio_filepath!r}: file not found (check the path)") from None
        raise InputError(f"audio {utt.audio_filepath!r}: cannot be read ({exc}; re-encode it as WAV or FLAC)") from None
    return max(info.frames / info.samplerate - utt.offset, 0.0)


Forward = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


def torch_forward(model, device: str = "cpu") -> Forward:
    """``model`` (an ``EncDecCTCModel``-like module) on ``device`` as a numpy batch call:
    ``(audio (B, T) float32, lengths (B,) int64) -> (log_probs (B, T', V+1) float32, out_lengths (B,) int64)``."""
    import torch

    dev = resolve_device(device)
    model = model.to(dev).eval()

    def forward(audio: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with torch.inference_mode():
            lp, n = model(torch.from_numpy(audio).to(dev), torch.from_numpy(lengths.astype(np.int64)).to(dev))
        return lp.float().cpu().numpy(), n.cpu().numpy().astype(np.int64)

    return forward


def max_window_samples(config) -> int:
    """The longest audio (samples) a model of ``config`` takes in one pass: a Whisper encoder's positions times
    its two feature frames each; 0 (no limit) for convolutional models."""
    if getattr(config, "family", "") != "whisper":
        return 0
    return int(config.encoder.max_positions) * int(config.subsampling_factor) * int(config.preprocessor.hop_length)


class Transcriber:
    """Greedy CTC transcription in batches with any acoustic model.

    Args:
        forward: ``(audio (B, T), lengths (B,)) -> (log_probs (B, T', V+1), out_lengths (B,))`` in numpy
            (:func:`torch_forward`, or a :class:`speechtao.serve.backends.OnnxBackend`).
        tokenizer: ``decode``, ``blank_id`` and what :func:`speechtao.asr.ctc.word_times` reads.
        sample_rate: the model's audio rate; files are resampled to it.
        samples_per_frame: audio samples per output frame (feature hop x subsampling factor).
        max_samples: the longest audio the model takes at once (0: no limit). Longer utterances are decoded
            in overlapping windows of ``window`` samples (default: 10 s, or ``max_samples`` when shorter)
            stitched at the middle of each ``overlap_s`` (:func:`speechtao.asr.longform.windowed_log_probs`).
        description: what was loaded, for logs and ``metrics.json``.
        decoder: the decode step, ``decoder.decode(log_probs (T', V+1)) -> CTCHypothesis`` (e.g. beam search
            with a language model, :class:`speechtao.lm.decode.LMDecoder`); None: greedy.
    """

    def __init__(
        self,
        forward: Forward,
        tokenizer,
        *,
        sample_rate: int,
        samples_per_frame: int,
        max_samples: int = 0,
        window: int = 0,
        overlap_s: float = DEFAULT_OVERLAP_S,
        description: str = "<in memory>",
        decoder=None,
    ):
        self.forward = forward
        self.tokenizer = tokenizer
        self.sample_rate = int(sample_rate)
        self.samples_per_frame = int(samples_per_frame)
        self.frame_shift_s = samples_per_frame / sample_rate
        self.max_samples = int(max_samples)
        self.window = int(window or min(max_samples, DEFAULT_WINDOW_S * sample_rate))
        if self.max_samples and not 0 < self.window <= self.max_samples:
            raise InputError(
                f"long-form window of {self.window / sample_rate:.1f} s: the model takes at most "
                f"{self.max_samples / sample_rate:.1f} s (pass a window up to that)"
            )
        self.overlap = int(round(overlap_s * sample_rate))
        if self.max_samples and not 0 <= self.overlap <= self.window // 2:
            raise InputError(
                f"long-form overlap of {overlap_s:g} s: must be between 0 and half the window "
                f"({self.window / sample_rate / 2:g} s); lower the overlap or raise the window"
            )
        self.description = description
        self.decoder = decoder
        self.seconds_in_model = 0.0  # wall time spent in forward + decoding (for RTF figures)

    @classmethod
    def from_loaded(cls, loaded, device: str = "cpu", **kwargs) -> Transcriber:
        """A :class:`speechtao.asr.checkpoint.LoadedModel` run in PyTorch on ``device``."""
        features = loaded.config.preprocessor
        return cls(
            torch_forward(loaded.model, device),
            loaded.tokenizer,
            sample_rate=int(features.sample_rate),
            samples_per_frame=int(features.hop_length) * int(loaded.model.subsampling_factor),
            max_samples=max_window_samples(loaded.config),
            **kwargs,
        )

    def close(self) -> None:
        """Nothing to release (the protocol of :mod:`speechtao.asr.backends`)."""

    def _read(self, utt: Utterance) -> np.ndarray:
        from ..audio import read_audio

        return read_audio(utt.audio_filepath, sample_rate=self.sample_rate, offset=utt.offset, duration=utt.duration)

    def _log_probs(self, audios: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Log-probabilities (T', V+1) per audio: one padded batch, or windows for audio over the model's limit."""
        from .longform import windowed_log_probs

        out: list[np.ndarray | None] = [None] * len(audios)
        short = [i for i, a in enumerate(audios) if not self.max_samples or len(a) <= self.max_samples]
        if short:
            lengths = np.array([len(audios[i]) for i in short], dtype=np.int64)
            batch = np.zeros((len(short), max(int(lengths.max()), 1)), dtype=np.float32)  # (B, T)
            for j, i in enumerate(short):
                batch[j, : lengths[j]] = audios[i]
            log_probs, out_lengths = self.forward(batch, lengths)
            for j, i in enumerate(short):
                out[i] = log_probs[j, : int(out_lengths[j])]
        for i, a in enumerate(audios):
            if out[i] is None:
                out[i] = windowed_log_probs(
                    a,
                    self.forward,
                    window=self.window,
                    overlap=self.overlap,
                    samples_per_frame=self.samples_per_frame,
                )
        return out  # type: ignore[return-value]

    def log_probs(self, utts: Sequence[Utterance]) -> list[np.ndarray]:
        """The model's log-probabilities (T', V+1) of each utterance, one pass each (no padding): what LM
        tuning decodes many times (:func:`speechtao.lm.tune.tune_lm`)."""
        return [self._log_probs([self._read(u)])[0] for u in utts]

    def transcribe_arrays(self, audios: Sequence[np.ndarray], utts: Sequence[Utterance]) -> list[Transcript]:
        """One batch: ``audios`` float32 mono at the model's rate, ``utts`` their sources."""
        import torch

        start = time.perf_counter()
        results = []
        for audio, log_probs, utt in zip(audios, self._log_probs(audios), utts):
            if self.decoder is not None:
                hyp = self.decoder.decode(log_probs)
            else:
                lp = torch.from_numpy(np.ascontiguousarray(log_probs))[None]
                hyp = greedy_decode(lp, None, self.tokenizer.blank_id)[0]
            n = len(audio)
            shift_ms = int(round(utt.offset * 1000))
            # The last output frame can reach past the audio (centred feature frames): clamp ends to it.
            last_ms = n * 1000 // self.sample_rate
            words = [
                Word(
                    w.word, shift_ms + w.start_ms, shift_ms + max(min(w.end_ms, last_ms), w.start_ms + 1), w.confidence
                )
                for w in word_times(hyp, self.tokenizer, self.frame_shift_s)
            ]
            text = self.tokenizer.decode(list(hyp.token_ids))
            results.append(
                Transcript(utt.audio_filepath, text, words, n / self.sample_rate, hyp.confidence, utt.offset)
            )
        self.seconds_in_model += time.perf_counter() - start
        return results

    def transcribe(self, utts: Sequence[Utterance], batch_size: int = 16, progress: bool = False) -> list[Transcript]:
        """Transcribe ``utts`` in batches of similar duration; results in input order."""
        if batch_size < 1:
            raise InputError(f"batch size {batch_size}: must be at least 1 (pass --batch-size 1 or more)")
        seconds = [utterance_seconds(u) for u in utts]
        order = sorted(range(len(utts)), key=lambda i: -seconds[i])  # longest first: memory peaks at once
        out: list[Transcript | None] = [None] * len(utts)
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=len(utts), unit="utt", leave=False)
        for b in range(0, len(order), batch_size):
            idx = order[b : b + batch_size]
            group = [utts[i] for i in idx]
            for i, res in zip(idx, self.transcribe_arrays([self._read(u) for u in group], group)):
                out[i] = res
            if bar is not None:
                bar.update(len(idx))
        if bar is not None:
            bar.close()
        return out  # type: ignore[return-value]


# ---- output formats ------------------------------------------------------------------------------------


def _utt_id(path: str) -> str:
    return Path(path).stem or "utt"


def _srt_time(ms: int) -> str:
    h, rest = divmod(int(ms), 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, ms = divmod(rest, 1000)
    return f"{h:02d}:{m:02d}:{s:02d},{ms:03d}"


def to_ctm(results: Iterable[Transcript]) -> str:
    """NIST CTM: ``<utterance> 1 <start s> <duration s> <word> <confidence>``, one word a line."""
    lines = []
    for r in results:
        uid = _utt_id(r.audio_filepath)
        for w in r.words:
            lines.append(
                f"{uid} 1 {w.start_ms / 1000:.3f} {(w.end_ms - w.start_ms) / 1000:.3f} {w.word} {w.confidence:.4f}"
            )
    return "".join(line + "\n" for line in lines)


def subtitle_groups(words: Sequence[Word], opts: SubtitleOptions = SubtitleOptions()) -> list[list[Word]]:
    """Split a word sequence into subtitles by word count, characters, length in time and pauses."""
    groups: list[list[Word]] = []
    for w in words:
        cur = groups[-1] if groups else None
        if cur is not None:
            chars = len(" ".join(x.word for x in cur)) + 1 + len(w.word)
            if (
                len(cur) < opts.max_words
                and chars <= opts.max_chars
                and w.end_ms - cur[0].start_ms <= opts.max_seconds * 1000
                and w.start_ms - cur[-1].end_ms <= opts.max_gap_s * 1000
            ):
                cur.append(w)
                continue
        groups.append([w])
    return groups


def to_srt(results: Iterable[Transcript], opts: SubtitleOptions = SubtitleOptions()) -> str:
    """SubRip subtitles of the words of ``results`` (one recording: pass only its transcripts, e.g. the
    segments of a manifest). A subtitle never spans two transcripts: a segment ends its last cue."""
    groups = [g for r in sorted(results, key=lambda r: r.offset) for g in subtitle_groups(r.words, opts)]
    blocks = []
    for n, group in enumerate(groups, 1):
        text = " ".join(w.word for w in group)
        blocks.append(f"{n}\n{_srt_time(group[0].start_ms)} --> {_srt_time(group[-1].end_ms)}\n{text}\n")
    return "\n".join(blocks)


def to_jsonl(results: Iterable[Transcript]) -> str:
    return "".join(json.dumps(r.to_dict(), ensure_ascii=False) + "\n" for r in results)


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_results(
    results: Sequence[Transcript], fmt: str, out: str | Path | None, stdout: IO[str] | None = None
) -> list[Path]:
    """Write ``results`` as ``fmt`` to ``out`` (a file; for SRT of several recordings, a folder that gets one
    ``<name>.srt`` per recording) or, with ``out`` None, to ``stdout``. Returns the files written."""
    if fmt not in FORMATS:
        raise InputError(f"format {fmt!r}: unknown (use one of {', '.join(FORMATS)})")
    if fmt == "srt":
        by_file: dict[str, list[Transcript]] = {}
        for r in results:
            by_file.setdefault(r.audio_filepath, []).append(r)
        if len(by_file) > 1:
            if out is None:
                raise InputError(
                    f"--format srt: {len(by_file)} recordings make one subtitle file each "
                    "(pass --out FOLDER to write them there)"
                )
            folder = Path(out)
            if folder.exists() and not folder.is_dir():
                raise InputError(
                    f"--out {folder}: is a file, but {len(by_file)} recordings need a folder for "
                    "their .srt files (pass a folder path)"
                )
            folder.mkdir(parents=True, exist_ok=True)
            written, used = [], set()
            for path, group in by_file.items():
                name, k = _utt_id(path), 1
                while name in used:  # two recordings with the same file name in different folders
                    k += 1
                    name = f"{_utt_id(path)}-{k}"
                used.add(name)
                dest = folder / f"{name}.srt"
                _write_text(dest, to_srt(group))
                written.append(dest)
            return written
        text = to_srt(results)
    else:
        text = to_jsonl(results) if fmt == "jsonl" else to_ctm(results)
    if out is None:
        if stdout is None:
            import sys

            stdout = sys.stdout
        stdout.write(text)
        stdout.flush()
        return []
    dest = Path(out)
    if dest.is_dir():
        raise InputError(f"--out {dest}: is a folder (pass a file path for {fmt} output)")
    dest.parent.mkdir(parents=True, exist_ok=True)
    _write_text(dest, text)
    return [dest]


def utterances_from(files: Sequence[str] = (), manifest: str | None = None) -> list[Utterance]:
    """Utterances from audio paths, or from a manifest's entries (with their offsets and durations)."""
    if bool(files) == bool(manifest):
        raise InputError("give audio FILES or --manifest M (one of the two)")
    if manifest:
        from ..data.manifest import read_manifest

        # A line without offset stands for the whole file: read all of it, not its rounded duration.
        return [
            Utterance(e.audio_filepath, e.offset, e.duration if e.segment else None) for e in read_manifest(manifest)
        ]
    missing = [f for f in files if not os.path.isfile(f)]
    if missing:
        raise InputError(
            f"audio {missing[0]!r}: file not found"
            + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
            + " (check the path)"
        )
    return [Utterance(os.path.abspath(f)) for f in files]
