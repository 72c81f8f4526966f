"""Depthwise convs through the FFT (``fft_depthwise``, :mod:`speechtao.asr.fftconv`): the same convolution and
gradients as ``F.conv1d``, the same CTC loss and gradients of a model on real recordings, and a run that trains."""

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from speechtao.asr.data import AudioTextDataset, collate
from speechtao.asr.fftconv import depthwise_conv1d_fft, fft_applies, set_fft_depthwise
from speechtao.asr.models import ASRModelConfig, BlockConfig, build_model, ctc_loss
from speechtao.asr.train import ASRTrainSpec, build
from speechtao.data.manifest import read_manifest
from speechtao.features import FeatureSpec
from speechtao.spec import spec_from_dict, spec_to_dict
from speechtao.text.tokenizers import CharTokenizer
from speechtao.train.history import read_history

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "tiny_asr"


@pytest.mark.parametrize(
    ("k", "dilation", "stride"), [(9, 1, 1), (33, 1, 1), (11, 3, 1), (87, 2, 1), (33, 1, 2), (11, 1, 3)]
)
def test_fft_depthwise_equals_conv1d_with_gradients(k, dilation, stride):
    torch.manual_seed(k)
    pad = dilation * (k - 1) // 2
    x = torch.randn(3, 5, 50, dtype=torch.float64, requires_grad=True)
    w = torch.randn(5, 1, k, dtype=torch.float64, requires_grad=True)
    y = depthwise_conv1d_fft(x, w, pad, dilation, stride)
    ref = F.conv1d(x, w, stride=stride, padding=pad, dilation=dilation, groups=5)
    assert y.shape == ref.shape and torch.allclose(y, ref, atol=1e-10)
    assert torch.autograd.gradcheck(lambda a, b: depthwise_conv1d_fft(a, b, pad, dilation, stride), (x, w))


def test_fft_path_only_where_it_is_the_same_conv():
    x = torch.randn(2, 8, 30)
    assert fft_applies(torch.nn.Conv1d(8, 8, 33, padding=16, groups=8, bias=False), x)
    assert not fft_applies(torch.nn.Conv1d(8, 8, 33, padding=16, groups=8, bias=False), x.to(torch.bfloat16))
    assert not fft_applies(torch.nn.Conv1d(8, 8, 33, padding=15, groups=8, bias=False), x)  # not "same"
    assert not fft_applies(torch.nn.Conv1d(8, 16, 1, bias=False), x)  # pointwise
    assert not fft_applies(torch.nn.Conv1d(8, 8, 5, padding=2, groups=8, bias=False), x)  # short kernel
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert not fft_applies(torch.nn.Conv1d(8, 8, 33, padding=16, groups=8, bias=False), x)


def small_config() -> ASRModelConfig:
    return ASRModelConfig(
        preprocessor=FeatureSpec(n_mels=32, dither=0.0),
        blocks=(
            BlockConfig(64, 1, 11, stride=2, residual=False),
            BlockConfig(64, 2, 33),
            BlockConfig(64, 1, 21, dilation=2, residual=False),
            BlockConfig(96, 1, 1, residual=False, separable=False),
        ),
    )


def test_fft_depthwise_same_ctc_loss_and_gradients_on_real_speech():
    tokenizer = CharTokenizer()
    data = AudioTextDataset(read_manifest(FIXTURE / "train.jsonl"), tokenizer)
    audio, audio_lengths, tokens, token_lengths = collate([data[i] for i in range(len(data))])
    torch.manual_seed(0)
    model = build_model(small_config(), tokenizer.vocab_size).train()
    assert set_fft_depthwise(model, True) == 4  # 1 + 2 + 1 depthwise convs with >= 9 taps

    def loss_and_grads(fft: bool):
        set_fft_depthwise(model, fft)
        model.zero_grad(set_to_none=True)
        torch.manual_seed(1)
        log_probs, lengths = model(audio, audio_lengths)
        loss = ctc_loss(log_probs, lengths, tokens, token_lengths, blank=tokenizer.blank_id)
        loss.backward()
        return loss.item(), {n: p.grad.clone() for n, p in model.named_parameters()}

    state = {k: v.clone() for k, v in model.state_dict().items()}
    loss_ref, grads_ref = loss_and_grads(False)
    model.load_state_dict(state)  # the batch-norm running statistics of the first pass
    loss_fft, grads_fft = loss_and_grads(True)
    assert loss_fft == pytest.approx(loss_ref, rel=1e-5)
    for name, g in grads_ref.items():
        assert (grads_fft[name] - g).norm() <= 1e-4 * g.norm(), name  # float32 rounding apart


def test_asr_training_with_fft_depthwise_lowers_the_loss(tmp_path):
    manifest = FIXTURE / "train.jsonl"  # its relative audio paths resolve against the manifest's folder
    spec = spec_from_dict(
        ASRTrainSpec,
        {
            "model": {"config": spec_to_dict(small_config())},
            "data": {"train": [str(manifest)], "validation": [str(manifest)], "batch_size": 4},
            "optim": {"name": "adamw", "lr": 3e-3},
            "schedule": {"warmup_steps": 2},
            "trainer": {"out_dir": str(tmp_path / "run"), "max_steps": 20, "log_every": 2, "val_every": 20},
            "fft_depthwise": True,
        },
    )
    trainer = build(spec, log=lambda line: None)
    assert all(m.fft for m in trainer.task.model.modules() if hasattr(m, "fft"))
    trainer.fit()
    losses = [e["loss"] for e in read_history(tmp_path / "run") if e["kind"] == "train"]
    assert len(losses) == 10 and all(np.isfinite(losses))
    assert np.mean(losses[-3:]) < 0.7 * np.mean(losses[:3]), losses
