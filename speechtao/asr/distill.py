"""Knowledge distillation for CTC models (``distill:`` of ``speechtao asr finetune``): mainly to retrain a pruned
model from the unpruned one it came from.

The student learns from the teacher's frame posteriors besides the labels::

    labelled batch:   (1 - weight) * CTC + weight * T^2 * KL(teacher || student)
    distill batch:    manifest_weight * T^2 * KL(teacher || student)      (``distill.manifest``; transcripts unused)

KL is over the classes of each valid (unpadded) output frame at temperature T. The teacher runs in eval mode
without gradients on exactly the features the student saw (after the student's SpecAugment), so the student
and teacher must share features, vocabulary and subsampling: :func:`check_teacher` refuses anything else.

A *sequence teacher* (``distill.teacher: whisper:base`` or any ``whisper:NAME[:beam=N]`` reference) has no frame
posteriors a CTC student could match: its outputs are BPE tokens of a 51k-token vocabulary, emitted by a decoder,
not one distribution per 20/40 ms frame. It teaches at the sequence level instead (sequence-level knowledge
distillation): before training it transcribes the audio of ``distill.manifest`` once (beam search, the
transcripts of :func:`speechtao.asr.label.label_audio`, kept when their confidence is at least
``distill.min_confidence``), and those transcripts join the labelled training data as ordinary CTC targets.
``weight``, ``temperature``, ``manifest_weight`` and ``reduction`` apply to frame teachers only. The labels are
written once to ``<trainer.out_dir>/teacher_labels.jsonl`` (and its ``.rejected.jsonl``) and reused by a
resumed run.

With ``distill.manifest`` every optimizer micro-batch is one labelled batch plus one batch of the extra audio,
padded together and run as one forward pass (so DDP sees one forward per backward). Rows past the labelled
batch's are distill rows. The extra stream's position is a function of the labelled stream's (batch ``g`` of
the run pairs with batch ``g`` of the endless extra stream), so ``--resume`` stays exact without extra state.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from ..errors import CheckpointError
from .data import AudioTextDataset, DurationBucketSampler, make_loader


@dataclass(frozen=True)
class DistillSpec:
    """``distill.teacher: CKPT`` turns distillation on (null: plain CTC training)."""

    teacher: str | None = None  # checkpoint of the teacher (e.g. the unpruned fine-tuned model)
    weight: float = 0.5  # share of the KL term in the labelled batches' loss (1 - weight goes to CTC)
    temperature: float = 1.0  # T: both posteriors are softened by T; the KL is scaled by T^2
    manifest: list[Path] | None = None  # extra audio manifest(s): KL-only batches, one per labelled batch
    manifest_weight: float = 0.5  # weight of those batches' KL term
    reduction: Literal["utterance", "frame"] = "utterance"  # utterance: KL summed over each utterance's frames,
    # mean over utterances (as ctc_loss, so `weight` mixes terms of the same scale); frame: mean over all frames
    min_confidence: float = 0.0  # sequence teacher: keep its transcripts of at least this confidence (0..1)

    def __post_init__(self):
        if not 0.0 <= self.weight <= 1.0:
            raise ValueError(f"weight must be in [0, 1] (share of the KL term), got {self.weight}")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if self.manifest_weight < 0:
            raise ValueError(f"manifest_weight must be >= 0, got {self.manifest_weight}")
        if self.manifest is not None and not self.manifest:
            raise ValueError("manifest: give at least one manifest, or null for none")
        if self.teacher is None and self.manifest is not None:
            raise ValueError(
                "manifest needs a teacher (set distill.teacher to the unpruned checkpoint, or manifest: null)"
            )
        if not 0.0 <= self.min_confidence <= 1.0:
            raise ValueError(f"min_confidence must be in [0, 1], got {self.min_confidence}")
        if self.sequence and self.manifest is None:
            raise ValueError(
                f"teacher {self.teacher} is a sequence teacher: it teaches by transcribing audio, so give "
                "distill.manifest (the unlabelled audio it should transcribe for the student)"
            )

    @property
    def enabled(self) -> bool:
        return self.teacher is not None

    @property
    def sequence(self) -> bool:
        """True for a sequence teacher (a ``whisper:...`` encoder-decoder): its transcripts become CTC targets."""
        from .whisper_transcribe import is_seq_ref

        return is_seq_ref(self.teacher)


def frame_kl(
    student_log_probs: torch.Tensor,
    teacher_log_probs: torch.Tensor,
    lengths: torch.Tensor,
    temperature: float = 1.0,
    reduction: str = "utterance",
) -> torch.Tensor:
    """``T^2 * KL(teacher || student)`` over the valid frames.

    student_log_probs, teacher_log_probs (B, F, V+1) log-posteriors, lengths (B,) valid frames -> scalar:
    summed over each utterance's frames and averaged over utterances (``utterance``), or averaged over all valid
    frames (``frame``). Zero when the two agree on every valid frame.
    """
    t = temperature
    student = torch.log_softmax(student_log_probs.float() / t, dim=-1)
    teacher = torch.log_softmax(teacher_log_probs.float() / t, dim=-1)
    per_frame = (teacher.exp() * (teacher - student)).sum(-1)  # (B, F)
    valid = torch.arange(per_frame.shape[1], device=lengths.device)[None, :] < lengths[:, None]
    per_frame = per_frame * valid
    if reduction == "utterance":
        value = per_frame.sum() / max(per_frame.shape[0], 1)
    else:
        value = per_frame.sum() / valid.sum().clamp(min=1)
    return value * t * t


@contextmanager
def captured_features(model: nn.Module) -> Iterator[dict]:
    """Within the block, ``box["feats"], box["lengths"]`` are the features ``model.forward_features`` last got:
    the preprocessor's output, replaced by the SpecAugment output when that runs (training)."""
    box: dict[str, torch.Tensor] = {}

    def after_preprocessor(_module, _inputs, output):
        box["feats"], box["lengths"] = output

    def after_augment(_module, _inputs, output):
        box["feats"] = output

    handles = [model.preprocessor.register_forward_hook(after_preprocessor)]
    if getattr(model, "spec_augmentation", None) is not None:
        handles.append(model.spec_augmentation.register_forward_hook(after_augment))
    try:
        yield box
    finally:
        for h in handles:
            h.remove()


