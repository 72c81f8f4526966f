import math

import pytest
import torch

from speechtao.asr.models import (
    PRESET_VOCAB_SIZE,
    PRESETS,
    ASRModelConfig,
    BlockConfig,
    SqueezeExcite,
    build_model,
    ctc_loss,
    macs_per_second,
    parameter_counts,
)
from speechtao.errors import SpecError
from speechtao.features import FeatureSpec

# name, vocabulary size, expected total parameters, relative tolerance, subsampling
PRESET_SIZES = [
    ("quartznet_15x5", 28, 18_924_381, 0.01, 2),  # NGC QuartzNet15x5Base-En
    ("quartznet_5x5", 28, 6_713_181, 0.01, 2),
    ("citrinet_256", 1024, 10_259_729, 0.01, 8),  # NGC stt_en_citrinet_256 (1024 SentencePiece tokens)
    ("quartznet_small", 28, 2_000_000, 0.5, 2),  # CPU presets: 1-3M
    ("citrinet_small", 256, 2_000_000, 0.5, 8),
    ("jasper_10x5dr", 28, 333_000_000, 0.01, 2),  # Jasper paper / NGC Jasper10x5Dr-En: ~333M parameters
    ("jasper_small", 28, 1_500_000, 0.5, 2),
]


@pytest.mark.parametrize("name,vocab,expected,rel,sub", PRESET_SIZES)
def test_preset_parameter_counts(name, vocab, expected, rel, sub):
    model = build_model(PRESETS[name], vocab)
    total = parameter_counts(model)["total"]
    assert abs(total - expected) <= rel * expected, total
    assert model.subsampling_factor == sub == PRESETS[name].subsampling_factor


def test_every_preset_has_a_vocab_size_and_round_trips_through_dict():
    assert set(PRESETS) == set(PRESET_VOCAB_SIZE)
    for name, cfg in PRESETS.items():
        assert ASRModelConfig.from_dict(cfg.to_dict()) == cfg, name


TINY_QN = ASRModelConfig(
    preprocessor=FeatureSpec(n_mels=16, n_fft=512),
    blocks=(
        BlockConfig(24, 1, 11, stride=2, residual=False),
        BlockConfig(24, 2, 13),
        BlockConfig(32, 1, 1, separable=False, residual=False),
    ),
    family="quartznet",
)
TINY_CITRI = ASRModelConfig(
    preprocessor=FeatureSpec(n_mels=16, n_fft=512, window_size=0.025),
    blocks=(
        BlockConfig(24, 1, 5, residual=False, se=True),
        BlockConfig(24, 2, 7, stride=2, stride_last=True, residual_mode="stride_add", se=True),
        BlockConfig(24, 2, 9, stride=2, stride_last=True, residual_mode="stride_add", se=True),
        BlockConfig(32, 1, 11, residual=False, se=True),
    ),
    family="citrinet",
)


def _batch(lengths):
    g = torch.Generator().manual_seed(0)
    audio = torch.zeros(len(lengths), max(lengths))
    for i, n in enumerate(lengths):
        audio[i, :n] = 0.1 * torch.randn(n, generator=g)
    return audio, torch.tensor(lengths)


def _randomize_bn(model):
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm1d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.2)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)


@pytest.mark.parametrize("config,sub", [(TINY_QN, 2), (TINY_CITRI, 4), (PRESETS["citrinet_small"], 8)])
def test_batched_equals_one_by_one_and_lengths(config, sub):
    torch.manual_seed(0)
    model = build_model(config, 30).eval()
    _randomize_bn(model)
    lengths = [16000, 11111, 4003]
    audio, lens = _batch(lengths)
    with torch.no_grad():
        lp, out_lens = model(audio, lens)
        feat_lens = model.preprocessor.feature_lengths(lens)
        assert lp.dtype == torch.float32 and lp.shape[0] == 3 and lp.shape[2] == 31
        assert torch.allclose(lp.exp().sum(-1), torch.ones(lp.shape[:2]), atol=1e-4)  # log-softmax rows
        assert out_lens.tolist() == [math.ceil(n / sub) for n in feat_lens.tolist()]
        for i, n in enumerate(lengths):
            one, one_len = model(audio[i : i + 1, :n], lens[i : i + 1])
            assert one_len.item() == out_lens[i].item()
            valid = out_lens[i].item()
            assert torch.allclose(one[0, :valid], lp[i, :valid], atol=1e-5), (
                i,
                (one[0, :valid] - lp[i, :valid]).abs().max(),
            )


