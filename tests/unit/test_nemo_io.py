"""Parity with NeMo on the same weights: NeMo -> .nemo -> speechtao, and speechtao -> .nemo -> NeMo.

Tiny QuartzNet (characters) and CitriNet (SentencePiece) configs built in NeMo from a config dict; BatchNorm
statistics and affine parameters are randomized so every layer matters. Same audio, eval mode (no dither).
"""

import copy

import pytest
import torch

from speechtao.asr.checkpoint import load_model
from speechtao.asr.nemo_io import export_nemo, import_nemo
from speechtao.text.tokenizers import CHAR_VOCAB, SentencePieceTokenizer

pytestmark = pytest.mark.nemo

PRE = {
    "_target_": "nemo.collections.asr.modules.AudioToMelSpectrogramPreprocessor",
    "sample_rate": 16000,
    "normalize": "per_feature",
    "window_size": 0.025,
    "window_stride": 0.01,
    "window": "hann",
    "features": 20,
    "n_fft": 512,
    "frame_splicing": 1,
    "dither": 1e-5,
    "pad_to": 16,
}
ENC = {
    "_target_": "nemo.collections.asr.modules.ConvASREncoder",
    "feat_in": 20,
    "activation": "relu",
    "conv_mask": True,
}
QUARTZNET_BLOCKS = [
    {
        "filters": 32,
        "repeat": 1,
        "kernel": [11],
        "stride": [2],
        "dilation": [1],
        "dropout": 0.0,
        "residual": False,
        "separable": True,
    },
    {
        "filters": 32,
        "repeat": 3,
        "kernel": [13],
        "stride": [1],
        "dilation": [1],
        "dropout": 0.0,
        "residual": True,
        "separable": True,
    },
    {
        "filters": 48,
        "repeat": 3,
        "kernel": [15],
        "stride": [1],
        "dilation": [1],
        "dropout": 0.0,
        "residual": True,
        "separable": True,
    },
    {
        "filters": 48,
        "repeat": 1,
        "kernel": [17],
        "stride": [1],
        "dilation": [2],
        "dropout": 0.0,
        "residual": False,
        "separable": True,
    },
    {"filters": 64, "repeat": 1, "kernel": [1], "stride": [1], "dilation": [1], "dropout": 0.0, "residual": False},
]


def _jasper_block(filters, repeat, kernel, residual=True, dense=True, stride=1, dilation=1):
    return {
        "filters": filters,
        "repeat": repeat,
        "kernel": [kernel],
        "stride": [stride],
        "dilation": [dilation],
        "dropout": 0.0,
        "residual": residual,
        "residual_dense": dense and residual,
        "separable": False,
    }


# Jasper DR: full convolutions, three dense-residual blocks (the third adds three residual branches), then a
# plain residual block of the first pane's width after the dense run (it reads that pane, as NeMo's encoder does).
JASPER_BLOCKS = [
    _jasper_block(24, 1, 11, residual=False, stride=2),
    _jasper_block(24, 2, 7),
    _jasper_block(32, 2, 9),
    _jasper_block(24, 2, 11),
    _jasper_block(32, 2, 5, dense=False),
    _jasper_block(40, 1, 13, residual=False, dilation=2),
    _jasper_block(48, 1, 1, residual=False),
]
SE = {"separable": True, "se": True, "se_context_size": -1, "se_reduction_ratio": 8}
CITRINET_BLOCKS = [
    {
        "filters": 32,
        "repeat": 1,
        "kernel": [5],
        "stride": [1],
        "dilation": [1],
        "dropout": 0.0,
        "residual": False,
        **SE,
    },
    {
        "filters": 32,
        "repeat": 2,
        "kernel": [11],
        "stride": [2],
        "dilation": [1],
        "dropout": 0.0,
        "residual": True,
        "stride_last": True,
        "residual_mode": "stride_add",
        **SE,
    },
    {
        "filters": 32,
        "repeat": 2,
        "kernel": [13],
        "stride": [1],
        "dilation": [1],
        "dropout": 0.0,
        "residual": True,
        **SE,
    },
    {
        "filters": 32,
        "repeat": 2,
        "kernel": [15],
        "stride": [2],
        "dilation": [1],
        "dropout": 0.0,
        "residual": True,
        "stride_last": True,
        "residual_mode": "stride_add",
        "kernel_size_factor": 0.5,
        **SE,
    },
    {
        "filters": 48,
        "repeat": 1,
        "kernel": [9],
        "stride": [1],
        "dilation": [1],
        "dropout": 0.0,
        "residual": False,
        **SE,
    },
]
SENTENCES = [
    "the quick brown fox jumps over the lazy dog",
    "speech recognition on a small computer",
    "hello world this is a test of the tokenizer",
    "we train a tiny model from a few sentences",
]


def _randomize(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm1d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.1)


def _audio():
    g = torch.Generator().manual_seed(0)
    t = torch.arange(24000) / 16000.0
    tone = 0.3 * torch.sin(2 * torch.pi * 440 * t) * torch.sin(2 * torch.pi * 3 * t)
    audio = torch.stack([tone + 0.05 * torch.randn(24000, generator=g), 0.1 * torch.randn(24000, generator=g)])
    lengths = torch.tensor([24000, 13321])
    audio[1, 13321:] = 0.0
    return audio, lengths


@pytest.fixture(scope="module")
def nemo_asr():
    pytest.importorskip("nemo")
    from nemo.collections.asr.models import ASRModel, EncDecCTCModel, EncDecCTCModelBPE
    from omegaconf import OmegaConf

    return {"ASRModel": ASRModel, "CTC": EncDecCTCModel, "BPE": EncDecCTCModelBPE, "OmegaConf": OmegaConf}


