"""The real `speechtao qa ...` CLI on tiny generated data: make-data, finetune (2 steps), evaluate, infer,
export (ONNX FP32 + INT8, evaluated like the model folder), prune, and exit codes for bad input."""

import json
from pathlib import Path

import pytest

from speechtao.cli import main

RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "qa_finetune.yaml"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("qa_cli")
    data = root / "data"
    assert (
        main(
            [
                "qa",
                "make-data",
                "--out",
                str(data),
                "--train",
                "40",
                "--validation",
                "10",
                "--test",
                "12",
                "--sources",
                "facts",
                "--cloze",
                "20",
                "--seed",
                "1",
            ]
        )
        == 0
    )
    rc = main(
        [
            "qa",
            "finetune",
            "--spec",
            str(RECIPE),
            f"data.train={data / 'train.json'}",
            f"data.validation={data / 'validation.json'}",
            f"trainer.out_dir={root / 'run'}",
            "model.max_length=96",
            "data.batch_size=4",
            "data.max_train_samples=16",
            "data.max_val_samples=8",
            "trainer.max_steps=2",
            "trainer.log_every=1",
            "trainer.val_every=2",
            "trainer.checkpoint_every=2",
        ]
    )
    assert rc == 0
    return root


def test_make_data_writes_three_splits(run_dir):
    card = json.loads((run_dir / "data" / "data_card.json").read_text())
    assert set(card["splits"]) == {"train", "validation", "test"}
    assert card["shared_paragraphs"] == 0 and card["shared_question_templates"] == 0
    assert card["splits"]["train"]["by_source"]["cloze"] == 20  # --cloze: train only
    assert "cloze" not in card["splits"]["test"]["by_source"]


def test_finetune_writes_model_folder_and_metrics(run_dir):
    run = run_dir / "run"
    for name in (
        "model/model.pt",
        "model/speechtao.json",
        "model/tokenizer.json",
        "best.pt",
        "final.pt",
        "metrics.json",
        "spec.yaml",
    ):
        assert (run / name).is_file(), name
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["steps"] == 2 and metrics["best_val_f1"] is not None
    summary = json.loads((run / "model" / "speechtao.json").read_text())
    assert summary["task"] == "qa" and summary["extra"]["qa"]["doc_stride"] == 128
    assert summary["extra"]["qa"]["null_score_diff_threshold"] is not None  # chosen on validation


def test_evaluate_infer_export_prune(run_dir, capsys):
    model = run_dir / "run" / "model"
    test_json = run_dir / "data" / "test.json"
    ev = run_dir / "eval"
    assert main(["qa", "evaluate", "--model", str(model), "--data", str(test_json), "--out", str(ev)]) == 0
    out = capsys.readouterr().out
    assert out.strip().splitlines()[-1].startswith("EM ")
    metrics = json.loads((ev / "metrics.json").read_text())
    preds = json.loads((ev / "predictions.json").read_text())
    assert {"exact", "f1", "total"} <= set(metrics) and len(preds) == metrics["total"]
    assert main(["qa", "evaluate", "--model", str(model), "--data", str(test_json), "--min-f1", "101"]) == 1
    capsys.readouterr()

    assert (
        main(
            [
                "qa",
                "infer",
                "--model",
                str(model),
                "--top-n",
                "2",
                "--question",
                "Where was Ada born?",
                "--context",
                "Ada Lovelace was born in London in 1815.",
            ]
        )
        == 0
    )
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines == ["no answer"] or all(len(line.split("\t")) == 3 for line in lines)
    answers = run_dir / "answers.json"
    assert main(["qa", "infer", "--model", str(model), "--data", str(test_json), "--out", str(answers)]) == 0
    assert json.loads(answers.read_text()) == preds

    exp = run_dir / "export"
    assert main(["qa", "export", "--model", str(model), "--out", str(exp), "--format", "onnx-int8"]) == 0
    assert (exp / "model.onnx").is_file() and (exp / "model.int8.onnx").is_file()
    ev_onnx = run_dir / "eval_onnx"
    fp32 = str(exp / "model.onnx")
    assert main(["qa", "evaluate", "--model", fp32, "--data", str(test_json), "--out", str(ev_onnx)]) == 0
    assert json.loads((ev_onnx / "predictions.json").read_text()) == preds  # ORT FP32 answers as PyTorch
    assert f"model: {fp32}" in capsys.readouterr().err  # the file that answered, named
    assert main(["qa", "evaluate", "--model", str(exp), "--data", str(test_json)]) == 0
    assert f"model: {exp / 'model.int8.onnx'}" in capsys.readouterr().err  # an export folder answers with INT8
    capsys.readouterr()

    pruned = run_dir / "pruned"
    assert (
        main(
            [
                "qa",
                "prune",
                "--model",
                str(model),
                "--train",
                str(run_dir / "data" / "train.json"),
                "--validation",
                str(run_dir / "data" / "validation.json"),
                "--out",
                str(pruned),
                "--keep-heads",
                "0.5",
                "--keep-ffn",
                "0.5",
                "--score-batches",
                "2",
                "--retrain-steps",
                "1",
                "--batch-size",
                "4",
                "--max-train-samples",
                "8",
                "--max-val-samples",
                "6",
            ]
        )
        == 0
    )
    summary = json.loads((pruned / "speechtao.json").read_text())
    assert sum(summary["structure"]["heads"]) == 36 and summary["structure"]["ffn"] == [768] * 6
    assert main(["qa", "evaluate", "--model", str(pruned), "--data", str(test_json)]) == 0


def test_bad_squad_file_exits_2_naming_the_question(run_dir, tmp_path, capsys):
    doc = {
        "version": "v2.0",
        "data": [
            {
                "title": "t",
                "paragraphs": [
                    {
                        "context": "Ada was born in London.",
                        "qas": [{"id": "1", "question": "Where?", "answers": [{"text": "London", "answer_start": 2}]}],
                    }
                ],
            }
        ],
    }
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    rc = main(["qa", "evaluate", "--model", str(run_dir / "run" / "model"), "--data", str(bad)])
    err = capsys.readouterr().err
    assert rc == 2
    assert f"{bad}: data[0].paragraphs[0].qas[0].answers[0]: answer_start 2 does not point at 'London'" in err
    assert "occurs at 16" in err


def test_infer_needs_context_and_question(run_dir, capsys):
    assert main(["qa", "infer", "--model", str(run_dir / "run" / "model"), "--question", "Who?"]) == 2
    assert "--context and --question" in capsys.readouterr().err
