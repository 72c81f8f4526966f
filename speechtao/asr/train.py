"""ASR training and fine-tuning: the specs, the task the shared :class:`speechtao.train.loop.Trainer` runs, and
the two entry points behind ``speechtao asr train`` and ``speechtao asr finetune``.

- ``train``: a model from ``model.preset`` (or a full ``model.config``) with random weights and a character
  or SentencePiece tokenizer (trained on the training transcripts).
- ``finetune``: a model from ``init_from`` (a speechtao checkpoint, a ``.nemo`` archive or a preset name);
  a different ``tokenizer`` replaces only the decoder; ``freeze_encoder`` trains the decoder plus the
  encoder's BatchNorm and squeeze-excitation parameters. ``distill.teacher`` adds a KL term towards a teacher's
  frame posteriors (retraining a pruned model from the unpruned one; :mod:`speechtao.asr.distill`); a sequence
  teacher (``whisper:...``) transcribes ``distill.manifest`` and its transcripts join the training data.

Both write ``<trainer.out_dir>/final.pt`` and ``best.pt`` (readable by :func:`speechtao.asr.checkpoint.load_model`),
``checkpoints/``, ``spec.yaml`` and ``metrics.json``. ``resume=True`` continues from the newest checkpoint.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from ..augment import AugmentSpec, SpecAugment, SpecAugmentSpec
from ..errors import CheckpointError, SpecError
from ..train import ddp
from ..train.checkpoint import CheckpointManager
from ..train.loop import Trainer, TrainerSpec, TrainTask, seed_everything
from ..train.optim import OptimSpec
from ..train.schedule import ScheduleSpec
from .data import AudioTextDataset, DurationBucketSampler, collate, make_loader, training_sampler, training_set
from .distill import DistillSpec, merge_batches
from .fftconv import set_fft_depthwise

VAL_CACHE_SECONDS = 1800.0  # validation audio up to this total stays in memory between validations


@dataclass(frozen=True)
class DataSpec:
    train: list[Path]  # training manifest(s), NeMo JSON lines
    validation: list[Path]  # validation manifest(s): WER picks best.pt
    batch_size: int | None = 16  # utterances per batch and process; null to batch by max_batch_seconds
    max_batch_seconds: float | None = None  # audio seconds per batch and process (needs batch_size: null)
    val_batch_size: int = 16
    min_duration: float | None = 0.1  # training utterances outside [min, max] seconds are dropped (reported)
    max_duration: float | None = 20.0
    bucket_batches: int = 50  # batches per duration-sorted bucket (larger: less padding, less randomness)
    num_workers: int = 0  # data-loading processes
    cache_features: bool = False  # log-mel features once per utterance (no dither; SpecAugment still per step)
    augment: AugmentSpec = AugmentSpec()  # waveform augmentation (all off by default)

    def __post_init__(self):
        if not self.train or not self.validation:
            raise ValueError("data.train and data.validation need at least one manifest each")
        if (self.batch_size is None) == (self.max_batch_seconds is None):
            raise ValueError("give data.batch_size or data.max_batch_seconds (set the other to null)")
        if self.batch_size is not None and self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.max_batch_seconds is not None and self.max_batch_seconds <= 0:
            raise ValueError(f"max_batch_seconds must be > 0, got {self.max_batch_seconds}")
        if self.val_batch_size < 1 or self.num_workers < 0 or self.bucket_batches < 1:
            raise ValueError("val_batch_size and bucket_batches must be >= 1, num_workers >= 0")


@dataclass(frozen=True)
class TokenizerSpec:
    kind: Literal["pretrained", "char", "sentencepiece"] = "char"  # pretrained: keep init_from's (finetune only)
    vocab_size: int = 128  # SentencePiece pieces (without the CTC blank)
    model_type: Literal["unigram", "bpe"] = "unigram"


@dataclass(frozen=True)
class ModelSpec:
    preset: str | None = None  # a name from speechtao.asr.models.PRESETS, e.g. quartznet_small
    config: dict | None = None  # or a full ASRModelConfig mapping (preprocessor, blocks, activation)

    def __post_init__(self):
        if (self.preset is None) == (self.config is None):
            raise ValueError("give model.preset or model.config (exactly one)")


@dataclass(frozen=True)
class ASRTrainSpec:
    """``speechtao asr train``: a model from scratch."""

    model: ModelSpec
    data: DataSpec
    optim: OptimSpec
    trainer: TrainerSpec
    tokenizer: TokenizerSpec = TokenizerSpec()
    schedule: ScheduleSpec = ScheduleSpec()
    spec_augment: SpecAugmentSpec = SpecAugmentSpec()  # masks on the features in training (off by default)
    fft_depthwise: bool = True  # long depthwise convs through the FFT on the CPU: same result, 2-3x cheaper


@dataclass(frozen=True)
class QATSpec:
    """Quantization-aware fine-tuning (:mod:`speechtao.export.qat`): every conv but the first and the last
    (which the INT8 export keeps float) sees INT8 fake-quantized inputs (per tensor, UINT8 asymmetric) and weights
    (per output channel) as ``speechtao asr export --format onnx-int8`` quantizes them. The learned input ranges
    are saved in the checkpoints (``extra["qat"]``) and replace the calibrated ones at export."""

    enabled: bool = False
    momentum: float = 0.01  # weight of each batch in the moving averages of the conv inputs' min and max

    def __post_init__(self):
        if not 0.0 < self.momentum <= 1.0:
            raise ValueError(f"momentum must be in (0, 1], got {self.momentum}")


@dataclass(frozen=True)
class ASRFinetuneSpec:
    """``speechtao asr finetune``: adapt a pretrained model."""

    init_from: str  # speechtao checkpoint, .nemo archive or preset name
    data: DataSpec
    optim: OptimSpec
    trainer: TrainerSpec
    tokenizer: TokenizerSpec = TokenizerSpec(kind="pretrained")  # another vocabulary replaces the decoder only
    freeze_encoder: bool = False  # train the decoder + encoder BatchNorm/SE only (very small data)
    layer_lr_decay: float = 1.0  # Whisper encoder: layer i of L trains at lr * decay**(L - i), convs lower still
    schedule: ScheduleSpec = ScheduleSpec()
    spec_augment: SpecAugmentSpec = SpecAugmentSpec()
    qat: QATSpec = QATSpec()  # qat.enabled=true: fine-tune with INT8 fake quantization
    fft_depthwise: bool = True  # long depthwise convs through the FFT on the CPU: same result, 2-3x cheaper
    distill: DistillSpec = DistillSpec()  # distill.teacher=CKPT: learn from the teacher's frame posteriors too

    def __post_init__(self):
        if not 0.0 < self.layer_lr_decay <= 1.0:
            raise ValueError(
                f"layer_lr_decay must be in (0, 1] (1: one rate for all layers), got {self.layer_lr_decay}"
            )


# ------------------------------------------------------------------------------------------------ the task


class ASRTask(TrainTask):
    """CTC training of an :class:`~speechtao.asr.models.EncDecCTCModel` for :class:`~speechtao.train.loop.Trainer`.

    Batches are ``(audio (B, T), audio_lengths (B,), tokens (B, U), token_lengths (B,))``; with ``distill.manifest``
    the audio has more rows than ``tokens``: the unlabelled ones, after the labelled (they count in the throughput).
    """

    def __init__(
        self,
        model,
        tokenizer,
        train_set: AudioTextDataset,
        sampler: DurationBucketSampler,
        val_set: AudioTextDataset,
        val_batch_size: int,
        spec: Any,
        num_workers: int = 0,
        distiller: Any = None,
    ):
        self.model = model
        self.tokenizer = tokenizer
        self.train_set = train_set
        self.sampler = sampler
        self.val_set = val_set
        self.val_batch_size = val_batch_size
        self.spec = spec
        self.num_workers = num_workers
        self.sample_rate = train_set.sample_rate
        self.distiller = distiller  # a speechtao.asr.distill.Distiller, or None

    def num_batches(self, epoch: int) -> int:
        return len(self.sampler.batches(epoch))

    def param_groups(self, lr: float) -> list[dict] | None:
        """Layer-wise learning rates (``layer_lr_decay`` < 1, models with ``parameter_groups``), else None."""
        decay = getattr(self.spec, "layer_lr_decay", 1.0)
        if decay == 1.0:
            return None
        if not hasattr(self.model, "parameter_groups"):
            raise SpecError(
                f"layer_lr_decay {decay}: only Whisper-encoder models have layer-wise learning rates "
                "(set layer_lr_decay: 1.0 for this model)"
            )
        groups = self.model.parameter_groups(lr, decay)
        return [{**g, "lr_scale": g["lr"] / lr} for g in groups]

    def train_batches(self, epoch: int, start_index: int):
        labelled = iter(make_loader(self.train_set, self.sampler, epoch, start_index, self.num_workers))
        if self.distiller is None or self.distiller.extra is None:
            return labelled
        # the extra stream's batch g goes with the run's labelled batch g: its position follows from (epoch, index)
        position = sum(self.num_batches(e) for e in range(epoch)) + start_index
        return map(merge_batches, labelled, self.distiller.extra_batches(position))

    def loss(self, model, batch) -> torch.Tensor:
        from .models import ctc_loss

        if self.distiller is not None:
            return self.distiller.loss(model, self.model, batch, self.tokenizer.blank_id)
        audio, audio_lengths, tokens, token_lengths = batch[:4]  # or cached features and their frame lengths
        log_probs, out_lengths = model(audio, audio_lengths)
        return ctc_loss(log_probs, out_lengths, tokens, token_lengths, blank=self.tokenizer.blank_id)

    def batch_stats(self, batch) -> dict[str, float]:
        samples = batch[-1] if len(batch) == 5 else batch[1]  # cached features: audio lengths come last
        return {"utterances": float(samples.numel()), "audio_s": float(samples.sum()) / self.sample_rate}

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Greedy WER/CER (normalized text on both sides) and mean CTC loss on the validation set."""
        from .ctc import decode_texts
        from .metrics import cer, wer
        from .models import ctc_loss

        was_training = self.model.training
        self.model.eval()
        device = next(self.model.parameters()).device
        sampler = DurationBucketSampler(self.val_set.durations, batch_size=self.val_batch_size, shuffle=False)
        refs, hyps, loss_sum = [], [], 0.0
        for idx in sampler:
            audio, audio_lengths, tokens, token_lengths = (
                t.to(device) for t in collate([self.val_set[i] for i in idx])
            )
            log_probs, out_lengths = self.model(audio, audio_lengths)
            loss_sum += float(ctc_loss(log_probs, out_lengths, tokens, token_lengths, self.tokenizer.blank_id)) * len(
                idx
            )
            hyps += decode_texts(log_probs.float().cpu(), out_lengths.cpu(), self.tokenizer)
            refs += [self.val_set.entries[i].text for i in idx]
        self.model.train(was_training)
        return {"wer": wer(refs, hyps), "cer": cer(refs, hyps), "val_loss": loss_sum / len(self.val_set)}

    def payload(self) -> dict:
        from .checkpoint import model_payload

        return model_payload(self.model, self.tokenizer, self.spec)


