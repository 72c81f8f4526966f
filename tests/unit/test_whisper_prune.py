"""Pruning a Whisper-encoder CTC model: attention heads and FFN neurons go (weakest by weight norm), the kept
counts honour the options, the result is the same function where nothing was removed, loads on its own from its
checkpoint, exports to ONNX, and `speechtao asr prune` writes it."""

import dataclasses

import pytest
import torch

from speechtao.asr.checkpoint import load_model, model_payload, save_model
from speechtao.asr.prune import PruneOptions, prune_model, whisper_scores
from speechtao.asr.whisper import WhisperEncoderConfig
from speechtao.asr.whisper_ctc import WhisperCTCConfig, WhisperCTCModel
from speechtao.errors import SpecError
from speechtao.text.tokenizers import CharTokenizer

SMALL = WhisperCTCConfig(encoder=WhisperEncoderConfig(d_model=64, n_heads=4, n_layers=2, ffn_dim=96))


@pytest.fixture
def model():
    torch.manual_seed(0)
    return WhisperCTCModel(SMALL, CharTokenizer().vocab_size).eval()


def _audio():
    g = torch.Generator().manual_seed(1)
    audio = 0.1 * torch.randn(2, 16000, generator=g)
    audio[1, 9000:] = 0.0
    return audio, torch.tensor([16000, 9000])


def _weaken(model, layer: int, head: int, neurons: list[int]) -> None:
    """Scale one head's weights and some FFN neurons down, so that they rank last."""
    attn, (fc1, _, fc2) = model.encoder.layers[layer].attn, model.encoder.layers[layer].mlp
    hd, h = attn.head_dim, attn.n_heads
    with torch.no_grad():
        for part in range(3):
            attn.qkv.weight[part * h * hd + head * hd : part * h * hd + (head + 1) * hd] *= 0.01
        attn.out.weight[:, head * hd : (head + 1) * hd] *= 0.01
        fc1.weight[neurons] *= 0.01
        fc2.weight[:, neurons] *= 0.01


def test_ratio_removes_the_weakest_heads_and_neurons(model):
    _weaken(model, layer=1, head=2, neurons=[5, 40])
    heads, ffn = whisper_scores(model)[1]
    assert int(heads.argmin()) == 2 and set(ffn.argsort()[:2].tolist()) == {5, 40}
    result = prune_model(model, PruneOptions(ratio=0.5, granularity=8, min_channels=16))
    assert result.heads_before == [4, 4] and result.heads_after == [2, 2]
    assert result.widths_before == [96, 96] and result.widths_after == [48, 48]  # multiple of 8, >= 16
    new = result.model
    assert new.config.encoder.layer_heads == (2, 2) and new.config.encoder.layer_ffn == (48, 48)
    assert new.encoder.layers[1].attn.qkv.weight.shape == (3 * 2 * 16, 64)
    assert new.encoder.layers[1].attn.out.weight.shape == (64, 2 * 16)
    assert new.encoder.layers[1].mlp[0].weight.shape == (48, 64) and new.encoder.layers[1].mlp[2].weight.shape == (
        64,
        48,
    )
    # the weakened head and neurons are gone: no kept out-projection column block is the weakened one
    old_out = model.encoder.layers[1].attn.out.weight
    kept_cols = new.encoder.layers[1].attn.out.weight
    weak = old_out[:, 2 * 16 : 3 * 16]
    assert not any(torch.equal(kept_cols[:, k * 16 : (k + 1) * 16], weak) for k in range(2))
    kept_rows = new.encoder.layers[1].mlp[0].weight
    for j in (5, 40):
        assert not any(torch.equal(row, model.encoder.layers[1].mlp[0].weight[j]) for row in kept_rows)
    assert result.params_after < 0.8 * result.params_before and result.macs_after < result.macs_before
    assert "attention heads per layer [4, 4] -> [2, 2]" in result.summary()
    audio, lengths = _audio()
    with torch.no_grad():
        lp, n = new(audio, lengths)
    assert n.tolist() == [50, 28] and torch.isfinite(lp).all()


def test_ratio_zero_is_the_same_function_and_threshold_keeps_the_strongest(model):
    audio, lengths = _audio()
    same = prune_model(model, PruneOptions(ratio=0.0))
    with torch.no_grad():
        torch.testing.assert_close(same.model(audio, lengths)[0], model(audio, lengths)[0], rtol=0, atol=0)
    top = prune_model(model, PruneOptions(threshold=1.0, granularity=8, min_channels=8))
    assert top.heads_after == [1, 1] and top.widths_after == [8, 8]  # only the top head / neuron passes; minimums
    coarse = prune_model(model, PruneOptions(ratio=0.3, granularity=32, min_channels=16))
    assert coarse.heads_after == [3, 3] and coarse.widths_after == [96, 96]  # ceil(2.8); 67.2 -> 96 (capped)


def test_pruned_checkpoint_loads_alone_prunes_again_and_exports(model, tmp_path):
    from speechtao.export.onnx_export import export_onnx, read_metadata

    tok = CharTokenizer()
    result = prune_model(model, PruneOptions(ratio=0.5, min_channels=16))
    path = save_model(tmp_path / "pruned.pt", model_payload(result.model, tok))
    loaded = load_model(path)
    assert loaded.config == result.config
    audio, lengths = _audio()
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(audio, lengths)[0], result.model(audio, lengths)[0])
    again = prune_model(loaded.model, PruneOptions(ratio=0.5, min_channels=16))
    assert again.heads_after == [1, 1] and again.widths_after == [24, 24]
    out = export_onnx(loaded, tmp_path / "pruned.onnx", tokens_txt=False)  # raises if ORT disagrees with torch
    assert '"layer_heads": [2, 2]' in read_metadata(out)["model_config"]


def test_config_rejects_bad_layer_counts():
    from speechtao.spec import spec_from_dict

    data = SMALL.to_dict()
    data["encoder"]["layer_heads"] = [5, 1]
    with pytest.raises(SpecError, match="layer_heads"):
        WhisperCTCConfig.from_dict(data)
    data["encoder"]["layer_heads"] = [2]
    with pytest.raises(SpecError, match="one per layer"):
        WhisperCTCConfig.from_dict(data)
    old = SMALL.to_dict()  # checkpoints written before pruning existed have neither key
    del old["encoder"]["layer_heads"], old["encoder"]["layer_ffn"]
    assert spec_from_dict(WhisperCTCConfig, old) == SMALL
    assert dataclasses.replace(SMALL.encoder, layer_ffn=(32, 64)).ffn(1) == 64


def test_prune_cli_on_a_whisper_checkpoint(model, tmp_path, capsys):
    from speechtao.cli import main

    src = save_model(tmp_path / "w.pt", model_payload(model, CharTokenizer()))
    assert main(["asr", "prune", "--model", str(src), "--ratio", "0.25", "--out", str(tmp_path / "p.pt")]) == 0
    out = capsys.readouterr().out
    assert "attention heads per layer [4, 4] -> [3, 3]" in out and "FFN widths per layer [96, 96] -> [72, 72]" in out
    pruned = load_model(tmp_path / "p.pt")
    assert pruned.config.encoder.layer_heads == (3, 3)
    assert pruned.extra["pruned"]["params_after"] < pruned.extra["pruned"]["params_before"]
