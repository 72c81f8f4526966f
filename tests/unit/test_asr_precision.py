"""bf16 autocast in ASR training (``trainer.precision: bf16`` on a CPU with native bf16): the features and the
log-probabilities the CTC loss reads stay float32, the network between them runs in bf16, and a run trains."""

import json

import numpy as np
import pytest
import soundfile as sf
import torch

from speechtao.asr.models import ASRModelConfig, BlockConfig, build_model
from speechtao.asr.train import ASRTrainSpec, build
from speechtao.features import FeatureSpec
from speechtao.spec import spec_from_dict, spec_to_dict
from speechtao.train.history import read_history

TEXTS = ["turn left", "open the door", "stop", "go right", "close it", "lights on"]


def tiny_config() -> ASRModelConfig:
    return ASRModelConfig(
        preprocessor=FeatureSpec(n_mels=32, window_size=0.025, window_stride=0.01, dither=0.0),
        blocks=(
            BlockConfig(32, 1, 11, stride=2, residual=False),
            BlockConfig(32, 2, 11),
            BlockConfig(64, 1, 1, residual=False, separable=False),
        ),
    )


def tones(n: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        t = np.arange(int(rng.uniform(0.5, 1.0) * 16000)) / 16000
        x = sum(0.2 * np.sin(2 * np.pi * f * t) for f in rng.uniform(150, 3000, 3))
        out.append((x + 0.02 * rng.standard_normal(t.size)).astype(np.float32))
    return out


def _dtypes(model) -> dict:
    """{module name: dtype of its first output}, filled by forward hooks on the model's three parts."""
    seen = {}

    def hook(name):
        def record(module, inputs, output):
            seen.setdefault(name, (output[0] if isinstance(output, tuple) else output).dtype)

        return record

    for name in ("preprocessor", "encoder", "decoder"):
        getattr(model, name).register_forward_hook(hook(name))
    return seen


def test_bf16_autocast_keeps_features_and_log_probs_in_fp32():
    torch.manual_seed(0)
    model = build_model(tiny_config(), 28).eval()
    clips = tones(3)
    lengths = torch.tensor([len(c) for c in clips])
    audio = torch.zeros(len(clips), int(lengths.max()))
    for i, c in enumerate(clips):
        audio[i, : len(c)] = torch.from_numpy(c)
    with torch.no_grad():
        ref, _ = model(audio, lengths)
        seen = _dtypes(model)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            log_probs, _ = model(audio, lengths)
    assert seen == {"preprocessor": torch.float32, "encoder": torch.bfloat16, "decoder": torch.float32}
    assert log_probs.dtype == torch.float32
    # a float32 log-softmax: probabilities sum to 1 (a bf16 one misses by ~1e-2), close to the fp32 model's
    assert torch.allclose(log_probs.exp().sum(-1), torch.ones(()), atol=1e-5)
    assert (log_probs - ref).abs().max() < 0.05


def test_asr_training_under_bf16_autocast(tmp_path, monkeypatch):
    monkeypatch.setattr("speechtao.train.precision.cpu_has_native_bf16", lambda *a: True)
    lines = []
    for i, clip in enumerate(tones(6, seed=1)):
        sf.write(tmp_path / f"u{i}.wav", clip, 16000)
        lines.append({"audio_filepath": f"u{i}.wav", "duration": len(clip) / 16000, "text": TEXTS[i]})
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    manifest = str(tmp_path / "train.jsonl")
    spec = spec_from_dict(
        ASRTrainSpec,
        {
            "model": {"config": spec_to_dict(tiny_config())},
            "data": {"train": [manifest], "validation": [manifest], "batch_size": 3},
            "optim": {"name": "adamw", "lr": 3e-3},
            "schedule": {"warmup_steps": 2},
            "trainer": {
                "out_dir": str(tmp_path / "run"),
                "max_steps": 20,
                "log_every": 2,
                "val_every": 20,
                "device": "cpu",
                "precision": "bf16",
            },
        },
    )
    log: list[str] = []
    trainer = build(spec, log=log.append)
    seen = _dtypes(trainer.task.model)
    metrics = trainer.fit()
    assert any("(bf16 autocast)" in line for line in log if line.startswith("parameters:"))
    assert seen == {"preprocessor": torch.float32, "encoder": torch.bfloat16, "decoder": torch.float32}
    losses = [e["loss"] for e in read_history(tmp_path / "run") if e["kind"] == "train"]
    assert len(losses) == 10 and all(np.isfinite(losses))
    assert np.mean(losses[-3:]) < 0.7 * np.mean(losses[:3]), losses
    weights = torch.load(tmp_path / "run" / "final.pt", weights_only=True)["state_dict"]
    assert all(v.dtype == torch.float32 for v in weights.values() if v.is_floating_point())
    assert metrics["steps"] == 20


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_ctc_log_softmax_is_fp32_for_low_precision_logits(dtype):
    from speechtao.asr.models import log_softmax_fp32

    logits = torch.randn(2, 7, 29).to(dtype)
    out = log_softmax_fp32(logits)
    assert out.dtype == torch.float32
    assert torch.allclose(out, torch.log_softmax(logits.float(), dim=-1))
