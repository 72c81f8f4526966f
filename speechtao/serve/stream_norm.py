"""Feature normalization of streaming chunk windows with the running statistics of the utterance.

Models trained with NeMo's per-feature (or all-feature) normalization expect log-mels normalized over the whole
utterance; a chunk window normalized over itself alone sees other statistics. :class:`FeatureStats` keeps, per
stream, sums of the raw log-mels of every frame received so far (in blocks, so an endpoint can drop the frames
of the previous utterance) and :func:`forward_stream_normalized` normalizes each window of a batch with its own
stream's statistics before running the model. Whisper-encoder models (features ``normalize == "whisper"``)
floor their log-mels at the utterance's peak minus ``dynamic_range``: here the running peak.

Usage (what :class:`speechtao.serve.recognizer.Recognizer` does for chunk windows)::

    log_probs, out_lengths = forward_stream_normalized(backend, [(stream.stats, window_start), ...], audio, lengths)
"""

from __future__ import annotations

from collections import deque

import numpy as np


class FeatureStats:
    """Running log-mel statistics of one stream: blocks of (first frame's sample, sum (C,), sum of squares (C,),
    frames, max), frames counted up to absolute sample ``until``."""

    def __init__(self) -> None:
        self.blocks: deque = deque()
        self.until = 0

    def add(self, start: int, x: np.ndarray, hop: int) -> None:
        """Add the frames of a window starting at absolute sample ``start`` (x: (C, F) raw log-mels) that are
        not counted yet (feature frame k is centred on sample start + k * hop)."""
        k0 = max(-(-(self.until - start) // hop), 0)
        if k0 < x.shape[1]:
            new = x[:, k0:]
            self.blocks.append((start + k0 * hop, new.sum(1), (new * new).sum(1), new.shape[1], new.max()))
            self.until = start + x.shape[1] * hop

    def drop_before(self, sample: int) -> None:
        """Forget the frames of an earlier utterance (those starting before absolute sample ``sample``)."""
        while self.blocks and self.blocks[0][0] < sample:
            self.blocks.popleft()

    @property
    def frames(self) -> int:
        return sum(b[3] for b in self.blocks)

    def peak(self, x: np.ndarray) -> float:
        """The largest log-mel counted (Whisper's dynamic-range reference); the window's own when none is."""
        return max(b[4] for b in self.blocks) if self.blocks else float(x.max())

    def mean_std(self, x: np.ndarray, normalize: str) -> tuple[np.ndarray, np.ndarray]:
        """Mean and std ((C, 1) or scalars) over the counted frames; the window's own (x: (C, F)) when fewer
        than 2 frames are counted. As speechtao.features: unbiased std plus 1e-5."""
        from ..features import STD_GUARD

        n = self.frames
        if n >= 2:
            total = sum(b[1] for b in self.blocks)
            squares = sum(b[2] for b in self.blocks)
        else:
            n, total, squares = x.shape[1], x.sum(1), (x * x).sum(1)
        if normalize == "all_features":
            n, total, squares = n * x.shape[0], total.sum(), squares.sum()
        mean = total / n
        var = np.maximum(squares - n * mean * mean, 0.0) / max(n - 1, 1)
        std = np.sqrt(var) + STD_GUARD
        if normalize == "all_features":
            return mean, std
        return mean[:, None], std[:, None]


def supports_stream_normalization(backend) -> bool:
    """True when the backend exposes its feature front end (``features`` not None) and the features are
    normalized at all."""
    spec = getattr(backend.features, "spec", None) if backend.features is not None else None
    return spec is not None and spec.normalize is not None


def forward_stream_normalized(backend, windows: list[tuple[FeatureStats, int, int]], audio, lengths):
    """Run chunk windows normalized with their streams' running statistics.

    Args:
        backend: an :class:`speechtao.serve.backends.AcousticBackend` with a feature front end.
        windows: per batch row, (the stream's stats, the window's first absolute sample, the utterance's first
            absolute sample: frames before it are forgotten).
        audio: (B, T) float32 windows, padded; lengths: (B,) samples.
    Returns:
        log_probs (B, T', V+1), out_lengths (B,).
    """
    spec = backend.features.spec
    raw, flen = backend.features.raw(audio, lengths)  # (B, C, F), (B,)
    pad_to, pad_value = getattr(spec, "pad_to", 0), getattr(spec, "pad_value", 0.0)  # Whisper: none, 0
    width = raw.shape[2] if not pad_to else -(-raw.shape[2] // pad_to) * pad_to
    feats = np.full((len(windows), raw.shape[1], max(width, 1)), pad_value, np.float32)  # (B, C, F')
    for i, (stats, start, utt_start) in enumerate(windows):
        n = int(flen[i])
        x = raw[i, :, :n].astype(np.float64)  # (C, n)
        stats.add(start, x, backend.hop_length)
        stats.drop_before(utt_start)
        if spec.normalize == "whisper":
            from ..asr.whisper import whisper_normalize

            if n:
                feats[i, :, :n] = whisper_normalize(x, stats.peak(x) - spec.dynamic_range)
            continue
        mean, std = stats.mean_std(x, spec.normalize)
        feats[i, :, :n] = (x - mean) / std
    return backend.run_features(feats, flen)
