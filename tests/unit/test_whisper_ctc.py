"""The Whisper-encoder CTC model: freezing, learning-rate groups, vocabulary change, checkpoint round trip and
ONNX export, on a small random configuration (the pretrained encoder is tested in test_whisper.py)."""

from pathlib import Path

import pytest
import torch

from speechtao.asr.whisper import WhisperEncoderConfig
from speechtao.asr.whisper_ctc import WhisperCTCConfig, WhisperCTCModel, is_whisper_config
from speechtao.text.tokenizers import CharTokenizer

SMALL = WhisperCTCConfig(encoder=WhisperEncoderConfig(d_model=64, n_heads=4, n_layers=3, ffn_dim=128))


@pytest.fixture
def model():
    torch.manual_seed(0)
    return WhisperCTCModel(SMALL, CharTokenizer().vocab_size).eval()


def _audio(seed=0, n=(16000, 9000)):
    g = torch.Generator().manual_seed(seed)
    audio = torch.zeros(len(n), max(n))
    for i, k in enumerate(n):
        t = torch.arange(k) / 16000
        audio[i, :k] = 0.3 * torch.sin(2 * torch.pi * (200 + 300 * i) * t) + 0.01 * torch.randn(k, generator=g)
    return audio, torch.tensor(n)


def test_forward_shapes_and_blank_last(model):
    audio, lengths = _audio()
    with torch.no_grad():
        log_probs, out_lengths = model(audio, lengths)
    assert out_lengths.tolist() == [50, 28]  # 100 frames/s -> 50 frames/s: ceil((n // 160) / 2)
    assert log_probs.shape == (2, 50, 29) and model.blank_id == 28 and model.subsampling_factor == 2
    torch.testing.assert_close(log_probs.exp().sum(-1), torch.ones(2, 50))


def test_freeze_lower_and_layer_lr_decay(model):
    model.freeze_lower(2)
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert frozen == {
        n
        for n, _ in model.named_parameters()
        if n.startswith(("encoder.conv", "encoder.layers.0.", "encoder.layers.1."))
    }
    groups = model.parameter_groups(1e-3, layer_decay=0.5)
    assert [(g["name"], g["lr"]) for g in groups] == [("head", 1e-3), ("encoder.layers.2", 5e-4)]
    assert sum(len(g["params"]) for g in groups) == sum(p.requires_grad for p in model.parameters())

    model.freeze_lower(-1)
    lrs = {g["name"]: g["lr"] for g in model.parameter_groups(1.0, layer_decay=0.5)}
    assert lrs == {
        "head": 1.0,
        "encoder.layers.2": 0.5,
        "encoder.layers.1": 0.25,
        "encoder.layers.0": 0.125,
        "encoder.convs": 0.0625,
    }
    with pytest.raises(ValueError, match=r"n_layers must be in \[-1, 3\], got 4"):
        model.freeze_lower(4)


def test_freeze_encoder_keeps_layernorms_trainable(model):
    model.freeze_encoder(keep_bn_and_se_trainable=True)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(
        n.startswith("decoder.") or "_ln." in n or n.startswith("encoder.ln_post.") for n in trainable
    )
    model.freeze_encoder(keep_bn_and_se_trainable=False)
    assert all(n.startswith("decoder.") for n, p in model.named_parameters() if p.requires_grad)


def test_change_vocabulary_replaces_only_the_head(model):
    before = {k: v.clone() for k, v in model.encoder.state_dict().items()}
    model.change_vocabulary(100)
    assert model.vocab_size == 100 and model.blank_id == 100
    for k, v in model.encoder.state_dict().items():
        assert torch.equal(v, before[k])


def test_head_hidden_adds_a_context_layer():
    m = WhisperCTCModel(WhisperCTCConfig(encoder=SMALL.encoder, head_hidden=32), 10)
    assert [type(x).__name__ for x in m.decoder.decoder_layers] == ["Conv1d", "GELU", "Conv1d"]
    assert m.vocab_size == 10


def test_config_dict_roundtrip_is_tagged():
    d = SMALL.to_dict()
    assert is_whisper_config(d) and not is_whisper_config({"family": "quartznet"})
    assert WhisperCTCConfig.from_dict(d) == SMALL


def test_checkpoint_roundtrip_through_load_model(model, tmp_path):
    from speechtao.asr.checkpoint import load_model, model_payload, save_model

    path = save_model(tmp_path / "w.pt", model_payload(model, CharTokenizer(), extra={"note": "x"}))
    loaded = load_model(path)
    assert isinstance(loaded.model, WhisperCTCModel) and loaded.config == SMALL and loaded.extra == {"note": "x"}
    audio, lengths = _audio(1)
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(audio, lengths)[0], model(audio, lengths)[0], rtol=0, atol=0)


def test_checkpoint_accepts_float16_weights(model, tmp_path):
    """The starter checkpoint stores fp16 weights (half the size); loading casts them to float32."""
    from speechtao.asr.checkpoint import load_model, model_payload, save_model

    payload = model_payload(model, CharTokenizer())
    payload["state_dict"] = {k: v.half() if v.is_floating_point() else v for k, v in payload["state_dict"].items()}
    loaded = load_model(save_model(tmp_path / "w16.pt", payload))
    assert next(loaded.model.parameters()).dtype == torch.float32
    audio, lengths = _audio(2)
    with torch.no_grad():
        diff = (loaded.model(audio, lengths)[0] - model(audio, lengths)[0]).abs().max()
    assert 0 < diff < 0.05


def test_onnx_export_matches_pytorch(model, tmp_path):
    pytest.importorskip("onnxruntime")
    from speechtao.asr.checkpoint import LoadedModel
    from speechtao.export.onnx_export import export_onnx, read_metadata

    loaded = LoadedModel(model=model, tokenizer=CharTokenizer(), config=SMALL)
    path = export_onnx(loaded, tmp_path / "w.onnx")  # raises ExportCheckError when ORT and PyTorch disagree
    meta = read_metadata(path)
    assert meta["family"] == "whisper" and meta["subsampling_factor"] == "2" and meta["vocab_size"] == "29"
    assert meta["normalize_type"] == "whisper"
    assert (tmp_path / "tokens.txt").read_text().splitlines()[-1] == "<blk> 28"


STARTER = Path(__file__).parents[2] / "models" / "whisper_tiny_en_ctc_synth.pt"
CARDS_001 = Path("/usr/share/pocketsphinx/test/data/cards/001.wav")  # "ten of clubs", a real recording


def test_starter_checkpoint_transcribes_real_speech():
    """The float16 starter loads as a float32 Whisper-CTC model and gets the words it reliably hears."""
    if not CARDS_001.is_file():
        pytest.skip(f"{CARDS_001} not present (apt-get install pocketsphinx-testdata)")
    from speechtao.asr.checkpoint import load_model
    from speechtao.asr.ctc import decode_texts
    from speechtao.audio import read_audio

    loaded = load_model(STARTER)
    assert isinstance(loaded.model, WhisperCTCModel) and loaded.extra["weights_dtype"] == "float16"
    audio = torch.from_numpy(read_audio(CARDS_001))[None]
    with torch.no_grad():
        log_probs, lengths = loaded.model(audio, torch.tensor([audio.shape[1]]))
    words = decode_texts(log_probs, lengths, loaded.tokenizer)[0].split()
    assert words[:2] == ["ten", "of"] and len(words) == 3, words