@pytest.fixture(scope="module")
def nemo_models(nemo_asr, tmp_path_factory):
    """Two NeMo models saved as .nemo: {"quartznet": (model, path), "citrinet": (model, path)}."""
    OmegaConf = nemo_asr["OmegaConf"]
    tmp = tmp_path_factory.mktemp("nemo")
    out = {}
    torch.manual_seed(0)
    qn_cfg = {
        "sample_rate": 16000,
        "labels": CHAR_VOCAB,
        "preprocessor": PRE,
        "encoder": {**ENC, "jasper": QUARTZNET_BLOCKS},
        "decoder": {
            "_target_": "nemo.collections.asr.modules.ConvASRDecoder",
            "feat_in": 64,
            "num_classes": len(CHAR_VOCAB),
            "vocabulary": CHAR_VOCAB,
        },
    }
    qn = nemo_asr["CTC"](cfg=OmegaConf.create(copy.deepcopy(qn_cfg)))
    _randomize(qn, 1)
    qn.save_to(str(tmp / "qn.nemo"))
    out["quartznet"] = (qn.eval(), tmp / "qn.nemo")

    sp = SentencePieceTokenizer.train(SENTENCES, vocab_size=40)
    sp.save(tmp / "tok")
    ct_cfg = {
        "sample_rate": 16000,
        "preprocessor": {**PRE, "features": 24},
        "encoder": {**ENC, "feat_in": 24, "jasper": CITRINET_BLOCKS},
        "decoder": {
            "_target_": "nemo.collections.asr.modules.ConvASRDecoder",
            "feat_in": 48,
            "num_classes": -1,
            "vocabulary": [],
        },
        "tokenizer": {"dir": str(tmp / "tok"), "type": "bpe"},
    }
    ct = nemo_asr["BPE"](cfg=OmegaConf.create(copy.deepcopy(ct_cfg)))
    _randomize(ct, 2)
    ct.save_to(str(tmp / "ct.nemo"))
    out["citrinet"] = (ct.eval(), tmp / "ct.nemo", sp)

    jasper_cfg = copy.deepcopy(qn_cfg)
    jasper_cfg["encoder"]["jasper"] = JASPER_BLOCKS
    jasper_cfg["decoder"]["feat_in"] = 48
    jp = nemo_asr["CTC"](cfg=OmegaConf.create(jasper_cfg))
    _randomize(jp, 4)
    jp.save_to(str(tmp / "jasper.nemo"))
    out["jasper"] = (jp.eval(), tmp / "jasper.nemo")
    return out


def _nemo_logprobs(model, audio, lengths):
    with torch.no_grad():
        lp, lens, _ = model.forward(input_signal=audio, input_signal_length=lengths)
    return lp, lens


def _assert_same(ours, theirs):
    (lp_a, len_a), (lp_b, len_b) = ours, theirs
    assert torch.equal(len_a.long(), len_b.long())
    for i, n in enumerate(len_a.tolist()):
        diff = (lp_a[i, :n] - lp_b[i, :n]).abs().max().item()
        assert diff <= 1e-4, f"utterance {i}: max abs diff {diff}"


@pytest.mark.parametrize("name", ["quartznet", "citrinet", "jasper"])
def test_import_matches_nemo(nemo_models, name):
    nemo_model, path = nemo_models[name][:2]
    loaded = import_nemo(path)
    audio, lengths = _audio()
    with torch.no_grad():
        ours = loaded.model(audio, lengths)
    _assert_same(ours, _nemo_logprobs(nemo_model, audio, lengths))
    assert ours[0].shape[-1] == loaded.tokenizer.vocab_size + 1
    if name == "jasper":
        assert loaded.config.family == "jasper"
        assert [len(b.res) if b.res is not None else 0 for b in loaded.model.encoder.encoder] == [0, 1, 2, 3, 1, 0, 0]
        assert loaded.config.blocks[4].residual and not loaded.config.blocks[4].residual_dense
    if name == "citrinet":
        assert loaded.tokenizer == nemo_models[name][2]
        assert loaded.model.subsampling_factor == 4
        assert loaded.config.blocks[3].kernel == 7  # 15 * 0.5 = 7.5 -> 7, NeMo's kernel_size_factor rounding
    else:
        assert loaded.tokenizer.vocab == CHAR_VOCAB


@pytest.mark.parametrize("name", ["quartznet", "citrinet", "jasper"])
def test_export_restores_in_nemo(nemo_models, nemo_asr, tmp_path, name):
    loaded = load_model(nemo_models[name][1])
    _randomize(loaded.model, 3)  # make the weights ours, not the ones NeMo saved
    out = export_nemo(loaded, tmp_path / "ours.nemo")
    restored = nemo_asr["ASRModel"].restore_from(str(out), map_location="cpu").eval()
    assert type(restored).__name__ == ("EncDecCTCModelBPE" if name == "citrinet" else "EncDecCTCModel")
    audio, lengths = _audio()
    with torch.no_grad():
        ours = loaded.model(audio, lengths)
    _assert_same(ours, _nemo_logprobs(restored, audio, lengths))
    if name == "citrinet":
        text = "the lazy fox"
        assert restored.tokenizer.text_to_ids(text) == loaded.tokenizer.encode(text)
    # and back: our own reader gives the same model again
    again = import_nemo(out)
    for k, v in loaded.model.state_dict().items():
        assert torch.equal(v, again.model.state_dict()[k]), k
