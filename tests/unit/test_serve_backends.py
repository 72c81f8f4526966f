"""Serving backends: ONNX Runtime and PyTorch give the same log-probs for the same audio; the decoding-only
vocabulary of an ONNX file decodes like the model's tokenizer; a model repository finds and names its models."""

import numpy as np
import pytest
import torch

from speechtao.asr.checkpoint import load_model, model_payload, save_model
from speechtao.asr.models import ASRModelConfig, BlockConfig, build_model
from speechtao.errors import CheckpointError, InputError
from speechtao.features import FeatureSpec
from speechtao.serve.backends import OnnxBackend, TorchBackend, VocabTokenizer, load_backend
from speechtao.text.tokenizers import CharTokenizer, SentencePieceTokenizer


@pytest.fixture(scope="module")
def small_models(tmp_path_factory):
    """An untrained 2-block model (stride 2) as a checkpoint and as ONNX with metadata."""
    from speechtao.export.onnx_export import export_onnx

    d = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    config = ASRModelConfig(
        preprocessor=FeatureSpec(n_mels=16, dither=0.0),
        blocks=(BlockConfig(32, 1, 5, stride=2, residual=False), BlockConfig(32, 1, 1, separable=False)),
    )
    save_model(d / "small.ckpt", model_payload(build_model(config, 28).eval(), CharTokenizer()))
    export_onnx(load_model(d / "small.ckpt"), d / "small.onnx", tokens_txt=False)
    return d


def test_onnx_and_torch_backends_agree(small_models, rng):
    onnx_b, torch_b = load_backend(small_models / "small.onnx"), load_backend(small_models / "small.ckpt")
    assert isinstance(onnx_b, OnnxBackend) and isinstance(torch_b, TorchBackend)
    for b in (onnx_b, torch_b):
        assert (b.sample_rate, b.subsampling_factor, b.samples_per_frame) == (16000, 2, 320)
    audio = np.zeros((2, 16000), np.float32)
    audio[0] = 0.1 * rng.standard_normal(16000)
    audio[1, :9000] = 0.1 * rng.standard_normal(9000)
    lengths = np.array([16000, 9000])
    lp_o, n_o = onnx_b(audio, lengths)
    lp_t, n_t = torch_b(audio, lengths)
    assert n_o.tolist() == n_t.tolist() == [50, 28] and lp_o.shape[2] == lp_t.shape[2] == 29  # T' may differ (padding)
    for b, n in enumerate(n_t):
        np.testing.assert_allclose(lp_o[b, :n], lp_t[b, :n], atol=1e-4)
    assert onnx_b.tokenizer.vocab == CharTokenizer().vocab and onnx_b.provider == "CPUExecutionProvider"


def test_vocab_tokenizer_decodes_like_the_models_tokenizers():
    char = CharTokenizer()
    ids = char.encode("turn the light on")
    v = VocabTokenizer(char.vocab, subwords=False)
    assert v.decode(ids) == char.decode(ids) and v.word_boundaries(ids) == char.word_boundaries(ids)
    assert v.blank_id == char.blank_id
    sp = SentencePieceTokenizer.train(["turn the light on", "turn it off", "the light is on now"] * 20, vocab_size=30)
    ids = sp.encode("turn the light on")
    v = VocabTokenizer(sp.vocab, subwords=True)
    assert v.decode(ids) == sp.decode(ids) and v.word_boundaries(ids) == sp.word_boundaries(ids)


