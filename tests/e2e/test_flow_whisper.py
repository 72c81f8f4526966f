"""`speechtao asr flow` with a Whisper-encoder CTC starter (a small random one): the training stages add the
recipe's ``family_overrides`` for whisper, pruning removes heads and FFN neurons, the INT8 export quantizes the
MatMuls (dynamic INT8) and is evaluated in ONNX Runtime with Whisper's front end."""

import json
from pathlib import Path

import pytest
import torch
import yaml

from speechtao.cli import main

FIXTURE = Path(__file__).parents[1] / "fixtures" / "tiny_asr"


@pytest.fixture(scope="module")
def starter(tmp_path_factory):
    from speechtao.asr.checkpoint import model_payload, save_model
    from speechtao.asr.whisper import WhisperEncoderConfig
    from speechtao.asr.whisper_ctc import WhisperCTCConfig, WhisperCTCModel
    from speechtao.text.tokenizers import CharTokenizer

    torch.manual_seed(0)
    cfg = WhisperCTCConfig(encoder=WhisperEncoderConfig(d_model=32, n_heads=4, n_layers=2, ffn_dim=64))
    path = tmp_path_factory.mktemp("starter") / "tiny_whisper.pt"
    save_model(path, model_payload(WhisperCTCModel(cfg, 28), CharTokenizer()))
    return path


def test_flow_with_a_whisper_starter(starter, tmp_path, capsys):
    out = tmp_path / "run"
    args = [
        "asr",
        "flow",
        "--spec",
        "recipes/asr_flow.yaml",
        f"starter={starter}",
        f"out_dir={out}",
        f"data.dir={FIXTURE}",
        "export.calib_utterances=3",
        "finetune.overrides=[trainer.max_steps=2,trainer.val_every=0,trainer.log_every=1]",
        "retrain.overrides=[trainer.max_steps=1,trainer.val_every=0]",
        "prune.ratio=0.5",
        "prune.min_channels=16",
        "--stages",
        "data,finetune,prune,retrain,export_int8,evaluate_int8,report",
    ]
    assert main(args) == 0

    def stage(name):
        return json.loads((out / "stages" / f"{name}.json").read_text())

    for name in ("finetune", "prune", "retrain", "export_int8", "evaluate_int8"):
        assert stage(name)["status"] == "done", (name, stage(name))
    spec = yaml.safe_load((out / "finetune" / "spec.yaml").read_text())
    assert spec["optim"]["lr"] == 3.0e-4 and spec["optim"]["weight_decay"] == 0.01  # family_overrides.whisper
    assert spec["trainer"]["max_steps"] == 2  # overrides still apply
    prune = stage("prune")["candidates"][0]
    assert prune["heads_before"] == [4, 4] and prune["heads_after"] == [2, 2] and prune["widths_after"] == [32, 32]
    assert prune["params_after"] < prune["params_before"]
    int8 = stage("evaluate_int8")
    assert int8["runtime"] == "onnxruntime" and int8["params"] == prune["params_after"] and 0 <= int8["cer"]
    from speechtao.export.onnx_export import read_metadata

    meta = read_metadata(stage("export_int8")["model"])
    quant = json.loads(meta["quantization"])
    assert meta["family"] == "whisper" and quant["format"] == "dynamic" and quant["op_types"] == ["MatMul"]
    assert "heads per layer [2, 2]" in (out / "report.md").read_text()
