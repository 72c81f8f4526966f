"""`speechtao asr flow` end to end on the committed fixture (tests/fixtures/tiny_asr: seven real recordings) from
the tiny starter: every stage, INT8 export and its ONNX Runtime evaluation included, as icefall's yesno recipe runs
in CI. Also: the data checks stop the flow before training, a dev split is made from train when none is given, and
a failed or unrunnable stage gives a non-zero exit status."""

import json
import shutil
from pathlib import Path

from speechtao import flow as flow_module
from speechtao.cli import main

FIXTURE = Path(__file__).parents[1] / "fixtures" / "tiny_asr"
STARTER = Path(__file__).parents[2] / "models" / "quartznet_tiny_synth.pt"


def _args(out, *extra):
    return [
        "asr",
        "flow",
        "--spec",
        "recipes/asr_flow.yaml",
        f"starter={STARTER}",
        f"out_dir={out}",
        f"data.dir={FIXTURE}",
        "threads=1",
        "finetune.overrides=[trainer.max_steps=4,trainer.val_every=2,trainer.log_every=1,data.batch_size=4]",
        "retrain.overrides=[trainer.max_steps=2,trainer.val_every=2,trainer.log_every=1,data.batch_size=4]",
        "export.calib_utterances=4",
        *extra,
    ]


def _stage(out, name):
    return json.loads((out / "stages" / f"{name}.json").read_text())


def test_every_stage_on_the_fixture_then_a_rerun_skips_them(tmp_path, capsys):
    out = tmp_path / "run"
    # a budget every candidate meets: the largest ratio is kept after one retrain
    assert main(_args(out, "prune.max_wer_increase=1000", "prune.ratios=[0.25,0.5]")) == 0
    for name in flow_module.STAGES:
        assert _stage(out, name)["status"] == "done", (name, _stage(out, name))
    data = _stage(out, "data")
    assert data["dev"] == str(FIXTURE / "dev.jsonl") and "dev_note" not in data  # the fixture's own dev split
    assert (data["train_utterances"], data["dev_utterances"], data["test_utterances"]) == (4, 1, 2)
    tuned = _stage(out, "finetune")
    assert tuned["steps"] == 4 and tuned["model"].endswith("best.pt")  # chosen on dev
    curve = json.loads((out / "report.json").read_text())["curves"]["finetune"]  # from the trainer's history.jsonl
    assert curve["step"] == [1, 2, 3, 4] and curve["val_step"] == [2, 4] and len(curve["val_wer"]) == 2
    prune = _stage(out, "prune")
    assert [c["ratio"] for c in prune["candidates"]] == [0.5, 0.25]
    retrain = _stage(out, "retrain")
    assert retrain["ratio"] == 0.5 and len(retrain["trials"]) == 1 and retrain["trials"][0]["within_budget"]
    assert retrain["distilled"] is True  # the default: distilled from the fine-tuned model
    spec = (out / "retrain" / "ratio_0.5" / "spec.yaml").read_text()
    assert f"teacher: {tuned['model']}" in spec and str(FIXTURE / "train.jsonl") in spec  # unlabelled: train
    export = _stage(out, "export_int8")
    assert export["source"] == retrain["model"] and export["calibration_utterances"] == 4
    int8 = _stage(out, "evaluate_int8")
    starter_params = _stage(out, "evaluate_starter")["params"]
    assert int8["runtime"] == "onnxruntime" and int8["params"] == retrain["params"] < 0.5 * starter_params
    assert int8["n"] == 2 and int8["dev_n"] == 1 and 0 <= int8["wer"]
    lm = _stage(out, "lm")  # the domain LM from the training transcripts, beside the export, tuned on dev
    assert lm["lm"] == str(out / "export" / "lm") and (out / "export" / "lm" / "lm.json").is_file()
    assert lm["sentences"] == 4 and lm["dev_wer_lm"] <= lm["dev_wer_greedy"]
    lm_row = _stage(out, "evaluate_int8_lm")
    assert lm_row["model"] == export["model"] and lm_row["n"] == 2 and lm_row["dev_wer"] == lm["dev_wer_lm"]
    report = (out / "report.md").read_text()
    labels = ("starter (pretrained)", "fine-tuned", "pruned", "pruned + retrained", "INT8 ONNX (ONNX Runtime)")
    for label in (*labels, "INT8 ONNX + domain LM"):
        assert f"| {label} | " in report and f"| {label} | not run" not in report
    assert "## Deployed (INT8 ONNX) against fine-tuned" in report and "fewer than the starter" in report
    assert "| 0.5 | " in report and "The largest ratio whose dev WER is within +1000 points" in report
    assert "| finetune | done | " in report and "Total: " in report
    assert (out / "report.png").stat().st_size > 5000
    table = capsys.readouterr().out
    assert "deployed INT8 vs fine-tuned" in table
    # what is deployed evaluates with `speechtao asr evaluate` to the report's figure (the same evaluator)
    assert main(["asr", "evaluate", "--model", export["model"], "--manifest", str(FIXTURE / "test.jsonl")]) == 0
    assert (
        capsys.readouterr()
        .out.splitlines()[-1]
        .startswith(f"WER {100 * int8['wer']:.2f}% CER {100 * int8['cer']:.2f}%")
    )
    assert main(_args(out, "prune.max_wer_increase=1000", "prune.ratios=[0.25,0.5]")) == 0
    assert capsys.readouterr().err.count("done in an earlier run: skipped") == len(flow_module.STAGES) - 1
    # another export setting: the stages from export_int8 on run again, the trained models are kept
    changed = [a if a != "export.calib_utterances=4" else "export.calib_utterances=3" for a in _args(out)]
    assert main(changed + ["prune.max_wer_increase=1000", "prune.ratios=[0.25,0.5]"]) == 0
    err = capsys.readouterr().err
    assert "spec changed in export: export_int8, evaluate_int8, lm, evaluate_int8_lm, report will run again" in err
    assert err.count("done in an earlier run: skipped") == len(flow_module.STAGES) - 5
    assert _stage(out, "export_int8")["calibration_utterances"] == 3 and (out / "finetune" / "best.pt").is_file()


