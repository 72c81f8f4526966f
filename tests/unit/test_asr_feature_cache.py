"""Cached log-mel features (``data.cache_features``): the same batches of features, the same CTC loss as the
on-the-fly path on real recordings, SpecAugment still applied per step, and a run that trains."""

from pathlib import Path

import numpy as np
import pytest
import torch

from speechtao.asr.data import AudioTextDataset, collate
from speechtao.asr.feature_cache import CachedFeatureDataset, check_cacheable
from speechtao.asr.models import ASRModelConfig, BlockConfig, build_model, ctc_loss
from speechtao.asr.train import ASRTrainSpec, build
from speechtao.data.manifest import read_manifest
from speechtao.errors import SpecError
from speechtao.features import FeatureSpec
from speechtao.spec import spec_from_dict, spec_to_dict
from speechtao.text.tokenizers import CharTokenizer
from speechtao.train.history import read_history

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "tiny_asr"


def small_config(dither: float = 0.0, exact_pad: bool = False) -> ASRModelConfig:
    return ASRModelConfig(
        preprocessor=FeatureSpec(n_mels=32, dither=dither, exact_pad=exact_pad),
        blocks=(
            BlockConfig(48, 1, 11, stride=2, residual=False),
            BlockConfig(48, 2, 11),
            BlockConfig(64, 1, 1, residual=False, separable=False),
        ),
    )


def real_sets():
    tokenizer = CharTokenizer()
    entries = read_manifest(FIXTURE / "train.jsonl") + read_manifest(FIXTURE / "test.jsonl")
    return tokenizer, AudioTextDataset(entries, tokenizer)


@pytest.mark.parametrize("exact_pad", [False, True])
def test_cached_features_equal_the_on_the_fly_batch(exact_pad):
    tokenizer, audio_set = real_sets()
    model = build_model(small_config(dither=1e-5, exact_pad=exact_pad), tokenizer.vocab_size).train()
    cached = CachedFeatureDataset(audio_set, model.preprocessor)
    assert model.preprocessor.training  # back in training mode after the (dither-free) pass
    for idx in ([0, 1, 2, 3, 4, 5], [3, 1], [2]):  # lengths 1.1 to 3.3 s: every row but the longest is padded
        audio, audio_lengths, tokens, token_lengths = collate([audio_set[i] for i in idx])
        model.preprocessor.eval()
        with torch.no_grad():
            ref, ref_lengths = model.preprocessor(audio, audio_lengths)
        feats, feat_lengths, c_tokens, c_token_lengths, c_audio_lengths = cached.collate_fn([cached[i] for i in idx])
        assert feats.shape == ref.shape
        assert torch.equal(feat_lengths, ref_lengths) and torch.equal(c_audio_lengths, audio_lengths)
        assert torch.equal(c_tokens, tokens) and torch.equal(c_token_lengths, token_lengths)
        assert (feats - ref).abs().max() < 1e-5  # log-mel values of order 1-10: float32 rounding
        assert (feats - ref).abs().mean() < 1e-6


def test_cached_features_same_ctc_loss_and_gradients():
    tokenizer, audio_set = real_sets()
    torch.manual_seed(0)
    model = build_model(small_config(), tokenizer.vocab_size).train()
    cached = CachedFeatureDataset(audio_set, model.preprocessor)
    idx = list(range(len(audio_set)))
    state = {k: v.clone() for k, v in model.state_dict().items()}

    def loss_and_grads(batch):
        model.load_state_dict(state)
        model.zero_grad(set_to_none=True)
        log_probs, lengths = model(batch[0], batch[1])
        loss = ctc_loss(log_probs, lengths, batch[2], batch[3], blank=tokenizer.blank_id)
        loss.backward()
        return loss.item(), [p.grad.clone() for p in model.parameters()]

    loss_ref, grads_ref = loss_and_grads(collate([audio_set[i] for i in idx]))
    loss_cached, grads_cached = loss_and_grads(cached.collate_fn([cached[i] for i in idx]))
    assert np.isfinite(loss_ref) and loss_cached == pytest.approx(loss_ref, rel=1e-5)
    for g, ref in zip(grads_cached, grads_ref):
        assert (g - ref).norm() <= 1e-4 * ref.norm()


def test_cache_features_refuses_waveform_augmentation():
    model = build_model(small_config(), 28)
    with pytest.raises(SpecError, match="data.augment"):
        check_cacheable(True, False, model.preprocessor)
    with pytest.raises(SpecError, match="distillation"):
        check_cacheable(False, True, model.preprocessor)
    check_cacheable(False, False, model.preprocessor)


def test_asr_training_on_cached_features_with_spec_augment(tmp_path):
    manifest = FIXTURE / "train.jsonl"  # its relative audio paths resolve against the manifest's folder
    spec = spec_from_dict(
        ASRTrainSpec,
        {
            "model": {"config": spec_to_dict(small_config(dither=1e-5))},
            "data": {"train": [str(manifest)], "validation": [str(manifest)], "batch_size": 4, "cache_features": True},
            "optim": {"name": "adamw", "lr": 3e-3},
            "schedule": {"warmup_steps": 2},
            "spec_augment": {"freq_masks": 1, "freq_width": 4, "time_masks": 1, "time_width": 5},
            "trainer": {"out_dir": str(tmp_path / "run"), "max_steps": 24, "log_every": 2, "val_every": 24},
        },
    )
    log: list[str] = []
    trainer = build(spec, log=log.append)
    assert isinstance(trainer.task.train_set, CachedFeatureDataset)
    assert any(line.startswith("data.cache_features: 4 utterances") for line in log)
    masked = []  # SpecAugment sees the cached features and masks some of them every step
    trainer.task.model.spec_augmentation.register_forward_hook(
        lambda m, args, out: masked.append(int((out == 0).sum() - (args[0] == 0).sum()))
    )
    metrics = trainer.fit()
    assert len(masked) == 24 and all(n > 0 for n in masked)
    losses = [e["loss"] for e in read_history(tmp_path / "run") if e["kind"] == "train"]
    assert len(losses) == 12 and all(np.isfinite(losses))
    assert np.mean(losses[-3:]) < 0.7 * np.mean(losses[:3]), losses
    assert metrics["steps"] == 24
