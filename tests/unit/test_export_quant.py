"""INT8: static QDQ export on real speech, TensorRT calibration caches, QAT ranges carried into the export."""

import contextlib
import io
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
from speechtao.export.qat import (
    QATConv1d,
    checkpoint_ranges,
    fake_quant_activation,
    observe_ranges,
    onnx_range_overrides,
    prepare_qat,
    qat_payload,
    qat_ranges,
    strip_qat,
)
from speechtao.export.quantize import (
    QuantOptions,
    argmax_agreement,
    calibration_features,
    float_end_nodes,
    hex_to_scale,
    quantize_model,
    read_trt_cache,
    scale_to_hex,
    write_trt_cache,
)

SPEECH = Path(__file__).parents[1] / "fixtures" / "audio_speech_16k.wav"  # 2.55 s of real speech


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    d = tmp_path_factory.mktemp("int8")
    manifest = d / "calib.jsonl"
    lines = [
        {"audio_filepath": str(SPEECH), "duration": 2.548, "text": "x"},
        {"audio_filepath": str(SPEECH), "offset": 0.3, "duration": 1.5, "text": "x"},
        {"audio_filepath": str(SPEECH), "offset": 1.0, "duration": 1.2, "text": "x"},
    ]
    manifest.write_text("".join(json.dumps(x) + "\n" for x in lines))
    torch.manual_seed(0)  # the preset's random weights: unseeded, the 90% argmax agreement below held for most
    loaded = load_model("quartznet_small")  # draws but not all (0.898 was seen)
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
    n_convs = sum(isinstance(m, torch.nn.Conv1d) for m in loaded.model.modules())
    assert len(int8_weights) == n_convs - 2  # the first conv and the CTC classifier stay float
    assert result.int8_path.stat().st_size < 0.4 * fp32.stat().st_size
    meta = read_metadata(result.int8_path)
    quant = json.loads(meta["quantization"])
    assert meta["vocab_size"] == "29" and quant["method"] == "entropy"
    assert quant["activations"] == "uint8 per-tensor asymmetric"
    assert quant["float_nodes"] == float_end_nodes(result.fp32_path, ("Conv",))
    convs = [n for n in onnx.load(str(result.fp32_path)).graph.node if n.op_type == "Conv"]
    assert quant["float_nodes"] == [convs[0].name, convs[-1].name] and convs[-1].name.startswith("/decoder/")


def test_ort_runs_every_quantized_conv_as_an_integer_conv(setup, tmp_path):
    """The speed of INT8 rests on ORT fusing each DQ -> Conv -> Q group into a QLinearConv (depthwise convs too)."""
    _, _, _, result = setup
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.optimized_model_filepath = str(tmp_path / "opt.onnx")
    opts.log_severity_level = 3
    ort.InferenceSession(str(result.int8_path), opts, providers=["CPUExecutionProvider"])
    ops = [n.op_type for n in onnx.load(str(tmp_path / "opt.onnx")).graph.node]
    n_int8 = sum(
        1
        for n in onnx.load(str(result.int8_path)).graph.node
        if n.op_type == "Conv"
        and n.name not in json.loads(read_metadata(result.int8_path)["quantization"])["float_nodes"]
    )
    assert ops.count("QLinearConv") == n_int8 > 0
    assert ops.count("Conv") + ops.count("FusedConv") <= 2  # only the float first and last convs


def test_quant_options_reject_unknown_activation_type():
    with pytest.raises(InputError, match=r"activation type 'int4' is not one of \['uint8', 'int8'\]"):
        QuantOptions(activations="int4")


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
    assert path.read_text().splitlines() == [
        "TRT-8601-EntropyCalibration2",
        f"x: {scale_to_hex(0.02)}",
        f"/a/b:0: {scale_to_hex(0.001)}",
    ]
    assert read_trt_cache(path).scales["/a/b:0"] == pytest.approx(0.001, rel=1e-7)
    (tmp_path / "bad.calib").write_text("TRT-8601-EntropyCalibration2\nx: 3c0\n")
    with pytest.raises(InputError, match=r"bad.calib:2: 'x: 3c0'"):
        read_trt_cache(tmp_path / "bad.calib")


@pytest.mark.parametrize("lo,hi", [(-1.3, 2.7), (0.0, 5.0), (0.4, 3.0), (-2.0, -0.5)])
def test_fake_quant_activation_matches_onnxruntime_qdq(lo, hi):
    from onnxruntime.quantization.quant_utils import compute_scale_zp

    # random values (no exact rounding ties, where x * (1 / scale) and x / scale may round apart), some clipped
    x = torch.from_numpy(np.random.default_rng(0).uniform(lo - 1.0, hi + 1.0, 997).astype(np.float32))
    zp, scale = compute_scale_zp(np.float32(lo), np.float32(hi), np.int32(0), np.int32(255))
    q = np.clip(np.round(x.numpy() / np.float32(scale)) + int(zp), 0, 255)
    expected = (q - int(zp)) * np.float32(scale)
    got = fake_quant_activation(x, lo, hi).numpy()
    assert np.abs(got - expected).max() <= 1e-6 * max(abs(lo), abs(hi), 1.0)


