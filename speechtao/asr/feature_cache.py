"""Cached log-mel features for training (``data.cache_features: true``).

The model's own preprocessor (``model.preprocessor`` in eval mode, i.e. without dither) turns every training
utterance into its features once, before the first step; batches then carry features, not audio, and the model
starts at SpecAugment (:meth:`speechtao.asr.models.CTCModelBase.forward` takes a 3-D input as features). Per-utterance
features equal the rows of a batch computed on the fly (normalization is per utterance over its own frames; a batch
pads with ``pad_value`` to the frame count the on-the-fly path gives, rounded to ``pad_to``), so the network sees
the same input; the tests check both to 1e-6.

What changes: no dither (1e-5 white noise on the waveform each step), and it rules out what works on the waveform
every step (``data.augment``, narrow-band augmentation, distillation, which read the audio). SpecAugment still
draws new masks every step. Memory: ``n_mels`` float32 values per 10 ms frame, 25.6 kB per audio second at 64 mels
(92 MB an hour), held in the training process (forked loader workers share it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch.utils.data import Dataset

from ..errors import SpecError
from .data import AudioTextDataset


def check_cacheable(augment_enabled: bool, distill_enabled: bool, preprocessor: Any) -> None:
    """Raise :class:`SpecError` where cached features would drop what the spec asks for."""
    if augment_enabled:
        raise SpecError(
            "data.cache_features: waveform augmentation (data.augment) changes the audio every epoch, so its "
            "features cannot be cached (set data.augment.enabled: false, or data.cache_features: false)"
        )
    if distill_enabled:
        raise SpecError(
            "data.cache_features: distillation reads the audio of each batch (set data.cache_features: false)"
        )
    spec = getattr(preprocessor, "spec", None)
    if spec is None or not hasattr(preprocessor, "feature_lengths"):
        raise SpecError(
            f"data.cache_features: this model's preprocessor ({type(preprocessor).__name__}) is not a log-mel "
            "AudioToMelSpectrogram (set data.cache_features: false)"
        )
    if getattr(spec, "nb_augmentation_prob", 0.0) > 0:
        raise SpecError(
            "data.cache_features: narrow-band augmentation (preprocessor nb_augmentation_prob "
            f"{spec.nb_augmentation_prob}) draws per step (set it to 0 or data.cache_features: false)"
        )


def stft_frames(preprocessor: Any, samples: int) -> int:
    """Frames the preprocessor's STFT gives for ``samples`` samples, before the ``pad_to`` rounding."""
    f = preprocessor.featurizer
    if f.spec.exact_pad:
        return (samples + 2 * f.stft_pad - f.n_fft) // f.hop_length + 1
    return samples // f.hop_length + 1


class CachedFeatureDataset(Dataset):
    """``base``'s utterances as ``(feats float32 (n_mels, frames), samples, token ids)``, computed once."""

    def __init__(self, base: AudioTextDataset, preprocessor: Any, progress: Any = None):
        self.base = base
        self.entries = base.entries
        self.sample_rate = base.sample_rate
        self.tokens = base.tokens
        self.augmenter = None
        self.pad_to = int(preprocessor.spec.pad_to)
        self.pad_value = float(preprocessor.spec.pad_value)
        self._frames_of = lambda n: stft_frames(preprocessor, n)
        was_training = preprocessor.training
        preprocessor.eval()  # no dither
        self.feats: list[torch.Tensor] = []
        self.samples: list[int] = []
        try:
            with torch.no_grad():
                for i in range(len(base)):
                    audio = torch.from_numpy(base.audio(i)).float()[None]
                    n = torch.tensor([audio.shape[1]])
                    feats, lengths = preprocessor(audio, n)
                    self.feats.append(feats[0, :, : int(lengths[0])].clone())
                    self.samples.append(int(audio.shape[1]))
                    if progress is not None:
                        progress(i + 1, len(base))
        finally:
            preprocessor.train(was_training)

    @property
    def durations(self) -> list[float]:
        return self.base.durations

    def set_epoch(self, epoch: int) -> None:
        self.base.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.feats)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, list[int]]:
        return self.feats[index], self.samples[index], self.tokens[index]

    def collate_fn(self, batch: Sequence[tuple[torch.Tensor, int, list[int]]]) -> tuple[torch.Tensor, ...]:
        """``(feats (B, n_mels, F), feat_lengths (B,), tokens (B, U), token_lengths (B,), audio_lengths (B,))``;
        F is what the on-the-fly path gives for the batch's longest audio, rounded up to ``pad_to``."""
        n = len(batch)
        frames = self._frames_of(max(s for _, s, _ in batch))
        if self.pad_to > 0 and frames % self.pad_to:
            frames += self.pad_to - frames % self.pad_to
        feats = torch.full((n, batch[0][0].shape[0], frames), self.pad_value, dtype=torch.float32)
        feat_lengths = torch.tensor([f.shape[1] for f, _, _ in batch], dtype=torch.int64)
        token_lengths = torch.tensor([len(t) for _, _, t in batch], dtype=torch.int64)
        tokens = torch.zeros(n, max(int(token_lengths.max()), 1), dtype=torch.int64)
        for i, (f, _, t) in enumerate(batch):
            feats[i, :, : f.shape[1]] = f
            tokens[i, : len(t)] = torch.tensor(t, dtype=torch.int64)
        audio_lengths = torch.tensor([s for _, s, _ in batch], dtype=torch.int64)
        return feats, feat_lengths, tokens, token_lengths, audio_lengths
