"""`speechtao <task> prune` options: one PruneSpec for every NLP task, from --spec, then flags, then overrides."""

from pathlib import Path

import pytest

from speechtao.cli import build_parser
from speechtao.cli.nlp import prune_spec_from_args
from speechtao.errors import SpecError
from speechtao.nlp.prune import PruneOptions, PruneSpec


def _spec(argv):
    return prune_spec_from_args(build_parser().parse_args(argv))


def test_spec_file_then_flags_then_overrides(tmp_path):
    recipe = tmp_path / "prune.yaml"
    recipe.write_text("model: runs/m/model\ndata: d/train\nout: runs/p\nkeep_heads: 0.25\nretrain_steps: 10\n")
    spec = _spec(["ner", "prune", "--spec", str(recipe), "--keep-heads", "0.75", "--out", "x y/p", "lr=1e-4"])
    assert spec.keep_heads == 0.75  # the flag wins over the file
    assert spec.retrain_steps == 10 and spec.lr == 1e-4 and str(spec.out) == "x y/p"
    assert spec.validation is None and spec.batch_size is None and spec.keep_ffn == 0.5
    assert spec.options() == PruneOptions(0.75, 0.5, 0, 16)


def test_every_task_takes_the_same_flags_with_200_steps_by_default():
    for task in ("qa", "punct", "ner", "textcls"):
        spec = _spec([task, "prune", "--model", "m", "--data", "d", "--out", "o", "--batch-size", "4"])
        assert (
            spec == PruneSpec(model=Path("m"), data=Path("d"), out=Path("o"), batch_size=4)
            and spec.retrain_steps == 200
        )
    assert _spec(["qa", "prune", "--model", "m", "--train", "t.json", "--out", "o"]).data.name == "t.json"


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--data", "d", "--out", "o"], "model: required field missing"),
        (["--model", "m", "--data", "d", "--out", "o", "--keep-heads", "1.5"], "keep_heads and keep_ffn must lie"),
        (["--model", "m", "--data", "d", "--out", "o", "--retrain-steps", "-1"], "retrain_steps must be >= 0"),
        (["--model", "m", "--data", "d", "--out", "o", "keep_head=0.5"], "keep_head: unknown key for PruneSpec"),
    ],
)
def test_bad_options_name_the_key(argv, message):
    with pytest.raises(SpecError, match=message):
        _spec(["punct", "prune", *argv])
