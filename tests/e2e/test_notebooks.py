"""The guided notebooks under notebooks/ run top to bottom (nbclient, a fresh kernel each), so they never rot.
Every command they run goes through `speechtao`, and a failing command raises inside the notebook."""

import os
from pathlib import Path

import pytest

nbclient = pytest.importorskip("nbclient", reason="nbclient is in the test extra: pip install -e '.[test]'")
import nbformat  # noqa: E402

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("*.ipynb"))


def test_there_are_notebooks():
    assert {p.name for p in NOTEBOOKS} >= {"asr_finetune_your_data.ipynb", "nlp_punctuation.ipynb"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_top_to_bottom(path, tmp_path, monkeypatch):
    monkeypatch.setenv("SPEECHTAO_NOTEBOOK_WORK", str(tmp_path / "work"))
    monkeypatch.setenv("SPEECHTAO_THREADS", "1")
    nb = nbformat.read(path, as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), f"{path}: commit it without outputs"
    client = nbclient.NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    )
    client.execute()
    text = "\n".join(
        o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if "text" in o
    )
    if path.stem == "asr_finetune_your_data":
        assert "WER" in text and "transcript:" in text
        assert (tmp_path / "work" / "export" / "model.int8.onnx").exists()
    else:
        assert (tmp_path / "work" / "punct_export").is_dir() and "capitalization" in text.lower()
    assert os.environ.get("SPEECHTAO_NOTEBOOK_WORK") == str(tmp_path / "work")
