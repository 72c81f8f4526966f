"""`speechtao asr flow` on a tiny setting: a ~8k-parameter starter, 6 + 3 domain utterances, 2-step trainings.

Fast: a subset of stages with one capability made missing, so that stages are listed as not run (never faked) and
the report is written anyway. Slow: the whole flow, then a rerun that skips every finished stage.
"""

import json
import shutil

import pytest
import torch

from speechtao import flow as flow_module
from speechtao.cli import main

pytestmark = pytest.mark.skipif(
    shutil.which("espeak-ng") is None or shutil.which("sox") is None,
    reason="espeak-ng and sox are needed for the domain corpus",
)


@pytest.fixture(scope="module")
def starter(tmp_path_factory):
    from speechtao.asr.checkpoint import model_payload, save_model
    from speechtao.asr.models import ASRModelConfig, BlockConfig, build_model
    from speechtao.features import FeatureSpec
    from speechtao.text.tokenizers import CharTokenizer

    torch.manual_seed(0)
    cfg = ASRModelConfig(
        preprocessor=FeatureSpec(n_mels=32, n_fft=512),
        blocks=(
            BlockConfig(32, 1, 11, stride=2, residual=False),
            BlockConfig(32, 2, 11),
            BlockConfig(48, 1, 1, residual=False, separable=False),
        ),
        family="quartznet",
    )
    tok = CharTokenizer()
    path = tmp_path_factory.mktemp("starter") / "tiny.pt"
    save_model(path, model_payload(build_model(cfg, tok.vocab_size), tok))
    return path


def _args(starter, tmp_path, run="run"):
    return [
        "asr",
        "flow",
        "--spec",
        "recipes/asr_flow.yaml",
        f"starter={starter}",
        f"out_dir={tmp_path / run}",
        f"domain.out={tmp_path / 'domain'}",
        "domain.n_train=6",
        "domain.n_test=3",
        "threads=1",
        "finetune.overrides=[trainer.max_steps=2,trainer.val_every=1,trainer.log_every=1]",
        "retrain.overrides=[trainer.max_steps=2,trainer.log_every=1]",
        "export.calib_utterances=3",
    ]


def _stage(out, name):
    return json.loads((out / "stages" / f"{name}.json").read_text())


def test_missing_capability_and_unmet_stages_are_listed_not_run(starter, tmp_path, monkeypatch, capsys):
    from speechtao.asr.checkpoint import load_model

    real = flow_module.missing_capability
    monkeypatch.setattr(
        flow_module,
        "missing_capability",
        lambda s: "structured pruning is not in this version" if s == "prune" else real(s),
    )
    rc = main(_args(starter, tmp_path) + ["--stages", "domain,evaluate_starter,finetune,prune,retrain,report"])
    assert rc == 0
    out = tmp_path / "run"
    assert _stage(out, "domain")["status"] == "done"
    ev = _stage(out, "evaluate_starter")
    assert ev["status"] == "done" and ev["wer"] >= 0.9  # random weights
    assert ev["params"] == sum(p.numel() for p in load_model(str(starter)).model.parameters())
    assert ev["size_bytes"] == starter.stat().st_size
    tuned = _stage(out, "finetune")
    assert tuned["status"] == "done" and tuned["steps"] == 2 and (out / "finetune" / "final.pt").is_file()
    assert _stage(out, "prune") == {
        "stage": "prune",
        "status": "not run",
        "reason": "structured pruning is not in this version",
    }
    assert _stage(out, "retrain") == {"stage": "retrain", "status": "not run", "reason": "needs stage(s) prune"}
    report = (out / "report.md").read_text()
    assert "| starter (pretrained) | " in report and "| fine-tuned | not run |" in report  # its eval not selected
    assert "| prune | not run |" in report and "structured pruning is not in this version" in report
    assert (out / "report.png").stat().st_size > 5000
    table = capsys.readouterr().out
    assert "starter (pretrained)" in table and "INT8 ONNX (ONNX Runtime)   not run" in table
    # the finished stages belong to this spec: another one in the same out_dir is refused before any work
    assert main(_args(starter, tmp_path) + ["domain.seed=5"]) == 2
    assert "differs in domain" in capsys.readouterr().err


def test_missing_capability_is_named(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "speechtao.asr.prune" else real(name, *a)
    )
    assert "speechtao.asr.prune" in flow_module.missing_capability("prune")
    assert flow_module.missing_capability("finetune") is None


def test_parse_train_log():
    lines = [
        "parameters: 8 (8 trainable)",
        "epoch 0 step 10 loss 215.978 lr 4.9e-04",
        "epoch 0 step 20 loss 207.708 lr 9.8e-04 wer 0.950",
        "epoch 1 step 20 val wer 0.9000 cer 0.5 val_loss 3.1",
    ]
    c = flow_module.parse_train_log(lines)
    assert c == {
        "step": [10, 20],
        "loss": [215.978, 207.708],
        "lr": [4.9e-4, 9.8e-4],
        "val_step": [20],
        "val_wer": [0.9],
    }


@pytest.mark.slow
def test_whole_flow_then_rerun_skips_finished_stages(starter, tmp_path, capsys):
    assert main(_args(starter, tmp_path, "full")) == 0
    out = tmp_path / "full"
    for name in flow_module.STAGES:
        assert _stage(out, name)["status"] == "done", name
    prune = _stage(out, "prune")
    assert prune["params_after"] < prune["params_before"]
    int8 = _stage(out, "evaluate_int8")
    assert int8["runtime"] == "onnxruntime" and int8["params"] == prune["params_after"]
    assert _stage(out, "export_int8")["source"].endswith("retrain/final.pt")
    report = (out / "report.md").read_text()
    for label in ("starter (pretrained)", "fine-tuned", "pruned", "pruned + retrained", "INT8 ONNX (ONNX Runtime)"):
        assert f"| {label} | " in report and f"| {label} | not run" not in report
    curve = json.loads((out / "finetune_curve.json").read_text())
    assert curve["step"] == [1, 2] and len(curve["val_wer"]) == 2
    capsys.readouterr()
    assert main(_args(starter, tmp_path, "full")) == 0
    err = capsys.readouterr().err
    assert err.count("done in an earlier run: skipped") == len(flow_module.STAGES) - 1  # all but the report
