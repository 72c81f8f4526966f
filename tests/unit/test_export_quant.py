"""INT8: static QDQ export on real speech, TensorRT calibration caches, QAT ranges carried into the export."""

import json
import struct
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

from speechtao.asr.checkpoint import load_model
from speechtao.errors import InputError
from speechtao.export.onnx_export import export_onnx, ort_session, read_metadata
from speechtao.export.qat import (QATConv1d, observe_ranges, onnx_range_overrides, prepare_qat, qat_ranges,
                                  strip_qat)
from speechtao.export.quantize import (argmax_agreement, calibration_features, hex_to_scale,
                                       quantize_model, read_trt_cache, scale_to_hex, write_trt_cache)

SPEECH = Path(__file__).parents[1] / "fixtures" / "audio_speech_16k.wav"  # 2.55 s of real speech


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    d = tmp_path_factory.mktemp("int8")
    manifest = d / "calib.jsonl"
    lines = [{"audio_filepath": str(SPEECH), "duration": 2.548, "text": "x"},
             {"audio_filepath": str(SPEECH), "offset": 0.3, "duration": 1.5, "text": "x"},
             {"audio_filepath": str(SPEECH), "offset": 1.0, "duration": 1.2, "text": "x"}]
    manifest.write_text("".join(json.dumps(x) + "\n" for x in lines))
    loaded = load_model("quartznet_small")
    fp32 = export_onnx(loaded, d / "model.onnx")
    items = calibration_features(loaded, manifest)
    result = quantize_model(fp32, d / "model.int8.onnx", items)
    return loaded, fp32, items, result


def test_int8_runs_and_mostly_agrees_with_fp32_on_speech(setup):
    loaded, fp32, items, result = setup
    s8, s32 = ort_session(result.int8_path), ort_session(fp32)
    for feats, n in items:
        a = s8.run(None, {"audio_signal": feats, "length": n})
        b = s32.run(None, {"audio_signal": feats, "length": n})
        assert a[0].shape == b[0].shape and (a[1] == b[1]).all()
        assert argmax_agreement(a[0], b[0], b[1]) >= 0.9
        assert np.abs(a[0] - b[0]).max() < 0.05
    g = onnx.load(str(result.int8_path)).graph
    ops = {n.op_type for n in g.node}
    assert {"QuantizeLinear", "DequantizeLinear", "Conv"} <= ops
    int8_weights = [i for i in g.initializer if i.data_type == onnx.TensorProto.INT8 and len(i.dims) == 3]
    assert len(int8_weights) == sum(isinstance(m, torch.nn.Conv1d) for m in loaded.model.modules())
    assert result.int8_path.stat().st_size < 0.4 * fp32.stat().st_size
    meta = read_metadata(result.int8_path)
    assert meta["vocab_size"] == "29" and json.loads(meta["quantization"])["method"] == "minmax"


def test_trt_cache_parses_back_to_the_scales(setup):
    _, _, _, result = setup
    cache = read_trt_cache(result.trt_cache_path)
    assert result.trt_cache_path.read_text().splitlines()[0] == "TRT-8601-EntropyCalibration2"
    assert cache.version == "8601" and cache.algorithm == "EntropyCalibration2"
    graph = onnx.load(str(result.fp32_path)).graph
    produced = {o for n in graph.node for o in n.output}
    conv_inputs = {n.input[0] for n in graph.node if n.op_type == "Conv"}
    assert conv_inputs <= set(cache.scales) <= produced  # activations only, every conv input among them
    for name, scale in cache.scales.items():
        lo, hi = result.ranges[name]
        assert scale == pytest.approx(max(abs(lo), abs(hi)) / 127, rel=1e-6)


def test_trt_cache_format_by_hand(tmp_path):
    assert scale_to_hex(1.0) == "3f800000" and scale_to_hex(0.0078125) == "3c000000"
    assert hex_to_scale("3c010204") == struct.unpack(">f", bytes.fromhex("3c010204"))[0]
    path = write_trt_cache(tmp_path / "c.calib", {"x": (-2.54, 1.0), "/a/b:0": (0.0, 0.127)})
    assert path.read_text().splitlines() == ["TRT-8601-EntropyCalibration2", f"x: {scale_to_hex(0.02)}",
                                             f"/a/b:0: {scale_to_hex(0.001)}"]
    assert read_trt_cache(path).scales["/a/b:0"] == pytest.approx(0.001, rel=1e-7)
    (tmp_path / "bad.calib").write_text("TRT-8601-EntropyCalibration2\nx: 3c0\n")
    with pytest.raises(InputError, match=r"bad.calib:2: 'x: 3c0'"):
        read_trt_cache(tmp_path / "bad.calib")


def test_qat_fake_quant_and_ranges_carry_into_the_qdq_export(setup, tmp_path):
    loaded, fp32, items, _ = setup
    import copy

    model = copy.deepcopy(loaded.model).eval()  # observing ranges leaves the weights, so `fp32` is its export
    feats = torch.from_numpy(items[0][0])
    lengths = torch.from_numpy(items[0][1])
    with torch.no_grad():
        ref, _ = model.forward_features(feats, lengths)
    names = prepare_qat(model)
    assert len(names) == sum(isinstance(m, QATConv1d) for m in model.modules()) > 0
    ranges = observe_ranges(model, items)  # BatchNorm statistics stay as they are
    assert ranges == qat_ranges(model)
    assert set(ranges) == set(names) and all(v > 0 for v in ranges.values())
    with torch.no_grad():
        fq, _ = model.forward_features(feats, lengths)
    assert 0 < (fq - ref).abs().max() < 0.2  # quantization noise: present, and small
    loss = model.forward_features(feats, lengths)[0].sum()
    loss.backward()  # straight-through gradients reach the weights
    assert model.decoder.decoder_layers[0].weight.grad.abs().sum() > 0
    assert set(strip_qat(model)) == set(names) and not any(isinstance(m, QATConv1d) for m in model.modules())
    assert set(model.state_dict()) == set(loaded.model.state_dict())

    result = quantize_model(fp32, tmp_path / "qat.int8.onnx", items,
                            range_overrides=lambda p: onnx_range_overrides(str(p), model, ranges))
    conv_inputs = {n.input[0] for n in onnx.load(str(result.fp32_path)).graph.node if n.op_type == "Conv"}
    assert set(result.overridden) == conv_inputs  # every conv matched (convs reading one tensor share it)
    g = onnx.load(str(result.int8_path)).graph
    inits = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    checked = 0
    for node in g.node:  # the QuantizeLinear of each overridden tensor uses the QAT scale
        if node.op_type == "QuantizeLinear" and node.input[0] in result.overridden:
            hi = result.ranges[node.input[0]][1]
            assert float(inits[node.input[1]]) == pytest.approx(hi / 127, rel=1e-5)
            checked += 1
    assert checked == len(result.overridden)
