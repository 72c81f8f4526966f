"""ASR data: duration-bucketed batches (determinism, resume skip-ahead, DDP shards), collate, the dataset."""

import numpy as np
import pytest
import soundfile as sf
import torch

from speechtao.asr.data import AudioTextDataset, DurationBucketSampler, collate, make_loader
from speechtao.augment import AugmentSpec, WaveAugmenter
from speechtao.data.manifest import ManifestEntry
from speechtao.errors import DataError
from speechtao.text.tokenizers import CharTokenizer

DURATIONS = np.random.default_rng(1).uniform(0.5, 15.0, 203).round(2).tolist()


def test_sampler_is_deterministic_per_epoch_and_covers_every_item_once():
    s = DurationBucketSampler(DURATIONS, batch_size=8, seed=5, bucket_batches=4)
    e0, e0_again, e1 = (
        s.batches(0),
        DurationBucketSampler(DURATIONS, batch_size=8, seed=5, bucket_batches=4).batches(0),
        s.batches(1),
    )
    assert e0 == e0_again and e0 != e1
    for batches in (e0, e1):
        flat = sorted(i for b in batches for i in b)
        assert flat == list(range(len(DURATIONS)))
        assert sum(len(b) < 8 for b in batches) <= 7  # one short batch per bucket at most (7 buckets of 32)


def test_buckets_give_batches_of_similar_duration():
    s = DurationBucketSampler(DURATIONS, batch_size=8, seed=0, bucket_batches=10)
    spread = np.mean([np.ptp([DURATIONS[i] for i in b]) for b in s.batches(0) if len(b) > 1])
    g = np.random.default_rng(0)
    random_spread = np.mean([np.ptp(g.choice(DURATIONS, 8, replace=False)) for _ in range(100)])
    assert spread < 0.25 * random_spread


def test_max_seconds_batches_respect_the_budget():
    s = DurationBucketSampler(DURATIONS, max_seconds=40.0, seed=0)
    batches = s.batches(0)
    assert sorted(i for b in batches for i in b) == list(range(len(DURATIONS)))
    assert all(sum(DURATIONS[i] for i in b) <= 40.0 or len(b) == 1 for b in batches)
    assert np.mean([len(b) for b in batches]) > 3


def test_resume_skips_ahead_to_the_same_batches():
    s = DurationBucketSampler(DURATIONS, batch_size=8, seed=3)
    s.set_epoch(2)
    full = list(s)
    s.set_epoch(2, start_index=11)
    assert list(s) == full[11:] and len(s) == len(full) - 11


def test_ddp_shards_split_each_global_batch():
    one = DurationBucketSampler(DURATIONS, batch_size=8, seed=4)
    ranks = [DurationBucketSampler(DURATIONS, batch_size=4, seed=4, world_size=2, rank=r) for r in (0, 1)]
    b0, b1 = ranks[0].batches(0), ranks[1].batches(0)
    assert len(b0) == len(b1) == len(one.batches(0))
    for whole, x, y in zip(one.batches(0), b0, b1):
        assert sorted(x + y) == sorted(whole) or len(whole) < 2  # rank shards of the 1-process batch
        assert abs(len(x) - len(y)) <= 1


def test_tiny_batch_is_repeated_so_every_rank_gets_items():
    ranks = [DurationBucketSampler([1.0, 2.0, 3.0], batch_size=2, seed=0, world_size=2, rank=r) for r in (0, 1)]
    assert all(len(b) >= 1 for r in ranks for b in r.batches(0))
    assert len(ranks[0].batches(0)) == len(ranks[1].batches(0)) == 1


def test_sampler_argument_errors():
    with pytest.raises(ValueError, match="exactly one"):
        DurationBucketSampler(DURATIONS, batch_size=4, max_seconds=10)
    with pytest.raises(DataError, match="no utterances"):
        DurationBucketSampler([], batch_size=4)


def test_collate_pads_audio_and_tokens():
    audio, al, tokens, tl = collate([(np.ones(5, np.float32), [1, 2]), (np.full(3, 2, np.float32), [3, 4, 5])])
    assert audio.shape == (2, 5) and audio.dtype == torch.float32 and al.tolist() == [5, 3] and tl.tolist() == [2, 3]
    assert audio[1].tolist() == [2, 2, 2, 0, 0] and tokens.tolist() == [[1, 2, 0], [3, 4, 5]]


@pytest.fixture
def entries(tmp_path):
    out = []
    for i, text in enumerate(["Turn left.", "Open 2 doors!", "stop"]):
        n = 8000 + 1600 * i
        x = 0.3 * np.sin(2 * np.pi * 220 * np.arange(n) / 16000).astype(np.float32)
        sf.write(tmp_path / f"{i}.wav", x, 16000)
        out.append(ManifestEntry(str(tmp_path / f"{i}.wav"), n / 16000, text, line=i + 1, source="train.jsonl"))
    return out


def test_dataset_labels_are_normalized_and_augmentation_is_seeded_per_item(entries):
    tok = CharTokenizer()
    aug = WaveAugmenter(AugmentSpec(gain_prob=1.0, noise_prob=1.0))
    ds = AudioTextDataset(entries, tok, 16000, augmenter=aug, seed=9)
    assert tok.decode(ds[1][1]) == "open two doors"
    first = ds[0][0]
    assert len(first) == 8000 and np.array_equal(first, ds[0][0])  # same (seed, epoch, index): same draw
    ds.set_epoch(1)
    assert not np.array_equal(first, ds[0][0])
    loader = make_loader(ds, DurationBucketSampler(ds.durations, batch_size=2, seed=0), epoch=0)
    batches = list(loader)
    assert sum(len(b[1]) for b in batches) == 3 and batches[0][0].dtype == torch.float32


def test_untokenizable_transcript_names_the_line(entries):
    with pytest.raises(DataError, match=r"train.jsonl:2: transcript 'Open 2 doors!' cannot be tokenized"):
        AudioTextDataset(entries, CharTokenizer(list("abcdefghijklmnopqrstuvxyz' ")), 16000)  # no 'w'