def _copy_fixture(dest, dev=True):
    dest.mkdir()
    shutil.copytree(FIXTURE / "wav", dest / "wav")
    for split in ("train", "test") + (("dev",) if dev else ()):
        shutil.copy(FIXTURE / f"{split}.jsonl", dest / f"{split}.jsonl")
    return dest


def test_a_defective_manifest_stops_the_flow_before_training(tmp_path, capsys):
    data = _copy_fixture(tmp_path / "data")
    with open(data / "train.jsonl", "a") as f:
        f.write('{"audio_filepath": "wav/missing.wav", "duration": 1.0, "text": "gone"}\n')
        f.write("{not json\n")
    with open(data / "test.jsonl", "a") as f:
        f.write('{"audio_filepath": "wav/cards_001.wav", "duration": 1.0954, "text": "t\u00e9n \u4e2d"}\n')
    out = tmp_path / "run"
    assert main(_args(out, f"data.dir={data}")) == 2
    err = capsys.readouterr().err
    assert f"{data / 'train.jsonl'}:5: audio_filepath 'wav/missing.wav'" in err
    assert f"{data / 'train.jsonl'}:6: invalid JSON" in err
    assert f"{data / 'test.jsonl'}:3: text has characters the normalizer cannot spell" in err  # every defect at once
    assert _stage(out, "data")["status"] == "failed"
    assert not (out / "finetune").exists() and not (out / "stages" / "finetune.json").exists()
    assert "| data | failed |" in (out / "report.md").read_text()


def test_a_dev_split_is_made_from_train_when_none_is_given(tmp_path, capsys):
    data = _copy_fixture(tmp_path / "data", dev=False)
    out = tmp_path / "run"
    assert main(_args(out, f"data.dir={data}", "--stages", "data")) == 0
    rec = _stage(out, "data")
    assert rec["dev_note"].startswith("dev split made from train: 1 of 4 utterances held out")
    assert (rec["train_utterances"], rec["dev_utterances"]) == (3, 1)
    train = [json.loads(x)["text"] for x in (out / "data" / "train.jsonl").read_text().splitlines()]
    dev = [json.loads(x)["text"] for x in (out / "data" / "dev.jsonl").read_text().splitlines()]
    assert sorted(train + dev) == sorted(json.loads(x)["text"] for x in (FIXTURE / "train.jsonl").open())
    assert "dev split made from train" in capsys.readouterr().err
    again = tmp_path / "again"  # deterministic: the same split in another run
    assert main(_args(again, f"data.dir={data}", "--stages", "data")) == 0
    assert (again / "data" / "dev.jsonl").read_text() == (out / "data" / "dev.jsonl").read_text()


def test_a_failed_stage_exits_non_zero(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(_args(out, "finetune.recipe=/nonexistent.yaml")) == 2  # the recipes are loaded before any stage
    assert "finetune.recipe / finetune.overrides of the flow spec: /nonexistent.yaml" in capsys.readouterr().err
    rec = _stage(out, "finetune")
    assert rec["status"] == "failed" and "/nonexistent.yaml" in rec["reason"]
    assert "| finetune | failed |" in (out / "report.md").read_text() and not (out / "stages" / "data.json").exists()
    # a stage that fails while it runs: the export's calibration finds no usable utterance
    rc = main(_args(tmp_path / "run2", "export.calib_utterances=0", "--stages", "data,finetune,export_int8,report"))
    assert rc == 2 and "calib_utterances must be >= 1" in capsys.readouterr().err
    rec = _stage(tmp_path / "run2", "export_int8")
    assert rec["status"] == "failed" and _stage(tmp_path / "run2", "finetune")["status"] == "done"


def test_a_selected_stage_whose_inputs_were_never_made_is_an_error(tmp_path, capsys):
    assert main(_args(tmp_path / "run", "--stages", "data,prune")) == 2
    assert "stage prune needs stage(s) finetune" in capsys.readouterr().err


def test_the_data_section_is_checked(tmp_path, capsys):
    assert main(_args(tmp_path / "run", "data.dir=null", f"data.train={FIXTURE / 'train.jsonl'}")) == 2
    assert "both data.train and data.test" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(_args(tmp_path / "run2", f"data.dir={empty}")) == 2
    assert "no train.jsonl or test.jsonl" in capsys.readouterr().err


def test_lm_disabled_skips_the_lm_stages(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(_args(out, "lm.enabled=false")) == 0
    assert _stage(out, "lm")["skipped"] == "lm.enabled is false" and not (out / "export" / "lm").exists()
    assert "| INT8 ONNX + domain LM | skipped | " in (out / "report.md").read_text()
