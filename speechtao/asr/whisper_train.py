"""Fine-tuning a Whisper encoder-decoder (:mod:`speechtao.asr.whisper_seq`) with token cross-entropy.

``speechtao asr finetune --spec recipes/asr_whisper_seq_finetune.yaml`` runs it when ``init_from`` is
``whisper:NAME`` (an installed Whisper: ``tiny.en``, ``base``) or a checkpoint this module wrote.

- Inputs as at inference: each utterance (<= 30 s) zero-padded to a 30 s window, Whisper's log-mels of the
  whole window (n_mels, 3000); SpecAugment masks (``spec_augment``) fall inside the utterance's own frames.
- Targets, teacher-forced: ``<|startoftranscript|> [<|en|><|transcribe|>] <|notimestamps|>`` + the
  transcript + ``<|endoftext|>``; the loss covers the transcript tokens and ``<|endoftext|>`` (not the prompt).
  The transcript is the manifest text **normalized** as training labels and WER scoring normalize it (lower
  case, numbers spelled out, no punctuation; :func:`speechtao.text.normalize.normalize_text`) with a leading
  space, as Whisper writes a transcript's first word. A fine-tuned model therefore writes that form.
- ``freeze_encoder``: the encoder runs without gradients (the decoder, its cross-attention included, trains);
  the output projection stays tied to the token embedding, as in Whisper.
- Validation: teacher-forced loss and greedy (or ``val_beam_size``) decoding WER/CER of the validation set.

Checkpoints (``best.pt``, ``final.pt``, ``checkpoints/``) hold the whole model, Whisper's tokenizer and sizes::

    {"format": "speechtao-whisper-seq", "version": 1, "name": "tiny.en", "encoder_config": {...},
     "decoder_config": {...}, "tokenizer_json": "...", "tokenizer_config": {"suppress_ids": [...], ...},
     "multilingual": false, "state_dict": {...}, "spec": {...}, "extra": {...}}

:func:`load_seq_checkpoint` reads them back (strict); ``open_model`` / ``asr evaluate`` / ``asr infer`` take the
file (or ``whisper:FILE:beam=N``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from ..augment import SpecAugment, SpecAugmentSpec
from ..errors import CheckpointError, InputError, SpecError
from ..spec import apply_overrides, load_spec, read_yaml, spec_to_dict
from ..train.loop import Trainer, TrainerSpec, TrainTask, seed_everything
from ..train.optim import OptimSpec
from ..train.schedule import ScheduleSpec
from .data import AudioTextDataset, DurationBucketSampler, collate, make_loader, training_sampler, training_set
from .train import DataSpec
from .whisper import WhisperEncoder, WhisperEncoderConfig
from .whisper_seq import (
    SAMPLES_PER_WINDOW,
    DecodeOptions,
    WhisperDecoder,
    WhisperDecoderConfig,
    WhisperSeqModel,
    WhisperTokenizer,
    decode_window,
    load_seq_model,
)

FORMAT = "speechtao-whisper-seq"
VERSION = 1
PREFIX = "whisper:"
IGNORE = -100  # target id the loss skips (prompt and padding)


@dataclass(frozen=True)
class WhisperSeqFinetuneSpec:
    """``speechtao asr finetune`` of a Whisper encoder-decoder (``init_from: whisper:NAME`` or such a checkpoint)."""

    init_from: str  # whisper:tiny.en, whisper:base, or a checkpoint of this command (best.pt)
    data: DataSpec
    optim: OptimSpec
    trainer: TrainerSpec
    freeze_encoder: bool = False  # True: only the decoder trains (the encoder runs without gradients)
    language: str = "en"  # the language token of multilingual models (English-only models have none)
    val_beam_size: int = 1  # decoding in validation: 1 greedy, N beam search
    schedule: ScheduleSpec = ScheduleSpec()
    spec_augment: SpecAugmentSpec = SpecAugmentSpec()  # masks on the log-mels in training

    def __post_init__(self):
        if self.data.max_duration is None or self.data.max_duration > 30.0:
            raise ValueError(
                f"data.max_duration {self.data.max_duration}: Whisper takes at most 30 s per utterance (set <= 30)"
            )
        if self.val_beam_size < 1:
            raise ValueError(f"val_beam_size must be >= 1, got {self.val_beam_size}")
        if self.data.cache_features:
            raise ValueError(
                "data.cache_features: the Whisper encoder-decoder computes its own log-mels per 30 s window and "
                "cannot use cached CTC features (remove data.cache_features or set it to false)"
            )


def is_seq_init(init_from: str) -> bool:
    """True when ``init_from`` names a Whisper encoder-decoder: ``whisper:NAME`` or a checkpoint of this module."""
    return init_from.startswith(PREFIX) or is_seq_checkpoint(init_from)


def load_finetune_spec(path: str | Path, overrides=()):
    """The spec of ``asr finetune --spec path``: :class:`WhisperSeqFinetuneSpec` when its ``init_from`` names a
    Whisper encoder-decoder, else :class:`speechtao.asr.train.ASRFinetuneSpec` (CTC models)."""
    from .train import ASRFinetuneSpec

    data = apply_overrides(read_yaml(path), overrides)
    init = data.get("init_from")
    cls = WhisperSeqFinetuneSpec if isinstance(init, str) and is_seq_init(init) else ASRFinetuneSpec
    return load_spec(cls, path, overrides)


# ------------------------------------------------------------------------------------------------ checkpoints


def is_seq_checkpoint(path: str | Path) -> bool:
    """True for a file this module wrote (reads the small entries only, tensors stay on disk)."""
    p = Path(path)
    if not p.is_file() or p.suffix in (".nemo", ".onnx"):
        return False
    try:
        payload = torch.load(p, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # not a torch zip file: some other kind of model
        return False
    return isinstance(payload, dict) and payload.get("format") == FORMAT


def seq_payload(model: WhisperSeqModel, spec: Any = None, extra: dict | None = None) -> dict:
    """The checkpoint dict of ``model`` (see the module docstring); tensors are the live ones (not copied)."""
    tk = model.tokenizer
    return {
        "format": FORMAT,
        "version": VERSION,
        "name": model.name,
        "encoder_config": dataclasses.asdict(model.encoder.cfg),
        "decoder_config": dataclasses.asdict(model.decoder.cfg),
        "tokenizer_json": tk.tk.to_str(),
        "tokenizer_config": {"suppress_ids": list(tk.suppress), "suppress_ids_begin": list(tk.suppress_begin)},
        "multilingual": bool(tk.multilingual),
        "state_dict": {k: v.detach() for k, v in model.state_dict().items()},
        "spec": spec_to_dict(spec) if dataclasses.is_dataclass(spec) else spec,
        "extra": dict(extra or {}),
    }


def tie_embeddings(model: WhisperSeqModel) -> None:
    """Share the output projection with the token embedding when their values are equal (Whisper ties them)."""
    dec = model.decoder
    if dec.proj.weight is not dec.embed.weight and torch.equal(dec.proj.weight, dec.embed.weight):
        dec.proj.weight = dec.embed.weight


def load_seq_checkpoint(path: str | Path) -> tuple[WhisperSeqModel, dict]:
    """A checkpoint of this module -> (model in eval mode, its payload without the weights)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found (pass best.pt or final.pt of an `asr finetune` run)")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(
            f"{path}: cannot read the checkpoint ({type(exc).__name__}: {str(exc).splitlines()[0][:200]}); the file "
            "is truncated or corrupt, copy or save it again"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a Whisper encoder-decoder checkpoint (format is not {FORMAT!r})")
    if payload.get("version") != VERSION:
        raise CheckpointError(
            f"{path}: checkpoint version {payload.get('version')!r}; this speechtao reads version {VERSION} "
            "(upgrade speechtao)"
        )
    keys = ("name", "encoder_config", "decoder_config", "tokenizer_json", "tokenizer_config", "state_dict")
    missing = [k for k in keys if k not in payload]
    if missing:
        raise CheckpointError(f"{path}: checkpoint lacks {', '.join(missing)} (the file is incomplete; save it again)")
    try:
        enc_cfg = WhisperEncoderConfig(
            **{k: tuple(v) if isinstance(v, list) else v for k, v in payload["encoder_config"].items()}
        )
        dec_cfg = WhisperDecoderConfig(**payload["decoder_config"])
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: model sizes do not match this speechtao version ({exc})") from None
    with tempfile.TemporaryDirectory() as tmp:
        tok_path = Path(tmp) / "tokenizer.json"
        tok_path.write_text(payload["tokenizer_json"], encoding="utf-8")
        tokenizer = WhisperTokenizer(tok_path, payload["tokenizer_config"], bool(payload.get("multilingual")))
    model = WhisperSeqModel(WhisperEncoder(enc_cfg), WhisperDecoder(dec_cfg), tokenizer, str(payload["name"]))
    try:
        model.load_state_dict(payload["state_dict"], strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: weights do not fit the model sizes: {str(exc)[:500]}") from None
    tie_embeddings(model)
    meta = {k: v for k, v in payload.items() if k != "state_dict"}
    return model.eval(), meta


def load_init(init_from: str) -> WhisperSeqModel:
    """``whisper:NAME`` (installed weights) or a checkpoint of this module."""
    if init_from.startswith(PREFIX) and not Path(init_from).exists():
        from .whisper import WHISPER_MODELS

        name = init_from[len(PREFIX) :]
        if name not in WHISPER_MODELS:
            raise SpecError(
                f"init_from {init_from!r}: unknown Whisper model (installed kinds: {', '.join(WHISPER_MODELS)})"
            )
        model = load_seq_model(name)
    else:
        model = load_seq_checkpoint(init_from)[0]
    tie_embeddings(model)
    return model


# ------------------------------------------------------------------------------------------------ the task


class _Labels:
    """Tokenizer for :class:`AudioTextDataset`: normalized text -> prompt + text + eot ids."""

    def __init__(self, tokenizer: WhisperTokenizer, language: str, n_ctx: int):
        self.tk, self.prompt, self.n_ctx = tokenizer, tokenizer.prompt(language, timestamps=False), n_ctx

    def encode(self, text: str) -> list[int]:
        ids = self.prompt + self.tk.tk.encode(" " + text, add_special_tokens=False).ids + [self.tk.eot]
        if len(ids) > self.n_ctx:
            raise InputError(f"{len(ids)} tokens exceed the decoder's {self.n_ctx} positions (split the utterance)")
        return ids


def window_mels(model: WhisperSeqModel, audio: torch.Tensor) -> torch.Tensor:
    """audio (B, T <= 480000) zero-padded -> Whisper's log-mels of 30 s windows (B, n_mels, 3000), in float32
    whatever autocast is on (the dynamic-range floor of each utterance as at inference)."""
    B, T = audio.shape
    padded = F.pad(audio.float(), (0, SAMPLES_PER_WINDOW - T))
    lengths = torch.full((B,), SAMPLES_PER_WINDOW, dtype=torch.int64, device=audio.device)
    with torch.autocast(audio.device.type, enabled=False):
        return model.front(padded, lengths)[0]


class WhisperSeqTask(TrainTask):
    """Token cross-entropy of a :class:`WhisperSeqModel` for the :class:`Trainer`. Batches are
    ``(audio (B, T), audio_lengths (B,), tokens (B, U), token_lengths (B,))``; ``tokens`` = prompt + text + eot."""

    def __init__(self, model: WhisperSeqModel, spec: WhisperSeqFinetuneSpec, train_set, sampler, val_set):
        self.model, self.spec = model, spec
        self.train_set, self.sampler, self.val_set = train_set, sampler, val_set
        self.n_prompt = len(model.tokenizer.prompt(spec.language, timestamps=False))
        self.spec_augment = SpecAugment(spec.spec_augment)  # in training mode: masks when enabled

    def num_batches(self, epoch: int) -> int:
        return len(self.sampler.batches(epoch))

    def train_batches(self, epoch: int, start_index: int):
        return make_loader(self.train_set, self.sampler, epoch, start_index, self.spec.data.num_workers)

    def _loss(self, model, mels: torch.Tensor, tokens: torch.Tensor, token_lengths: torch.Tensor) -> torch.Tensor:
        full = torch.full((mels.shape[0],), mels.shape[2], dtype=torch.int64, device=mels.device)
        frozen = self.spec.freeze_encoder
        with torch.no_grad() if frozen else contextlib.nullcontext():
            xa = model.encoder(mels, full)[0]  # (B, 1500, D)
        logits = model.decoder(tokens[:, :-1], model.decoder.new_cache(xa))  # (B, U - 1, V)
        targets = tokens[:, 1:].clone()
        pos = torch.arange(targets.shape[1], device=tokens.device)[None, :]
        targets[(pos < self.n_prompt - 1) | (pos >= (token_lengths - 1)[:, None])] = IGNORE
        return F.cross_entropy(logits.float().flatten(0, 1), targets.flatten(), ignore_index=IGNORE)

    def loss(self, model, batch) -> torch.Tensor:
        audio, audio_lengths, tokens, token_lengths = batch
        mels = self.spec_augment(window_mels(model, audio), torch.div(audio_lengths, 160, rounding_mode="floor"))
        return self._loss(model, mels, tokens, token_lengths)

    def batch_stats(self, batch) -> dict[str, float]:
        return {"utterances": float(batch[1].numel()), "audio_s": float(batch[1].sum()) / 16000}

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Teacher-forced loss and decoded WER/CER (normalized both sides) on the validation set."""
        from .metrics import cer, wer

        model = self.model
        was_training = model.training
        model.eval()
        opts = DecodeOptions(beam_size=self.spec.val_beam_size, language=self.spec.language)
        sampler = DurationBucketSampler(self.val_set.durations, batch_size=self.spec.data.val_batch_size, shuffle=False)
        refs, hyps, loss_sum = [], [], 0.0
        for idx in sampler:
            audio, _, tokens, token_lengths = collate([self.val_set[i] for i in idx])
            mels = window_mels(model, audio)
            loss_sum += float(self._loss(model, mels, tokens, token_lengths)) * len(idx)
            xa = model.encoder(mels, torch.full((len(idx),), mels.shape[2], dtype=torch.int64))[0]
            for b in range(len(idx)):
                hyps.append(model.tokenizer.decode(decode_window(model, xa[b : b + 1], opts).tokens))
            refs += [self.val_set.entries[i].text for i in idx]
        model.train(was_training)
        return {"wer": wer(refs, hyps), "cer": cer(refs, hyps), "val_loss": loss_sum / len(self.val_set)}

    def payload(self) -> dict:
        return seq_payload(self.model, self.spec)


def build(spec: WhisperSeqFinetuneSpec, resume: bool = False, log=print) -> Trainer:
    """The :class:`Trainer` for ``spec``: reads the manifests, loads ``init_from`` (or, with ``resume``, the
    run's own newest checkpoint; the Trainer then restores optimizer and data position)."""
    from ..data.manifest import filter_by_duration
    from ..train.checkpoint import CheckpointManager
    from .train import _read_entries

    if spec.trainer.device == "cuda" or (spec.trainer.device == "auto" and torch.cuda.is_available()):
        raise SpecError(
            "trainer.device: Whisper encoder-decoder fine-tuning decodes its validation set on the CPU; "
            "set trainer.device=cpu"
        )
    seed_everything(spec.trainer.seed)
    entries, report = filter_by_duration(_read_entries(spec.data.train), spec.data.min_duration, spec.data.max_duration)
    if report:
        log(f"train: {report}")
    val_entries, val_report = filter_by_duration(_read_entries(spec.data.validation), None, 30.0)
    if val_report:
        log(f"validation: {val_report}")
    latest = CheckpointManager(Path(spec.trainer.out_dir) / "checkpoints").latest() if resume else None
    model = load_init(str(latest) if latest is not None else spec.init_from)
    tk = model.tokenizer
    if spec.language != "en" and not tk.multilingual:
        raise SpecError(f"language {spec.language!r}: {model.name} is English-only (use a multilingual model)")
    log(f"init_from {spec.init_from}: Whisper {model.name}, {model.decoder.cfg.n_vocab} tokens")
    if spec.freeze_encoder:
        model.encoder.requires_grad_(False)
    model.decoder.positions.requires_grad_(False)
    labels = _Labels(tk, spec.language, model.decoder.cfg.n_ctx)
    train_set = training_set(entries, labels, 16000, spec.data, spec.trainer.seed)
    val_set = AudioTextDataset(val_entries, labels, 16000, cache_audio=True)
    sampler = training_sampler(train_set.durations, spec.data, spec.trainer.seed)
    log(
        f"data: {len(train_set)} training utterances ({sum(train_set.durations) / 3600:.2f} h), "
        f"{len(val_set)} validation; freeze_encoder {spec.freeze_encoder}"
    )
    model.train()
    task = WhisperSeqTask(model, spec, train_set, sampler, val_set)
    return Trainer(task, spec.trainer, spec.optim, spec.schedule, full_spec=spec, log=log)


def run(spec: WhisperSeqFinetuneSpec, resume: bool = False) -> dict:
    """Fine-tune per ``spec``; returns metrics.json's dict (with ``wall_s``)."""
    start = time.perf_counter()
    metrics = build(spec, resume=resume).fit(resume=resume)
    metrics["wall_s"] = round(time.perf_counter() - start, 3)
    return metrics


__all__ = [
    "WhisperSeqFinetuneSpec",
    "WhisperSeqTask",
    "is_seq_init",
    "is_seq_checkpoint",
    "load_finetune_spec",
    "load_seq_checkpoint",
    "seq_payload",
    "build",
    "run",
]
