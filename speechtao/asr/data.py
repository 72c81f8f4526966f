"""ASR training data: manifest entries -> (audio, token ids) items -> padded batches of similar duration.

- :class:`AudioTextDataset` reads each utterance with :func:`speechtao.audio.read_audio`, labels it with
  ``tokenizer.encode(normalize_text(text))`` and, when given a :class:`speechtao.augment.WaveAugmenter`,
  augments it with a generator seeded by (seed, epoch, index): the same draws whatever the worker, the
  order or a resume.
- :func:`collate` pads a list of items into ``(audio (B, T), audio_lengths (B,), tokens (B, U), token_lengths (B,))``.
- :class:`DurationBucketSampler` yields index batches of similar duration, deterministic for (seed, epoch),
  sharded over DDP ranks, and able to start at any batch of an epoch (resume).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ..audio import read_audio
from ..errors import DataError, InputError
from ..text.normalize import normalize_text


class AudioTextDataset(Dataset):
    """Manifest entries as ``(audio float32 (T,), token ids list[int])`` items.

    Transcripts are normalized and tokenized up front, so a transcript the tokenizer cannot spell fails at
    construction with its manifest line, not in the middle of an epoch. ``tokenizer=None``: unlabelled audio
    (transcripts unused, every item's token list empty), e.g. distillation's extra batches.
    """

    def __init__(
        self,
        entries: Sequence[Any],
        tokenizer: Any,
        sample_rate: int = 16000,
        augmenter: Any = None,
        seed: int = 0,
        cache_audio: bool = False,
    ):
        self.entries = list(entries)
        self.sample_rate = sample_rate
        self.augmenter = augmenter
        self.seed = seed
        self.epoch = 0
        self.tokens: list[list[int]] = []
        for e in self.entries if tokenizer is not None else ():
            where = f"{e.source}:{e.line}" if e.source else e.audio_filepath
            text = normalize_text(e.text)
            try:
                ids = tokenizer.encode(text)
            except InputError as exc:
                raise DataError(f"{where}: transcript {e.text!r} cannot be tokenized: {exc}") from None
            if not ids:
                raise DataError(
                    f"{where}: transcript {e.text!r} is empty after normalization "
                    "(drop the line or give it a transcript)"
                )
            self.tokens.append(ids)
        if tokenizer is None:
            self.tokens = [[] for _ in self.entries]
        self._cache: dict[int, np.ndarray] | None = {} if cache_audio else None

    @property
    def durations(self) -> list[float]:
        return [float(e.duration) for e in self.entries]

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.entries)

    def audio(self, index: int) -> np.ndarray:
        if self._cache is not None and index in self._cache:
            return self._cache[index]
        e = self.entries[index]
        x = read_audio(e.audio_filepath, self.sample_rate, e.offset, e.duration if e.segment else None)
        if self._cache is not None:
            self._cache[index] = x
        return x

    def __getitem__(self, index: int) -> tuple[np.ndarray, list[int]]:
        x = self.audio(index)
        if self.augmenter is not None:
            rng = np.random.default_rng([self.seed, self.epoch, index])
            x = self.augmenter(x, self.sample_rate, rng)
        return x, self.tokens[index]


def collate(batch: Sequence[tuple[np.ndarray, list[int]]]) -> tuple[torch.Tensor, ...]:
    """Pad items into ``audio (B, T) float32, audio_lengths (B,) int64, tokens (B, U) int64, token_lengths (B,)``.

    Padding is zeros in both (CTC reads tokens only up to each length).
    """
    n = len(batch)
    audio_lengths = torch.tensor([len(x) for x, _ in batch], dtype=torch.int64)
    token_lengths = torch.tensor([len(t) for _, t in batch], dtype=torch.int64)
    audio = torch.zeros(n, int(audio_lengths.max()), dtype=torch.float32)
    tokens = torch.zeros(n, max(int(token_lengths.max()), 1), dtype=torch.int64)
    for i, (x, t) in enumerate(batch):
        audio[i, : len(x)] = torch.from_numpy(np.asarray(x, dtype=np.float32))
        tokens[i, : len(t)] = torch.tensor(t, dtype=torch.int64)
    return audio, audio_lengths, tokens, token_lengths


class DurationBucketSampler:
    """Batches of utterances of similar duration, for one rank of ``world_size``.

    Per epoch: shuffle all indices with a generator seeded by (seed, epoch); cut the order into buckets of
    ``bucket_batches`` global batches; sort each bucket by duration; cut it into global batches of
    ``batch_size * world_size`` utterances, or of at most ``max_seconds * world_size`` seconds of audio;
    shuffle the batches. Rank ``r`` takes items ``r, r + world_size, ...`` of each global batch sorted by
    duration (a batch too small to give every rank an item repeats its items). ``shuffle=False`` sorts the
    whole set by duration instead (validation).

    ``set_epoch(epoch, start_index)`` picks the epoch and the first batch to yield (resume skip-ahead).
    """

    def __init__(
        self,
        durations: Sequence[float],
        batch_size: int | None = None,
        max_seconds: float | None = None,
        shuffle: bool = True,
        seed: int = 0,
        bucket_batches: int = 50,
        world_size: int = 1,
        rank: int = 0,
        drop_last: bool = False,
    ):
        if (batch_size is None) == (max_seconds is None):
            raise ValueError("give exactly one of batch_size (utterances) or max_seconds (audio per batch)")
        if batch_size is not None and batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if max_seconds is not None and max_seconds <= 0:
            raise ValueError(f"max_seconds must be > 0, got {max_seconds}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside world_size {world_size}")
        if len(durations) == 0:
            raise DataError("no utterances to batch (the manifest is empty after filtering)")
        self.durations = np.asarray(durations, dtype=np.float64)
        self.batch_size, self.max_seconds = batch_size, max_seconds
        self.shuffle, self.seed, self.bucket_batches = shuffle, seed, max(1, bucket_batches)
        self.world_size, self.rank, self.drop_last = world_size, rank, drop_last
        self.epoch, self.start_index = 0, 0

    def set_epoch(self, epoch: int, start_index: int = 0) -> None:
        self.epoch, self.start_index = epoch, start_index

    def _cut(self, order: np.ndarray) -> list[list[int]]:
        """Consecutive global batches of ``order`` (already sorted by duration within a bucket)."""
        out: list[list[int]] = []
        if self.batch_size is not None:
            size = self.batch_size * self.world_size
            out = [order[i : i + size].tolist() for i in range(0, len(order), size)]
            if self.drop_last and out and len(out[-1]) < size:
                out.pop()
            return out
        limit = self.max_seconds * self.world_size
        cur: list[int] = []
        total = 0.0
        for i in order.tolist():
            d = float(self.durations[i])
            if cur and total + d > limit:
                out.append(cur)
                cur, total = [], 0.0
            cur.append(i)
            total += d
        if cur and not self.drop_last:
            out.append(cur)
        return out

    def global_batches(self, epoch: int) -> list[list[int]]:
        """Every rank's batches of ``epoch`` together (before sharding)."""
        if not self.shuffle:
            order = np.argsort(self.durations, kind="stable")
            return self._cut(order)
        rng = np.random.default_rng([self.seed, epoch])
        order = rng.permutation(len(self.durations))
        per_batch = (
            self.batch_size * self.world_size
            if self.batch_size
            else max(1, int(self.max_seconds * self.world_size / max(float(self.durations.mean()), 1e-6)))
        )
        bucket = per_batch * self.bucket_batches
        batches: list[list[int]] = []
        for start in range(0, len(order), bucket):
            chunk = order[start : start + bucket]
            chunk = chunk[np.argsort(self.durations[chunk], kind="stable")]
            batches += self._cut(chunk)
        perm = rng.permutation(len(batches))
        return [batches[i] for i in perm]

    def batches(self, epoch: int) -> list[list[int]]:
        """This rank's batches of ``epoch``."""
        out = []
        for batch in self.global_batches(epoch):
            if self.world_size == 1:
                out.append(batch)
                continue
            batch = sorted(batch, key=lambda i: self.durations[i])
            if len(batch) < self.world_size:
                batch = [batch[i % len(batch)] for i in range(self.world_size)]
            out.append(batch[self.rank :: self.world_size])
        return out

    def __len__(self) -> int:
        return max(0, len(self.batches(self.epoch)) - self.start_index)

    def __iter__(self):
        yield from self.batches(self.epoch)[self.start_index :]


def training_set(entries: Sequence[Any], labels: Any, sample_rate: int, data_spec: Any, seed: int) -> AudioTextDataset:
    """The training :class:`AudioTextDataset` of ``entries`` with ``data_spec.augment`` (an
    :class:`speechtao.augment.AugmentSpec`) attached when enabled; babble noise mixes other training utterances
    (up to 20, spread over the set)."""
    from ..augment import WaveAugmenter

    train_set = AudioTextDataset(entries, labels, sample_rate, seed=seed)
    augment = data_spec.augment
    if augment.enabled:
        babble = None
        if augment.babble_prob > 0:
            step = max(1, len(train_set) // 20)
            babble = [train_set.audio(i) for i in range(0, len(train_set), step)][:20]
        train_set.augmenter = WaveAugmenter(augment, babble_sources=babble)
    return train_set


def training_sampler(
    durations: Sequence[float], data_spec: Any, seed: int, world_size: int = 1, rank: int = 0
) -> DurationBucketSampler:
    """The shuffled, duration-bucketed batch sampler of a training set (``data_spec``: batch_size,
    max_batch_seconds, bucket_batches)."""
    return DurationBucketSampler(
        durations,
        data_spec.batch_size,
        data_spec.max_batch_seconds,
        shuffle=True,
        seed=seed,
        bucket_batches=data_spec.bucket_batches,
        world_size=world_size,
        rank=rank,
    )


def make_loader(
    dataset: Any,
    sampler: DurationBucketSampler,
    epoch: int = 0,
    start_index: int = 0,
    num_workers: int = 0,
) -> DataLoader:
    """A DataLoader over ``sampler``'s batches of ``epoch`` from ``start_index`` on.

    Its own seeded generator keeps the global torch RNG untouched, so creating a loader mid-epoch (resume)
    draws nothing from the streams that dropout and SpecAugment use.
    """
    dataset.set_epoch(epoch)
    sampler.set_epoch(epoch, start_index)
    gen = torch.Generator()
    gen.manual_seed(int(sampler.seed) * 1000003 + epoch)
    return DataLoader(
        dataset,
        batch_sampler=sampler,
        collate_fn=getattr(dataset, "collate_fn", collate),  # a CachedFeatureDataset collates features
        num_workers=num_workers,
        generator=gen,
        persistent_workers=False,
    )
