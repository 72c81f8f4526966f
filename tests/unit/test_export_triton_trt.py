"""Triton model folders match the ONNX graph; TensorRT says what is missing where it cannot run."""

import importlib.util

import onnx
import pytest

from speechtao.errors import MissingDependencyError
from speechtao.export.onnx_export import export_onnx
from speechtao.export.triton import graph_io, parse_config_pbtxt, write_triton_model


def _tiny():
    from speechtao.asr.checkpoint import LoadedModel
    from speechtao.asr.models import ASRModelConfig, BlockConfig, build_model
    from speechtao.features import FeatureSpec
    from speechtao.text.tokenizers import CharTokenizer

    config = ASRModelConfig(
        FeatureSpec(n_mels=20), (BlockConfig(32, 1, 11, stride=2, residual=False), BlockConfig(32, 2, 7))
    )
    tok = CharTokenizer()
    return LoadedModel(build_model(config, tok.vocab_size).eval(), tok, config)


def test_triton_config_names_shapes_and_types_match_the_graph(tmp_path):
    loaded = _tiny()
    src = export_onnx(loaded, tmp_path / "m.onnx")
    folder = write_triton_model(src, tmp_path / "repo" / "asr_tiny", loaded.tokenizer)
    model_onnx = folder / "1" / "model.onnx"
    assert model_onnx.read_bytes() == src.read_bytes()
    cfg = parse_config_pbtxt((folder / "config.pbtxt").read_text())
    assert cfg["name"] == "asr_tiny" and cfg["platform"] == "onnxruntime_onnx"
    g = onnx.load(str(model_onnx)).graph
    assert [t.name for t in cfg["input"]] == [i.name for i in g.input] == ["audio_signal", "length"]
    assert [t.name for t in cfg["output"]] == [o.name for o in g.output] == ["logprobs", "encoded_lengths"]
    by_name = {t.name: t for t in cfg["input"] + cfg["output"]}
    assert by_name["audio_signal"].dims == (-1, 20, -1) and by_name["audio_signal"].data_type == "TYPE_FP32"
    assert by_name["length"].dims == (-1,) and by_name["length"].data_type == "TYPE_INT64"
    assert by_name["logprobs"].dims == (-1, -1, 29) and by_name["encoded_lengths"].data_type == "TYPE_INT64"
    ins, outs = graph_io(model_onnx)
    assert cfg["input"] == ins and cfg["output"] == outs
    assert (folder / "tokens.txt").read_text().splitlines()[-1] == "<blk> 28"


@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None, reason="tensorrt is installed here")
def test_tensorrt_missing_raises_missing_dependency(tmp_path):
    from speechtao.export.tensorrt import build_engine

    with pytest.raises(MissingDependencyError, match="tensorrt Python package and an NVIDIA GPU"):
        build_engine(tmp_path / "m.onnx", tmp_path / "m.plan")