def check_teacher(
    teacher: nn.Module, teacher_tokenizer: Any, student: nn.Module, student_tokenizer: Any, where: str, sample_rate: int
) -> None:
    """Raise CheckpointError unless ``teacher`` can teach ``student`` frame by frame: the same vocabulary, the same
    features and the same number of output frames (probed on 1.37 s of noise)."""
    fix = "distill.teacher must be the model the student was pruned from (same vocabulary, features and subsampling)"
    if teacher.vocab_size != student.vocab_size or teacher_tokenizer != student_tokenizer:
        raise CheckpointError(
            f"distill.teacher {where}: vocabulary of {teacher.vocab_size} tokens differs from the "
            f"student's {student.vocab_size}-token vocabulary ({fix})"
        )
    gen = torch.Generator().manual_seed(0)
    audio = 0.1 * torch.randn(2, int(1.37 * sample_rate), generator=gen)
    lengths = torch.tensor([audio.shape[1], audio.shape[1] * 2 // 3])
    t_mode, s_mode = teacher.training, student.training
    teacher.eval()
    student.eval()
    try:
        with torch.no_grad():
            s_feats, s_len = student.preprocessor(audio, lengths)
            t_feats, t_len = teacher.preprocessor(audio, lengths)
            if (
                s_feats.shape != t_feats.shape
                or not torch.equal(s_len, t_len)
                or not torch.allclose(s_feats, t_feats, atol=1e-4)
            ):
                raise CheckpointError(f"distill.teacher {where}: its audio features differ from the student's ({fix})")
            s_out, s_frames = student.forward_features(s_feats, s_len)
            t_out, t_frames = teacher.forward_features(s_feats, s_len)
    finally:
        teacher.train(t_mode)
        student.train(s_mode)
    if s_out.shape != t_out.shape or not torch.equal(s_frames, t_frames):
        raise CheckpointError(
            f"distill.teacher {where}: {t_out.shape[1]} output frames for 1.37 s of audio, the "
            f"student {s_out.shape[1]} (different subsampling; {fix})"
        )


class Distiller:
    """The teacher, the loss weights and the optional stream of unlabelled batches for :class:`ASRTask`."""

    def __init__(
        self,
        spec: DistillSpec,
        teacher: nn.Module,
        extra: AudioTextDataset | None = None,
        extra_sampler: DurationBucketSampler | None = None,
        num_workers: int = 0,
    ):
        self.spec = spec
        self.teacher = teacher.eval()
        for p in self.teacher.parameters():
            p.requires_grad_(False)
        self.extra, self.extra_sampler, self.num_workers = extra, extra_sampler, num_workers

    def extra_batches(self, position: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """``(audio (B, T), audio_lengths (B,))`` of the endless extra stream from batch ``position`` on."""
        epoch, index = 0, position
        while index >= len(self.extra_sampler.batches(epoch)):
            index -= len(self.extra_sampler.batches(epoch))
            epoch += 1
        while True:
            for audio, lengths, _, _ in make_loader(self.extra, self.extra_sampler, epoch, index, self.num_workers):
                yield audio, lengths
            epoch, index = epoch + 1, 0

    def loss(self, model: nn.Module, bare: nn.Module, batch: tuple, blank: int) -> torch.Tensor:
        """The training loss of a batch whose rows past ``tokens``'s are unlabelled (KL-only) rows."""
        from .models import ctc_loss

        audio, audio_lengths, tokens, token_lengths = batch
        n = tokens.shape[0]
        with captured_features(bare) as box:
            log_probs, out_lengths = model(audio, audio_lengths)
        device = log_probs.device
        if next(self.teacher.parameters()).device != device:
            self.teacher.to(device)
        with torch.no_grad():
            teacher_lp, teacher_lengths = self.teacher.forward_features(box["feats"].detach(), box["lengths"])
        if teacher_lp.shape != log_probs.shape or not torch.equal(teacher_lengths, out_lengths):
            raise CheckpointError(
                f"distill.teacher: output of shape {tuple(teacher_lp.shape)} for a batch where the "
                f"student gives {tuple(log_probs.shape)} (the teacher must share the student's "
                "subsampling)"
            )
        s, t = self.spec, self.spec.temperature
        ctc = ctc_loss(log_probs[:n], out_lengths[:n], tokens, token_lengths, blank=blank)
        kl = frame_kl(log_probs[:n], teacher_lp[:n], out_lengths[:n], t, s.reduction)
        loss = (1.0 - s.weight) * ctc + s.weight * kl
        if log_probs.shape[0] > n:
            loss = loss + s.manifest_weight * frame_kl(log_probs[n:], teacher_lp[n:], out_lengths[n:], t, s.reduction)
        return loss


def merge_batches(labelled: tuple, extra: tuple[torch.Tensor, torch.Tensor]) -> tuple:
    """One labelled batch ``(audio, audio_lengths, tokens, token_lengths)`` and one unlabelled ``(audio,
    audio_lengths)`` as one batch: audio rows stacked (zero-padded to the longer), targets of the labelled rows."""
    audio, lengths, tokens, token_lengths = labelled
    x, x_len = extra
    out = torch.zeros(audio.shape[0] + x.shape[0], max(audio.shape[1], x.shape[1]), dtype=audio.dtype)
    out[: audio.shape[0], : audio.shape[1]] = audio
    out[audio.shape[0] :, : x.shape[1]] = x
    return out, torch.cat([lengths, x_len]), tokens, token_lengths


def build_distiller(
    spec: DistillSpec,
    student: nn.Module,
    tokenizer: Any,
    sample_rate: int,
    data: Any,
    augmenter: Any,
    seed: int,
    world_size: int = 1,
    rank: int = 0,
    say=print,
) -> Distiller:
    """Load and check the teacher, read ``spec.manifest`` (filtered and batched as ``data``, the run's DataSpec,
    says for the labelled data; waveform augmentation by ``augmenter``) -> :class:`Distiller`."""
    from ..data.manifest import filter_by_duration, read_manifest
    from .checkpoint import load_model

    loaded = load_model(spec.teacher)
    check_teacher(loaded.model, loaded.tokenizer, student, tokenizer, str(spec.teacher), sample_rate)
    n_teacher = sum(p.numel() for p in loaded.model.parameters())
    n_student = sum(p.numel() for p in student.parameters())
    say(
        f"distill: teacher {spec.teacher} ({n_teacher:,} parameters, student {n_student:,}), weight {spec.weight}, "
        f"temperature {spec.temperature}"
    )
    if spec.manifest is None:
        return Distiller(spec, loaded.model)
    entries = [e for p in spec.manifest for e in read_manifest(p)]
    entries, report = filter_by_duration(entries, data.min_duration, data.max_duration)
    if report:
        say(f"distill.manifest: {report}")
    extra = AudioTextDataset(entries, None, sample_rate, augmenter=augmenter, seed=seed + 1)  # unlabelled
    sampler = DurationBucketSampler(
        extra.durations,
        data.batch_size,
        data.max_batch_seconds,
        shuffle=True,
        seed=seed + 1,
        bucket_batches=data.bucket_batches,
        world_size=world_size,
        rank=rank,
    )
    say(
        f"distill: {len(extra)} unlabelled utterances ({sum(extra.durations) / 3600:.2f} h) from "
        f"{', '.join(map(str, spec.manifest))}, one batch per labelled batch, weight {spec.manifest_weight}"
    )
    return Distiller(spec, loaded.model, extra, sampler, data.num_workers)


def teacher_labels(spec: DistillSpec, out_dir: str | Path, threads: int = 1, say=print) -> list:
    """A sequence teacher's transcripts of ``spec.manifest`` as manifest entries (made once, then read from
    ``<out_dir>/teacher_labels.jsonl``): the extra training data of sequence-level distillation. The utterances its
    filter rejected are in ``teacher_labels.N.rejected.jsonl``, one per manifest."""
    from ..data.manifest import read_manifest, write_manifest
    from .label import LabelOptions, label_audio

    out = Path(out_dir) / "teacher_labels.jsonl"
    if out.is_file():
        entries = read_manifest(out)
        say(f"distill: {len(entries)} transcripts of sequence teacher {spec.teacher} read from {out}")
        return entries
    entries = []
    opts = LabelOptions(min_confidence=spec.min_confidence, threads=threads)
    for i, manifest in enumerate(spec.manifest):
        part = out.with_name(f"teacher_labels.{i}.jsonl")
        report = label_audio(spec.teacher, opts, out=part, manifest=manifest)
        say(
            f"distill: sequence teacher {spec.teacher} transcribed {manifest}: kept {report.kept}, rejected "
            f"{report.rejected} ({', '.join(f'{k} {v}' for k, v in report.reasons.items()) or 'none'})"
        )
        entries += read_manifest(part)
        part.unlink()
    write_manifest(out, entries, relative=False)
    return entries
