"""Checkpoint retention (last K + best K by metric), the index, atomic writes and refusal of bad files."""

import json

import pytest
import torch

from speechtao.errors import CheckpointError
from speechtao.train.checkpoint import CheckpointManager, load_checkpoint


def payload(step):
    return {"state_dict": {"w": torch.full((2,), float(step))}, "train_state": {"step": step}}


def test_keeps_last_two_and_best_one(tmp_path):
    m = CheckpointManager(tmp_path, keep_last=2, keep_best=1, mode="min")
    for step, wer in [(1, 0.5), (2, 0.3), (3, 0.4), (4, None), (5, None)]:
        m.save(step, payload(step), wer)
    assert sorted(p.name for p in tmp_path.glob("step-*.pt")) == [
        "step-00000002.pt",
        "step-00000004.pt",
        "step-00000005.pt",
    ]
    index = json.loads((tmp_path / "index.json").read_text())
    assert index["best"] == "step-00000002.pt" and [e["step"] for e in index["checkpoints"]] == [2, 4, 5]
    assert m.latest().name == "step-00000005.pt"
    assert load_checkpoint(m.latest())["train_state"]["step"] == 5
    again = CheckpointManager(tmp_path, keep_last=2, keep_best=1)  # state comes back from the index
    assert again.best_file() == "step-00000002.pt" and again.latest() == m.latest()
    (tmp_path / "step-00000005.pt").unlink()  # a user deleted the newest: fall back to the previous
    assert again.latest().name == "step-00000004.pt"
    assert not list(tmp_path.glob(".*.tmp"))  # no temporary files left behind


def test_max_mode_keeps_highest(tmp_path):
    m = CheckpointManager(tmp_path, keep_last=1, keep_best=1, mode="max")
    for step, acc in [(1, 0.9), (2, 0.7), (3, 0.8)]:
        m.save(step, payload(step), acc)
    assert m.best_file() == "step-00000001.pt" and {p.name for p in tmp_path.glob("step-*.pt")} == {
        "step-00000001.pt",
        "step-00000003.pt",
    }


def test_foreign_and_missing_files_refused(tmp_path):
    torch.save({"state_dict": {}}, tmp_path / "weights.pt")
    with pytest.raises(CheckpointError, match="weights.pt: not a speechtao training checkpoint"):
        load_checkpoint(tmp_path / "weights.pt")
    with pytest.raises(CheckpointError, match="nothing.pt: checkpoint not found"):
        load_checkpoint(tmp_path / "nothing.pt")
    (tmp_path / "index.json").write_text("{broken")
    with pytest.raises(CheckpointError, match="index.json: unreadable checkpoint index"):
        CheckpointManager(tmp_path)