def test_forward_features_matches_forward():
    model = build_model(TINY_QN, 28).eval()
    audio, lens = _batch([8000, 5000])
    with torch.no_grad():
        feats, feat_lens = model.preprocessor(audio, lens)
        a = model(audio, lens)
        b = model.forward_features(feats, feat_lens)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_change_vocabulary_keeps_encoder():
    model = build_model(TINY_CITRI, 28)
    before = {k: v.clone() for k, v in model.encoder.state_dict().items()}
    model.change_vocabulary(64)
    assert model.vocab_size == 64 and model.blank_id == 64
    for k, v in model.encoder.state_dict().items():
        assert torch.equal(v, before[k]), k
    lp, _ = model.eval()(*_batch([4000]))
    assert lp.shape[-1] == 65


def test_freeze_encoder_keeps_bn_and_se_trainable():
    model = build_model(TINY_CITRI, 28)
    model.freeze_encoder()
    for name, p in model.named_parameters():
        in_bn_or_se = any(isinstance(m, (torch.nn.BatchNorm1d, SqueezeExcite)) for m in _owners(model, name))
        expected = (not name.startswith("encoder.")) or in_bn_or_se
        assert p.requires_grad == expected, name
    # gradients flow into BN/SE/decoder only
    audio, lens = _batch([8000, 6000])
    lp, out_lens = model.train()(audio, lens)
    targets = torch.tensor([[1, 2, 3], [4, 5, 0]])
    ctc_loss(lp, out_lens, targets, torch.tensor([3, 2]), blank=28).backward()
    assert model.encoder.encoder[1].mconv[0].conv.weight.grad is None
    assert model.encoder.encoder[1].mconv[2].weight.grad is not None  # BatchNorm
    assert model.decoder.decoder_layers[0].weight.grad is not None
    model.freeze_encoder(keep_bn_and_se_trainable=False)
    assert not any(p.requires_grad for p in model.encoder.parameters())


def _owners(model, param_name):
    parts = param_name.split(".")[:-1]
    mod = model
    for p in parts:
        mod = getattr(mod, p)
        yield mod


def test_ctc_loss_is_batch_mean_and_zero_infinity():
    g = torch.Generator().manual_seed(0)
    lp = torch.randn(2, 10, 5, generator=g).log_softmax(-1)
    lens, targets, tlens = torch.tensor([10, 7]), torch.tensor([[1, 2, 3], [2, 2, 0]]), torch.tensor([3, 2])
    per = [
        torch.nn.functional.ctc_loss(
            lp[i, : lens[i]].unsqueeze(1),
            targets[i : i + 1, : tlens[i]],
            lens[i : i + 1],
            tlens[i : i + 1],
            blank=4,
            reduction="sum",
        )
        for i in range(2)
    ]
    assert torch.allclose(ctc_loss(lp, lens, targets, tlens, blank=4), (per[0] + per[1]) / 2)
    # a target longer than the output is impossible: contributes 0 instead of inf
    impossible = ctc_loss(lp, torch.tensor([10, 1]), targets, tlens, blank=4)
    assert torch.isfinite(impossible) and torch.allclose(impossible, per[0] / 2)


@pytest.mark.parametrize("config,frames", [(TINY_QN, 100), (TINY_CITRI, 400)])
def test_macs_match_a_hook_count(config, frames):
    """The analytic count equals MACs measured with hooks on a `frames`-frame input."""
    model = build_model(config, 30).eval()
    measured = []

    def hook(m, inputs, out):
        if isinstance(m, torch.nn.Conv1d):
            measured.append(out.numel() * m.in_channels // m.groups * m.kernel_size[0])
        else:
            measured.append(out.numel() * m.in_features)

    for m in model.modules():
        if isinstance(m, (torch.nn.Conv1d, torch.nn.Linear)):
            m.register_forward_hook(hook)
    with torch.no_grad():
        model.forward_features(torch.randn(1, 16, frames), torch.tensor([frames]))
    assert sum(measured) == pytest.approx(macs_per_second(config, 30, frames_per_second=frames)["total"], rel=1e-9)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"kernel": 4}, "odd"),
        ({"stride": 2, "dilation": 2}, "only one"),
        ({"dropout": 1.5}, "dropout"),
    ],
)
def test_block_config_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        BlockConfig(**{"filters": 8, "repeat": 1, "kernel": 3, **kwargs})


def test_config_from_dict_is_strict():
    d = TINY_QN.to_dict()
    d["blocks"][0]["kernal"] = 3
    with pytest.raises(SpecError, match=r"blocks\[0\]\.kernal"):
        ASRModelConfig.from_dict(d)