def test_backend_errors_name_the_fix(small_models, tmp_path):
    with pytest.raises(CheckpointError, match="model not found"):
        load_backend(tmp_path / "none.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"not a protobuf at all")
    with pytest.raises(CheckpointError, match="speechtao asr export"):
        load_backend(tmp_path / "junk.onnx")
    from speechtao.export.onnx_export import read_metadata, set_metadata

    bare = tmp_path / "bare.onnx"
    bare.write_bytes((small_models / "small.onnx").read_bytes())
    set_metadata(bare, {k: v for k, v in read_metadata(bare).items() if k != "vocabulary"})
    with pytest.raises(CheckpointError, match="lacks vocabulary"):
        load_backend(bare)
    with pytest.raises(InputError, match="use cpu, cuda or auto"):
        load_backend(small_models / "small.onnx", device="tpu")


def test_model_repository_names_default_and_unknown(small_models, tmp_path):
    from speechtao.serve.repository import ModelNotFound, ModelRepository

    repo_dir = tmp_path / "repo"
    repo_dir.mkdir()
    (repo_dir / "a.onnx").write_bytes((small_models / "small.onnx").read_bytes())
    (repo_dir / "b.ckpt").write_bytes((small_models / "small.ckpt").read_bytes())
    (repo_dir / "notes.txt").write_text("ignored")
    repo = ModelRepository.load(repo_dir)
    assert repo.default_asr == "a" and repo.asr("").name == "a" and repo.asr("b").name == "b"
    with pytest.raises(ModelNotFound, match="'c' is not served here \\(available: a, b"):
        repo.asr("c")
    with pytest.raises(ModelNotFound, match="no punct model is served"):
        repo.nlp("punct")
    assert ModelRepository.load(repo_dir, default_asr="b").default_asr == "b"
    with pytest.raises(ModelNotFound, match="--default-model 'x'"):
        ModelRepository.load(repo_dir, default_asr="x")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no models found"):
        ModelRepository.load(tmp_path / "empty")
    with pytest.raises(InputError, match="not a folder"):
        ModelRepository.load(tmp_path / "missing")


@pytest.mark.parametrize("model_file", ["small.onnx", "small.ckpt"])
def test_stream_normalization_matches_the_models_own_on_a_first_window(small_models, model_file, rng):
    """A chunk window with no earlier frames is normalized over itself: exactly what the model's front end does;
    later windows use the running statistics of every frame counted so far."""
    from speechtao.serve.recognizer import Recognizer, StreamingOptions
    from speechtao.serve.stream_norm import forward_stream_normalized

    rec = Recognizer.from_path(str(small_models / model_file), StreamingOptions(chunk_ms=320, right_context_ms=320))
    x = (0.1 * rng.standard_normal(16000)).astype(np.float32)
    s = rec.create_stream()
    s.accept_waveform(16000, x)
    n = rec.chunk + rec.right
    lp, lens = forward_stream_normalized(rec.backend, [(s.stats, 0, 0)], x[None, :n].copy(), np.array([n]))
    ref, ref_lens = rec.backend(x[None, :n].copy(), np.array([n]))
    assert lens.tolist() == ref_lens.tolist()
    np.testing.assert_allclose(lp[0, : lens[0]], ref[0, : lens[0]], atol=2e-4)
    # a second window overlapping the first: only its new frames are added to the running sums
    raw, flen = rec.backend.features.raw(x[None, : n + rec.chunk].copy(), np.array([n + rec.chunk]))
    forward_stream_normalized(
        rec.backend, [(s.stats, 0, 0)], x[None, : n + rec.chunk].copy(), np.array([n + rec.chunk])
    )
    counted = raw[0, :, : flen[0]].astype(np.float64)
    assert s.stats.frames == counted.shape[1]
    mean, std = s.stats.mean_std(counted, "per_feature")
    np.testing.assert_allclose(mean[:, 0], counted.mean(1), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(std[:, 0], counted.std(1, ddof=1) + 1e-5, rtol=1e-7)


def test_an_object_without_the_backend_protocol_is_refused_by_name():
    from speechtao.errors import InputError
    from speechtao.serve.recognizer import Recognizer

    class AudioOnly:
        sample_rate, hop_length, subsampling_factor, samples_per_frame = 16000, 160, 2, 320

        def __call__(self, audio, lengths):
            return audio, lengths

    with pytest.raises(InputError, match="AudioOnly is not an acoustic backend: it lacks tokenizer, features, "):
        Recognizer(AudioOnly())


def test_repository_serves_int8_exports_by_default_and_skips_quantization_intermediates(small_models, tmp_path):
    """An export folder as `asr export --format onnx-int8` leaves it: model.onnx (FP32), model.int8.onnx (its
    metadata says "quantization"), model.int8.fp32.onnx (the optimized FP32 graph for TensorRT), model.int8.calib."""
    import shutil

    from speechtao.export.onnx_export import read_metadata, set_metadata
    from speechtao.serve.repository import ModelRepository

    for name in ("model.onnx", "model.int8.onnx", "model.int8.fp32.onnx"):
        shutil.copy(small_models / "small.onnx", tmp_path / name)
    int8 = tmp_path / "model.int8.onnx"
    set_metadata(int8, {**read_metadata(int8), "quantization": '{"format": "QDQ"}'})
    (tmp_path / "model.int8.calib").write_text("TRT-8600-EntropyCalibration2\n")
    repo = ModelRepository.load(tmp_path)
    assert list(repo.asr_models) == ["model.int8", "model"] and repo.default_asr == "model.int8"
    assert repo.asr_models["model.int8"].backend.info("model.int8").precision == "int8"
    # a lone X.fp32.onnx (no X.onnx beside it) is a model of its own
    (tmp_path / "model.int8.onnx").unlink()
    assert sorted(ModelRepository.load(tmp_path).asr_models) == ["model", "model.int8.fp32"]
