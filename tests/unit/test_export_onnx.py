"""ONNX FP32 export: ORT matches PyTorch, fixed names, dynamic axes, metadata inside the file."""

import json

import numpy as np
import onnx
import pytest
import torch

from speechtao.asr.checkpoint import load_model
from speechtao.export.onnx_export import (
    INPUT_NAMES,
    OUTPUT_NAMES,
    ExportCheckError,
    compare_with_torch,
    example_inputs,
    export_onnx,
    ort_session,
    read_metadata,
)
from speechtao.spec import spec_to_dict


@pytest.fixture(scope="module", params=["quartznet_small", "citrinet_small", "jasper_small"])
def exported(request, tmp_path_factory):
    loaded = load_model(request.param)
    path = export_onnx(loaded, tmp_path_factory.mktemp(request.param) / "model.onnx")
    return loaded, path


def test_onnx_matches_pytorch_on_other_batch_shapes(exported):
    loaded, path = exported
    feats, lengths = example_inputs(loaded.config.feat_in, frames=(411, 64, 250, 17), seed=5)
    res = compare_with_torch(path, loaded.model, feats, lengths)
    assert res.lengths_equal and res.max_abs_diff <= 1e-4
    out = ort_session(path).run(None, {"audio_signal": feats[:1, :, :64].numpy(), "length": np.array([64])})
    assert out[0].shape == (1, -(-64 // loaded.model.subsampling_factor), loaded.tokenizer.vocab_size + 1)


def test_names_and_dynamic_axes(exported):
    _, path = exported
    g = onnx.load(str(path)).graph
    assert [i.name for i in g.input] == list(INPUT_NAMES) == ["audio_signal", "length"]
    assert [o.name for o in g.output] == list(OUTPUT_NAMES) == ["logprobs", "encoded_lengths"]
    feats = g.input[0].type.tensor_type
    assert feats.elem_type == onnx.TensorProto.FLOAT and g.input[1].type.tensor_type.elem_type == onnx.TensorProto.INT64
    dims = feats.shape.dim
    assert dims[0].dim_param and dims[2].dim_param and not dims[1].dim_param  # (batch, n_mels fixed, time)
    assert onnx.load(str(path)).opset_import[0].version >= 18


def test_metadata_has_what_a_runtime_needs(exported):
    loaded, path = exported
    meta = read_metadata(path)
    assert meta["vocab_size"] == str(loaded.tokenizer.vocab_size + 1)  # sherpa-onnx: with the blank
    assert meta["subsampling_factor"] == str(loaded.model.subsampling_factor)
    assert json.loads(meta["vocabulary"]) == list(loaded.tokenizer.vocab)
    assert json.loads(meta["features"]) == spec_to_dict(loaded.config.preprocessor)
    assert meta["sample_rate"] == "16000" and meta["normalize_type"] == "per_feature"
    assert meta["model_type"] == "EncDecCTCModel" and meta["speechtao_version"]
    assert json.loads(meta["model_config"]) == loaded.config.to_dict()
    tokens = (path.parent / "tokens.txt").read_text().splitlines()
    assert tokens[0] == "▁ 0" and tokens[-1] == f"<blk> {loaded.tokenizer.vocab_size}"


def tiny_loaded():
    """A two-block QuartzNet-style model (exports in well under a second)."""
    from speechtao.asr.checkpoint import LoadedModel
    from speechtao.asr.models import ASRModelConfig, BlockConfig, build_model
    from speechtao.features import FeatureSpec
    from speechtao.text.tokenizers import CharTokenizer

    config = ASRModelConfig(
        FeatureSpec(n_mels=16), (BlockConfig(32, 1, 11, stride=2, residual=False), BlockConfig(32, 2, 7))
    )
    tok = CharTokenizer()
    return LoadedModel(build_model(config, tok.vocab_size).eval(), tok, config)


def test_failed_check_removes_the_file(tmp_path):
    loaded = tiny_loaded()
    export_onnx(loaded, tmp_path / "ok.onnx")
    with pytest.raises(ExportCheckError, match="does not reproduce PyTorch"):
        export_onnx(loaded, tmp_path / "m.onnx", tolerance=-1.0)  # any difference fails
    assert not (tmp_path / "m.onnx").exists()
    torch.manual_seed(0)
    changed = tiny_loaded().model  # same architecture, other random weights
    feats, lengths = example_inputs(16)
    assert compare_with_torch(tmp_path / "ok.onnx", changed, feats, lengths).max_abs_diff > 1e-3


def test_check_ignores_log_probs_no_decoder_reads(tmp_path):
    """An over-confident model (logits ~100s) passes: only log-probs above log(1e-6) are compared."""
    from speechtao.export.onnx_export import LOGPROB_FLOOR

    loaded = tiny_loaded()
    with torch.no_grad():
        for p in loaded.model.decoder.parameters():
            p.mul_(300.0)
    path = export_onnx(loaded, tmp_path / "sharp.onnx")  # checked inside
    feats, lengths = example_inputs(16, frames=(120,), seed=2)
    lp = ort_session(path).run(None, {"audio_signal": feats.numpy(), "length": lengths.numpy()})[0]
    with torch.no_grad():
        ref = loaded.model.forward_features(feats, lengths)[0].numpy()
    assert lp.min() < 10 * LOGPROB_FLOOR  # log-probs far below the floor exist ...
    assert (lp.argmax(-1) == ref.argmax(-1)).all()  # ... and the decoding is the same


@pytest.mark.slow
def test_dynamo_exporter_gives_the_same_interface(tmp_path):
    loaded = tiny_loaded()
    path = export_onnx(loaded, tmp_path / "d.onnx", dynamo=True)  # checked against PyTorch inside
    g = onnx.load(str(path)).graph
    assert [i.name for i in g.input] == list(INPUT_NAMES) and [o.name for o in g.output] == list(OUTPUT_NAMES)
    assert read_metadata(path)["vocab_size"] == "29"
    feats, lengths = example_inputs(16, frames=(90, 300, 7), seed=3)
    assert compare_with_torch(path, loaded.model, feats, lengths).max_abs_diff <= 1e-4