# --------------------------------------------------------------------------------------------- building


def _read_entries(paths: list[Path]) -> list:
    from ..data.manifest import read_manifest

    entries = []
    for p in paths:
        entries += read_manifest(p)
    return entries


def _new_tokenizer(spec: TokenizerSpec, train_entries: list):
    from ..text.normalize import normalize_text
    from ..text.tokenizers import CharTokenizer, SentencePieceTokenizer

    if spec.kind == "char":
        return CharTokenizer()
    if spec.kind == "sentencepiece":
        return SentencePieceTokenizer.train(
            [normalize_text(e.text) for e in train_entries], spec.vocab_size, model_type=spec.model_type
        )
    raise SpecError(
        "tokenizer.kind: 'pretrained' needs a pretrained model (use `speechtao asr finetune` with "
        "init_from), choose char or sentencepiece"
    )


def _model_config(spec: ModelSpec):
    from .models import PRESETS, ASRModelConfig

    if spec.preset is not None:
        if spec.preset not in PRESETS:
            raise SpecError(f"model.preset: unknown preset {spec.preset!r} (choose one of {', '.join(PRESETS)})")
        return PRESETS[spec.preset]
    try:
        return ASRModelConfig.from_dict(spec.config)
    except SpecError as exc:
        raise SpecError(f"model.config.{exc}") from None