def test_checkpoint_ranges_read_new_and_legacy_payloads():
    assert checkpoint_ranges({"qat": {"act_range": {"a.conv": [-0.5, 2.0]}}}) == {"a.conv": (-0.5, 2.0)}
    assert checkpoint_ranges({"qat": {"act_amax": {"a.conv": 1.5}}}) == {"a.conv": (-1.5, 1.5)}
    assert checkpoint_ranges({"preset": "quartznet_small"}) == {} and checkpoint_ranges(None) == {}


def test_qat_fake_quant_and_ranges_carry_into_the_qdq_export(setup, tmp_path):
    loaded, fp32, items, _ = setup
    import copy

    model = copy.deepcopy(loaded.model).eval()  # observing ranges leaves the weights, so `fp32` is its export
    feats = torch.from_numpy(items[0][0])
    lengths = torch.from_numpy(items[0][1])
    with torch.no_grad():
        ref, _ = model.forward_features(feats, lengths)
    convs = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Conv1d)]
    names = prepare_qat(model)
    assert names == convs[1:-1]  # the first conv and the classifier stay float, as in the export
    assert len(names) == sum(isinstance(m, QATConv1d) for m in model.modules())
    ranges = observe_ranges(model, items)  # BatchNorm statistics stay as they are
    assert ranges == qat_ranges(model)
    assert set(ranges) == set(names) and all(lo < hi for lo, hi in ranges.values())
    assert any(lo >= 0 for lo, _ in ranges.values())  # masked ReLU outputs: asymmetric ranges matter
    with torch.no_grad():
        fq, _ = model.forward_features(feats, lengths)
    assert 0 < (fq - ref).abs().max() < 0.2  # quantization noise: present, and small
    loss = model.forward_features(feats, lengths)[0].sum()
    loss.backward()  # straight-through gradients reach the weights
    assert model.encoder.encoder[1].mconv[0].conv.weight.grad.abs().sum() > 0
    saved = checkpoint_ranges(qat_payload({"extra": {}}, model)["extra"])
    assert saved == ranges
    assert set(strip_qat(model)) == set(names) and not any(isinstance(m, QATConv1d) for m in model.modules())
    assert set(model.state_dict()) == set(loaded.model.state_dict())

    result = quantize_model(
        fp32, tmp_path / "qat.int8.onnx", items, range_overrides=lambda p: onnx_range_overrides(str(p), model, saved)
    )
    graph = onnx.load(str(result.fp32_path)).graph
    conv_nodes = [n for n in graph.node if n.op_type == "Conv"]
    assert set(result.overridden) == {n.input[0] for n in conv_nodes[1:-1]}  # convs reading one tensor share it
    g = onnx.load(str(result.int8_path)).graph
    inits = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    checked = 0
    for node in g.node:  # the QuantizeLinear of each overridden tensor uses ORT's UINT8 grid of the QAT range
        if node.op_type == "QuantizeLinear" and node.input[0] in result.overridden:
            lo, hi = result.ranges[node.input[0]]
            lo, hi = min(lo, 0.0), max(hi, 0.0)
            assert float(inits[node.input[1]]) == pytest.approx((hi - lo) / 255, rel=1e-5)
            assert int(inits[node.input[2]]) == round(-lo / ((hi - lo) / 255))
            checked += 1
    assert checked == len(result.overridden)


def test_entropy_thresholds_equal_onnxruntime_search():
    """Our vectorized entropy search picks onnxruntime's thresholds on histograms that grew over batches."""
    from onnxruntime.quantization.calibrate import HistogramCollector

    from speechtao.export.quantize import entropy_thresholds

    rng = np.random.default_rng(0)
    batches = [
        {"a": [rng.normal(size=2000).astype(np.float32) * s], "b": [np.maximum(rng.normal(size=3000), 0) * s]}
        for s in (1.0, 1.5, 3.0, 0.5)
    ]
    collector = HistogramCollector(
        method="entropy", symmetric=True, num_bins=128, num_quantized_bins=128, percentile=99.99, scenario="same"
    )
    with contextlib.redirect_stdout(io.StringIO()):
        for b in batches:
            collector.collect({k: [np.asarray(v[0], dtype=np.float32)] for k, v in b.items()})
        ref = collector.compute_entropy()
    ours = entropy_thresholds(collector.histogram_dict, 128)
    assert collector.histogram_dict["a"][0].size > 128  # the histogram grew past the first batch's bins
    for name in ref:
        assert float(ours[name][0]) == float(ref[name][0]) and float(ours[name][1]) == float(ref[name][1])
    few = entropy_thresholds(collector.histogram_dict, 128, max_candidates=20)  # subsampled: close, not exact
    assert abs(float(few["a"][1]) - float(ref["a"][1])) < 0.1 * float(ref["a"][1])
