"""CTC log-probabilities of a recording longer than a model's window, from overlapping windows.

A model with a fixed input window (the Whisper encoder: 1500 positions, 30 s) cannot take a long recording
at once. :func:`windowed_log_probs` runs it on overlapping windows and stitches their outputs at the middle
of each overlap, so every output frame comes from a window that saw at least ``overlap / 2`` of context on
both sides (except at the ends of the recording). Window starts are whole output frames apart, so frame ``t``
of the result covers samples ``[t * samples_per_frame, (t + 1) * samples_per_frame)`` exactly as a single pass
would, and word times from :func:`speechtao.asr.ctc.word_times` stay right.

Usage (``forward`` is any batch call ``(audio (B, T), lengths (B,)) -> (log_probs (B, T', V+1), lengths
(B,))``, e.g. a :class:`speechtao.serve.backends.OnnxBackend`)::

    log_probs = windowed_log_probs(audio, forward, window=480_000, overlap=64_000, samples_per_frame=320)
    hyp = greedy_decode(torch.from_numpy(log_probs)[None], None, blank_id)[0]
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..errors import InputError

# Default window and overlap for models whose limit is longer. The Whisper-CTC starter (fine-tuned on clips of a
# few seconds) on a 64.6 s concatenation of the 23 real recordings of speechtao.corpora.realspeech (0.4 s pauses):
# CER 39.5% with 30 s windows (4 s overlap), 36.0% at 20 s, 33.8% at 15 s, 29.6% at 10 s, against 30.9% for the
# same recordings decoded one by one; 8 s and 6 s windows were no better than 10 s.
DEFAULT_WINDOW_S = 10.0
DEFAULT_OVERLAP_S = 4.0

Forward = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class Window:
    """One window: samples ``[start, end)``; it contributes output frames ``[keep_from, keep_to)`` of the whole
    recording (``keep_to`` None: up to the window's last frame)."""

    start: int
    end: int
    keep_from: int
    keep_to: int | None


def plan_windows(n_samples: int, *, window: int, overlap: int, samples_per_frame: int) -> list[Window]:
    """Overlapping windows over ``n_samples`` samples, each at most ``window`` long, starting on frame
    boundaries, neighbours overlapping by at least ``overlap`` samples; the last one ends at the recording's
    end. One window when the recording fits."""
    if samples_per_frame < 1 or window < 2 * samples_per_frame:
        raise InputError(
            f"long-form window of {window} samples: must hold at least two output frames of "
            f"{samples_per_frame} samples (raise the window)"
        )
    if not 0 <= overlap <= window // 2:
        raise InputError(
            f"long-form overlap of {overlap} samples: must be between 0 and half the window ({window // 2}); "
            "lower the overlap"
        )
    if n_samples <= window:
        return [Window(0, n_samples, 0, None)]
    step = (window - overlap) // samples_per_frame * samples_per_frame
    last = (n_samples - window + samples_per_frame - 1) // samples_per_frame * samples_per_frame
    starts = list(range(0, last, step)) + [last]
    windows = []
    for i, start in enumerate(starts):
        end = min(start + window, n_samples)
        keep_from = windows[-1].keep_to if windows else 0
        keep_to = None
        if i + 1 < len(starts):  # cut at the middle of the overlap with the next window, on a frame boundary
            keep_to = int(round((starts[i + 1] + end) / 2 / samples_per_frame))
        windows.append(Window(start, end, keep_from, keep_to))
    return windows


def windowed_log_probs(
    audio: np.ndarray,
    forward: Forward,
    *,
    window: int,
    overlap: int,
    samples_per_frame: int,
    batch_size: int = 4,
) -> np.ndarray:
    """Log-probabilities ``(T, V+1)`` of the 1-D ``audio`` from ``forward`` run on overlapping windows of at most
    ``window`` samples (see :func:`plan_windows`), ``batch_size`` windows per call.

    Args:
        audio: float32 samples at the model's rate, any length.
        forward: ``(audio (B, W) float32, lengths (B,) int64) -> (log_probs (B, T', V+1), out_lengths (B,))``.
        window: samples per window (the model's limit or less).
        overlap: samples shared by neighbouring windows; each side keeps half.
        samples_per_frame: audio samples per output frame (feature hop x subsampling factor).
    """
    audio = np.asarray(audio, dtype=np.float32)
    plan = plan_windows(len(audio), window=window, overlap=overlap, samples_per_frame=samples_per_frame)
    pieces: list[np.ndarray] = []
    for b in range(0, len(plan), max(batch_size, 1)):
        group = plan[b : b + max(batch_size, 1)]
        lengths = np.array([w.end - w.start for w in group], dtype=np.int64)
        batch = np.zeros((len(group), int(lengths.max())), dtype=np.float32)  # (B, W)
        for j, w in enumerate(group):
            batch[j, : lengths[j]] = audio[w.start : w.end]
        log_probs, out_lengths = forward(batch, lengths)  # (B, T', V+1), (B,)
        for j, w in enumerate(group):
            first = w.start // samples_per_frame  # the window's frame 0 in the whole recording
            stop = int(out_lengths[j]) if w.keep_to is None else w.keep_to - first
            pieces.append(np.asarray(log_probs[j, w.keep_from - first : stop], dtype=np.float32))
    return np.concatenate(pieces, axis=0)