def build(
    spec: ASRTrainSpec | ASRFinetuneSpec, resume: bool = False, ctx: ddp.DistContext | None = None, log=print
) -> Trainer:
    """The :class:`Trainer` for ``spec`` (reads manifests, builds or loads the model and tokenizer)."""
    from ..data.manifest import filter_by_duration
    from .checkpoint import load_model

    ctx = ctx or ddp.DistContext()
    say = log if ctx.is_main else (lambda line: None)
    seed_everything(spec.trainer.seed)
    finetune = isinstance(spec, ASRFinetuneSpec)
    entries = _read_entries(spec.data.train)
    if finetune and spec.distill.sequence:  # sequence-level distillation: the teacher's transcripts are targets
        from .distill import teacher_labels

        entries += teacher_labels(spec.distill, spec.trainer.out_dir, torch.get_num_threads(), say)
    entries, report = filter_by_duration(entries, spec.data.min_duration, spec.data.max_duration)
    if report:
        say(f"train: {report}")
    val_entries = _read_entries(spec.data.validation)

    latest = loaded = None
    if resume:
        latest = CheckpointManager(Path(spec.trainer.out_dir) / "checkpoints").latest()
        if latest is None:
            raise CheckpointError(
                f"{Path(spec.trainer.out_dir) / 'checkpoints'}: no checkpoint to resume from "
                "(run without --resume to start training)"
            )
    if latest is not None:
        loaded = load_model(latest)  # resume: architecture, vocabulary and weights of the run itself
        model, tokenizer = loaded.model, loaded.tokenizer
    elif finetune:
        loaded = load_model(spec.init_from)
        model, tokenizer = loaded.model, loaded.tokenizer
        say(f"init_from {spec.init_from}: {loaded.config.family} model, {tokenizer.vocab_size} tokens")
        if spec.tokenizer.kind != "pretrained":
            new = _new_tokenizer(spec.tokenizer, entries)
            if new != tokenizer:
                model.change_vocabulary(new.vocab_size)
                say(
                    f"vocabulary changed ({tokenizer.vocab_size} -> {new.vocab_size} tokens): new decoder, "
                    "encoder weights kept"
                )
                tokenizer = new
    else:
        tokenizer = _new_tokenizer(spec.tokenizer, entries)
        model = _build_model(_model_config(spec.model), tokenizer.vocab_size)
    if finetune and spec.freeze_encoder:
        model.freeze_encoder(keep_bn_and_se_trainable=True)
    if spec.spec_augment.enabled:
        model.spec_augmentation = SpecAugment(spec.spec_augment)
    set_fft_depthwise(model, spec.fft_depthwise)
    model.train()

    sr = model.config.preprocessor.sample_rate
    train_set = training_set(entries, tokenizer, sr, spec.data, spec.trainer.seed)
    if spec.data.cache_features:
        from .feature_cache import CachedFeatureDataset, check_cacheable

        distilling = finetune and spec.distill.enabled and not spec.distill.sequence
        check_cacheable(spec.data.augment.enabled, distilling, model.preprocessor)
        start = time.perf_counter()
        train_set = CachedFeatureDataset(train_set, model.preprocessor)
        say(f"data.cache_features: {len(train_set)} utterances' features in {time.perf_counter() - start:.1f} s")
    sampler = training_sampler(train_set.durations, spec.data, spec.trainer.seed, ctx.world_size, ctx.rank)
    val_seconds = sum(e.duration for e in val_entries)
    val_set = AudioTextDataset(val_entries, tokenizer, sr, cache_audio=val_seconds <= VAL_CACHE_SECONDS)
    say(
        f"data: {len(train_set)} training utterances ({sum(train_set.durations) / 3600:.2f} h), "
        f"{len(val_set)} validation ({val_seconds / 3600:.2f} h); {tokenizer.vocab_size} tokens"
    )
    distiller = None
    if finetune and spec.distill.enabled and not spec.distill.sequence:
        from .distill import build_distiller

        distiller = build_distiller(
            spec.distill,
            model,
            tokenizer,
            sr,
            spec.data,
            train_set.augmenter,
            spec.trainer.seed,
            ctx.world_size,
            ctx.rank,
            say,
        )
    task = ASRTask(
        model, tokenizer, train_set, sampler, val_set, spec.data.val_batch_size, spec, spec.data.num_workers, distiller
    )
    if finetune and spec.qat.enabled:
        from ..export.qat import attach_qat, checkpoint_ranges

        # a QAT checkpoint's ranges (the resumed run's, or init_from's) carry on; else the first batches set them
        names = attach_qat(task, spec.qat.momentum, checkpoint_ranges(loaded.extra if loaded is not None else None))
        say(f"qat: INT8 fake quantization in {len(names)} convs")
    return Trainer(task, spec.trainer, spec.optim, spec.schedule, full_spec=spec, ctx=ctx, log=log)


def _build_model(config, vocab_size: int):
    from .models import build_model

    return build_model(config, vocab_size)


def run(spec: ASRTrainSpec | ASRFinetuneSpec, resume: bool = False) -> dict:
    """Train or fine-tune per ``spec`` (under ``torchrun``: one process per device); returns metrics.json's dict."""
    ctx = ddp.init_distributed(spec.trainer.device)
    try:
        start = time.perf_counter()
        trainer = build(spec, resume=resume, ctx=ctx)
        metrics = trainer.fit(resume=resume)
        metrics["wall_s"] = round(time.perf_counter() - start, 3)
        return metrics
    finally:
        ddp.shutdown_distributed()
