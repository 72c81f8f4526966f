"""bench/nlp.py reuses an export only when it was made from the very same weights."""

import importlib.util
import os
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "nlp.py"


@pytest.fixture()
def bench():
    spec = importlib.util.spec_from_file_location("bench_nlp", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_an_export_of_other_weights_is_replaced(bench, tmp_path, monkeypatch):
    made = []

    def fake_export(model, out, int8):
        out.mkdir(parents=True, exist_ok=True)
        (out / bench.model_io.ONNX_INT8_FILE).write_text(model)
        made.append(model)

    monkeypatch.setattr(bench.nlp_export, "export_onnx", fake_export)
    a, b = tmp_path / "a", tmp_path / "b"
    for folder, text in ((a, "A"), (b, "B")):
        folder.mkdir()
        (folder / bench.model_io.MODEL_FILE).write_text(text)
    monkeypatch.setattr(bench.model_io, "load_model", lambda d: (Path(d) / bench.model_io.MODEL_FILE).read_text())
    out = tmp_path / "work"
    bench._export(str(a), out)
    bench._export(str(a), out)  # same weights: reused
    assert made == ["A"]
    bench._export(str(b), out)  # another model into the same work folder: exported again
    assert made == ["A", "B"] and (out / bench.model_io.ONNX_INT8_FILE).read_text() == "B"
    (b / bench.model_io.MODEL_FILE).write_text("B2")  # retrained in place: a newer file at the same path
    os.utime(b / bench.model_io.MODEL_FILE, ns=(1, 1))
    bench._export(str(b), out)
    assert made == ["A", "B", "B2"]
