"""Train the upper part of a Whisper-encoder CTC model on cached outputs of its frozen lower part.

A CTC starter that keeps what Whisper's encoder learned from real speech: the convolutions and the lowest
``frozen_below`` transformer layers stay as pretrained, so their output for an utterance never changes and is
computed once (per augmented copy) and cached as float16. Each training step then runs only the top layers,
the final LayerNorm and the CTC head: on a CPU about a third of the full encoder's cost per step, and none of
the log-mel and lower-encoder work::

    audio --(augment, copy c)--> log-mels --> convs + layers[:k] (frozen)  --> cache/<key>.npy   (once)
    cache --> layers[k:] + ln_post + CTC head (trained) --> CTC loss                                (each step)

Checkpoints are regular speechtao ASR checkpoints of a :class:`~speechtao.asr.whisper_ctc.WhisperCTCModel` with
``frozen_below = k``: they store only the trained part, and loading rebuilds the frozen part from the installed
pip package (``encoder_source``), so ``speechtao asr evaluate | infer | export`` and the server take them.

Cache keys hash the audio file, offset, duration, copy, augmentation, encoder source and ``k``: changing any
of them computes new entries, and a rerun reuses the finished ones.

Usage (``speechtao asr train-cached --spec recipes/asr_whisper_base_ctc.yaml``)::

    spec = load_spec(WhisperUpperSpec, "recipes/asr_whisper_base_ctc.yaml")
    metrics = run(spec)
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..augment import AugmentSpec, WaveAugmenter
from ..errors import CheckpointError, DataError, SpecError
from ..spec import spec_to_dict
from ..train.checkpoint import CheckpointManager
from ..train.loop import Trainer, TrainerSpec, seed_everything
from ..train.optim import OptimSpec
from ..train.schedule import ScheduleSpec
from .train import TokenizerSpec, _new_tokenizer, _read_entries

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class UpperModelSpec:
    encoder: str = "whisper_base"  # a speechtao.asr.whisper_ctc.PRETRAINED name
    frozen_below: int = 4  # convs + layers[:k] frozen and cached; layers[k:] train
    head_hidden: int = 512  # CTC head: conv k3 to this width + GELU + linear (0: linear only)
    dropout: float = 0.1  # residual dropout in the trained layers
    train_from: int | None = None  # first trained layer (>= frozen_below; None: frozen_below). Layers between run
    # on the cached outputs each step but keep Whisper's weights: fewer trained parameters on the same cache
    init_from: Path | None = None  # continue a checkpoint of this command (e.g. models/whisper_base_ctc_synth.pt)
    # on new data: its weights, vocabulary (tokenizer.kind: pretrained) and dropout; encoder, frozen_below and
    # head_hidden must match it

    def __post_init__(self):
        if self.train_from is not None and self.train_from < self.frozen_below:
            raise ValueError(f"train_from ({self.train_from}) must be >= frozen_below ({self.frozen_below}) or null")


@dataclass(frozen=True)
class CacheSpec:
    dir: Path  # where the lower-encoder outputs go (float16 .npy, one per utterance and copy)
    copies: int = 1  # augmented copies per training utterance, besides the clean one
    augment: AugmentSpec = AugmentSpec(
        speed_prob=0.4, reverb_prob=0.4, noise_prob=0.6, telephone_prob=0.15, gain_prob=0.5, noise_snr_db=(5.0, 30.0)
    )
    seed: int = 0  # augmentation draws come from (seed, cache key)

    def __post_init__(self):
        if self.copies < 0:
            raise ValueError(f"copies must be >= 0, got {self.copies}")


@dataclass(frozen=True)
class UpperDataSpec:
    train: list[Path]  # training manifest(s)
    validation: list[Path]  # validation manifest(s): picks best.pt
    batch_frames: int = 6000  # encoder frames (50 per second of audio) per batch, padding included
    min_duration: float = 0.3
    max_duration: float = 30.0  # Whisper's encoder has 1500 positions (30 s)

    def __post_init__(self):
        if not self.train or not self.validation:
            raise ValueError("data.train and data.validation need at least one manifest each")
        if self.batch_frames < 100:
            raise ValueError(f"batch_frames must be >= 100, got {self.batch_frames}")
        if not 0 < self.min_duration < self.max_duration <= 30.0:
            raise ValueError(
                f"need 0 < min_duration < max_duration <= 30, got {self.min_duration}, {self.max_duration}"
            )


@dataclass(frozen=True)
class WhisperUpperSpec:
    """``speechtao asr train-cached``: a CTC starter on a mostly frozen Whisper encoder."""

    data: UpperDataSpec
    cache: CacheSpec
    optim: OptimSpec
    trainer: TrainerSpec
    model: UpperModelSpec = UpperModelSpec()
    tokenizer: TokenizerSpec = TokenizerSpec()
    schedule: ScheduleSpec = ScheduleSpec()

    def __post_init__(self):
        if self.model.init_from is None and self.tokenizer.kind == "pretrained":
            raise ValueError(
                "tokenizer.kind: choose char or sentencepiece (the CTC head is new without model.init_from)"
            )
        if self.model.init_from is not None and self.tokenizer.kind != "pretrained":
            raise ValueError(
                f"model.init_from {self.model.init_from} keeps its own vocabulary: set tokenizer.kind=pretrained "
                "(a new vocabulary needs a new head: leave model.init_from out)"
            )


# ---------------------------------------------------------------------------------------------- the cache


def cache_key(entry: Any, copy: int, cache: CacheSpec, model_spec: UpperModelSpec) -> str:
    """A hex digest of everything that decides a cached array (see the module docstring)."""
    what = {
        "audio": str(Path(entry.audio_filepath).resolve()),
        "offset": float(entry.offset),
        "duration": float(entry.duration),
        "copy": copy,
        "augment": spec_to_dict(cache.augment) if copy else None,
        "seed": cache.seed if copy else None,
        "encoder": model_spec.encoder,
        "frozen_below": model_spec.frozen_below,
    }
    return hashlib.sha1(json.dumps(what, sort_keys=True).encode()).hexdigest()[:20]


def _path(root: Path, key: str) -> Path:
    return root / key[:2] / f"{key}.npy"


@torch.no_grad()
def build_cache(
    model,
    entries: Sequence[Any],
    copies: int,
    cache: CacheSpec,
    model_spec: UpperModelSpec,
    progress: Callable[[int, int], None] | None = None,
) -> list[tuple[Path, int]]:
    """Compute (or reuse) the lower-encoder output of every entry and copy 0..``copies``; returns
    ``[(path, entry index)]`` in order. Copy 0 is the clean audio; copies >= 1 go through ``cache.augment``."""
    from ..audio import read_audio

    root = Path(cache.dir)
    augmenter = WaveAugmenter(cache.augment) if copies else None
    sr = model.config.preprocessor.sample_rate
    k = model_spec.frozen_below
    was_training = model.training
    model.eval()
    out: list[tuple[Path, int]] = []
    total = len(entries) * (1 + copies)
    done = 0
    for i, e in enumerate(entries):
        audio = None
        for c in range(1 + copies):
            key = cache_key(e, c, cache, model_spec)
            path = _path(root, key)
            out.append((path, i))
            done += 1
            if path.is_file():
                continue
            if audio is None:
                audio = read_audio(e.audio_filepath, sr, offset=e.offset, duration=e.duration if e.segment else None)
            x = audio
            if c:
                x = augmenter(audio, sr, np.random.default_rng([cache.seed, int(key, 16) % (1 << 63)]))
            wav = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))[None]
            feats, feat_lengths = model.preprocessor(wav, torch.tensor([wav.shape[1]]))
            hidden, _ = model.encoder.forward_lower(feats, feat_lengths, k)  # (1, T', D)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.stem}.tmp.npy")
            np.save(tmp, hidden[0].numpy().astype(np.float16))
            tmp.replace(path)
            if progress is not None:
                progress(done, total)
    model.train(was_training)
    return out


class CachedSet:
    """Cached lower-encoder outputs with their token ids, in memory (float16)."""

    def __init__(self, items: list[tuple[Path, int]], entries: Sequence[Any], tokenizer):
        from ..text.normalize import normalize_text

        self.hidden: list[torch.Tensor] = []
        self.tokens: list[list[int]] = []
        self.texts: list[str] = []
        for path, i in items:
            e = entries[i]
            ids = tokenizer.encode(normalize_text(e.text))
            if not ids:
                raise DataError(f"{e.source}:{e.line}: transcript {e.text!r} is empty after normalization")
            self.hidden.append(torch.from_numpy(np.load(path)))
            self.tokens.append(ids)
            self.texts.append(e.text)
        self.frames = [h.shape[0] for h in self.hidden]

    def __len__(self) -> int:
        return len(self.hidden)

    def batches(self, batch_frames: int, seed: int | None, epoch: int = 0) -> list[list[int]]:
        """Index batches of similar length holding at most ``batch_frames`` padded frames; shuffled for
        ``seed`` (None: in length order)."""
        rng = np.random.default_rng([seed, epoch]) if seed is not None else None
        order = np.argsort(np.array(self.frames) + (rng.random(len(self)) * 20 if rng is not None else 0))
        batches, cur, longest = [], [], 0
        for i in order.tolist():
            longest2 = max(longest, self.frames[i])
            if cur and longest2 * (len(cur) + 1) > batch_frames:
                batches.append(cur)
                cur, longest2 = [], self.frames[i]
            cur.append(i)
            longest = longest2
        if cur:
            batches.append(cur)
        if rng is not None:
            batches = [batches[j] for j in rng.permutation(len(batches))]
        return batches

    def collate(self, idx: list[int]) -> tuple[torch.Tensor, ...]:
        """-> (hidden (B, T', D) float32, lengths (B,), tokens (B, U), token_lengths (B,))."""
        T = max(self.frames[i] for i in idx)
        U = max(len(self.tokens[i]) for i in idx)
        D = self.hidden[idx[0]].shape[1]
        x = torch.zeros(len(idx), T, D)
        tok = torch.zeros(len(idx), U, dtype=torch.long)
        for b, i in enumerate(idx):
            x[b, : self.frames[i]] = self.hidden[i].float()
            tok[b, : len(self.tokens[i])] = torch.tensor(self.tokens[i])
        lengths = torch.tensor([self.frames[i] for i in idx])
        return x, lengths, tok, torch.tensor([len(self.tokens[i]) for i in idx])


# ------------------------------------------------------------------------------------------------ the task


class UpperTask:
    """CTC training of ``layers[k:]`` + ``ln_post`` + head on a :class:`CachedSet` (a
    :class:`~speechtao.train.loop.TrainTask`)."""

    def __init__(self, model, tokenizer, train_set: CachedSet, val_set: CachedSet, spec: WhisperUpperSpec):
        self.model = model
        self.tokenizer = tokenizer
        self.train_set = train_set
        self.val_set = val_set
        self.spec = spec
        self.k = spec.model.frozen_below

    def num_batches(self, epoch: int) -> int:
        return len(self.train_set.batches(self.spec.data.batch_frames, self.spec.trainer.seed, epoch))

    def param_groups(self, lr: float) -> list[dict]:
        return [{"params": [p for p in self.model.parameters() if p.requires_grad], "lr": lr, "name": "upper"}]

    def train_batches(self, epoch: int, start_index: int):
        batches = self.train_set.batches(self.spec.data.batch_frames, self.spec.trainer.seed, epoch)
        return (self.train_set.collate(b) for b in batches[start_index:])

    def _log_probs(self, model, x, lengths):
        hidden = model.encoder.forward_upper(x, lengths, self.k)  # (B, T', D)
        return model.decoder(hidden.transpose(1, 2))  # (B, T', D) -> (B, D, T') -> (B, T', V+1)

    def loss(self, model, batch) -> torch.Tensor:
        from .models import ctc_loss

        x, lengths, tokens, token_lengths = batch
        return ctc_loss(self._log_probs(model, x, lengths), lengths, tokens, token_lengths, self.tokenizer.blank_id)

    def batch_stats(self, batch) -> dict[str, float]:
        return {"utterances": float(batch[1].numel()), "audio_s": float(batch[1].sum()) * 0.02}

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        from .ctc import decode_texts
        from .metrics import cer, wer
        from .models import ctc_loss

        was_training = self.model.training
        self.model.eval()
        refs, hyps, loss_sum = [], [], 0.0
        for idx in self.val_set.batches(self.spec.data.batch_frames, None):
            x, lengths, tokens, token_lengths = self.val_set.collate(idx)
            lp = self._log_probs(self.model, x, lengths)
            loss_sum += float(ctc_loss(lp, lengths, tokens, token_lengths, self.tokenizer.blank_id)) * len(idx)
            hyps += decode_texts(lp.float(), lengths, self.tokenizer)
            refs += [self.val_set.texts[i] for i in idx]
        self.model.train(was_training)
        return {"wer": wer(refs, hyps), "cer": cer(refs, hyps), "val_loss": loss_sum / len(self.val_set)}

    def payload(self) -> dict:
        from .checkpoint import model_payload

        return model_payload(self.model, self.tokenizer, self.spec, extra={"trained": "speechtao asr train-cached"})


def _filter(entries: list, spec: UpperDataSpec) -> list:
    return [e for e in entries if spec.min_duration <= e.duration <= spec.max_duration]


def _init_model(m: UpperModelSpec, say: Callable[[str], None]):
    """The model and tokenizer of ``m.init_from``, checked against ``m`` (the cache keys depend on them)."""
    from .checkpoint import load_model

    path = Path(m.init_from)
    if not path.is_file():
        raise CheckpointError(f"model.init_from: {path} is not a file (a checkpoint of `speechtao asr train-cached`)")
    loaded = load_model(path)
    cfg = loaded.config
    if getattr(cfg, "family", None) != "whisper" or cfg.frozen_below < 0:
        raise CheckpointError(
            f"model.init_from: {path} is not a partial Whisper-encoder CTC checkpoint (train-cached continues only "
            "its own checkpoints; fine-tune other models with `speechtao asr finetune`)"
        )
    got = {"encoder": cfg.encoder_source, "frozen_below": cfg.frozen_below, "head_hidden": cfg.head_hidden}
    want = {"encoder": m.encoder, "frozen_below": m.frozen_below, "head_hidden": m.head_hidden}
    if got != want:
        diff = ", ".join(f"model.{k}={got[k]}" for k in got if got[k] != want[k])
        raise SpecError(f"model.init_from {path} was built with {got}; the spec says {want}: set {diff}")
    model = loaded.model  # its own dropout (the saved encoder config's)
    say(f"init_from {path}: {loaded.tokenizer.vocab_size} tokens, layers {m.frozen_below}+ and head from the file")
    return model, loaded.tokenizer


def build(spec: WhisperUpperSpec, resume: bool = False, say: Callable[[str], None] = log.info) -> Trainer:
    """Cache what is missing, then the :class:`Trainer` of ``spec``."""
    from .checkpoint import load_model
    from .whisper_ctc import pretrained_model

    seed_everything(spec.trainer.seed)
    entries = _filter(_read_entries(spec.data.train), spec.data)
    val_entries = _filter(_read_entries(spec.data.validation), spec.data)
    if not entries or not val_entries:
        raise DataError(
            f"no utterances between {spec.data.min_duration} and {spec.data.max_duration} s in "
            f"{'data.train' if not entries else 'data.validation'}"
        )
    if resume:
        latest = CheckpointManager(Path(spec.trainer.out_dir) / "checkpoints").latest()
        if latest is None:
            raise CheckpointError(f"{spec.trainer.out_dir}/checkpoints: nothing to resume (run without --resume)")
        loaded = load_model(latest)
        model, tokenizer = loaded.model, loaded.tokenizer
    elif spec.model.init_from is not None:
        model, tokenizer = _init_model(spec.model, say)
    else:
        tokenizer = _new_tokenizer(spec.tokenizer, entries)
        m = spec.model
        model = pretrained_model(
            m.encoder, tokenizer.vocab_size, m.head_hidden, frozen_below=m.frozen_below, dropout=m.dropout
        )
    if model.config.frozen_below != spec.model.frozen_below:
        raise SpecError(f"model.frozen_below {spec.model.frozen_below} != the checkpoint's {model.config.frozen_below}")
    model.freeze_frozen_part()
    for layer in model.encoder.layers[spec.model.frozen_below : spec.model.train_from or 0]:
        for p in layer.parameters():
            p.requires_grad_(False)
    started = time.perf_counter()

    def progress(done: int, total: int) -> None:
        if done % 100 == 0 or done == total:
            rate = done / max(time.perf_counter() - started, 1e-9)
            say(f"cache {done}/{total} ({rate:.2f}/s)")

    train_items = build_cache(model, entries, spec.cache.copies, spec.cache, spec.model, progress)
    val_items = build_cache(model, val_entries, 0, spec.cache, spec.model, progress)
    train_set = CachedSet(train_items, entries, tokenizer)
    val_set = CachedSet(val_items, val_entries, tokenizer)
    trained = sum(p.numel() for p in model.parameters() if p.requires_grad)
    say(
        f"data: {len(entries)} utterances x {1 + spec.cache.copies} copies ({sum(train_set.frames) / 180000:.2f} h), "
        f"{len(val_set)} validation; {tokenizer.vocab_size} tokens; {trained:,} trained parameters"
    )
    task = UpperTask(model, tokenizer, train_set, val_set, spec)
    return Trainer(task, spec.trainer, spec.optim, spec.schedule, full_spec=spec, log=say)


def run(spec: WhisperUpperSpec, resume: bool = False, say: Callable[[str], None] = log.info) -> dict:
    """Cache, train, return metrics.json's dict (``wall_s`` added)."""
    start = time.perf_counter()
    metrics = build(spec, resume, say).fit(resume=resume)
    metrics["wall_s"] = round(time.perf_counter() - start, 3)
    return metrics


__all__ = ["WhisperUpperSpec", "UpperModelSpec", "CacheSpec", "UpperDataSpec", "build_cache", "CachedSet", "run"]
