import math
from pathlib import Path

import numpy as np
import pytest
import torch

from speechtao.audio import read_audio
from speechtao.errors import SpecError
from speechtao.features import (
    AudioToMelSpectrogram,
    FeatureSpec,
    hz_to_mel_slaney,
    mel_filterbank,
    mel_to_hz_slaney,
)
from speechtao.spec import spec_from_dict, spec_to_dict

SPEECH = Path(__file__).parents[1] / "fixtures" / "audio_speech_16k.wav"


@pytest.fixture(scope="module")
def speech_batch():
    """Three rows: the fixture, a quieter shifted excerpt, and 0.77 s of low noise; zero-padded to one length."""
    x = read_audio(SPEECH)
    n = len(x)
    audio = torch.zeros(3, n)
    audio[0] = torch.from_numpy(x)
    audio[1, : n - 5000] = torch.from_numpy(x[5000:]) * 0.3
    audio[2, :12345] = torch.from_numpy(np.random.default_rng(0).standard_normal(12345).astype(np.float32) * 0.01)
    return audio, torch.tensor([n, n - 5000, 12345])


def test_defaults_are_nemos():
    spec = FeatureSpec()
    assert (spec.win_length, spec.hop_length, spec.fft_size, spec.n_mels) == (320, 160, 512, 64)
    pre = AudioToMelSpectrogram(spec)
    shapes = {k: tuple(v.shape) for k, v in pre.state_dict().items()}
    assert shapes == {"featurizer.window": (320,), "featurizer.fb": (1, 64, 257)}
    assert FeatureSpec(window_size=0.025, sample_rate=8000).fft_size == 256


@pytest.mark.parametrize(
    "kwargs, lengths, expect_lengths, expect_frames",
    [
        ({}, [16000, 8000, 1234], [100, 50, 7], 112),  # 1 + 16000 // 160 = 101 frames, padded to 112
        ({"pad_to": 0}, [16000, 8000, 1234], [100, 50, 7], 101),
        # exact_pad: STFT frames = samples // hop, of which NeMo counts (samples - hop) // hop as valid
        ({"exact_pad": True, "window_size": 0.025}, [16000, 8001], [99, 49], 112),
        ({"n_mels": 80, "window_stride": 0.02, "pad_to": 8}, [16000], [50], 56),
        ({"frame_splicing": 2}, [3200], [20], 32),
    ],
)
def test_output_shapes_and_lengths(kwargs, lengths, expect_lengths, expect_frames):
    spec = FeatureSpec(dither=0.0, **kwargs)
    pre = AudioToMelSpectrogram(spec).eval()
    audio = torch.randn(len(lengths), max(lengths)) * 0.1
    feats, feat_lengths = pre(audio, torch.tensor(lengths))
    assert feats.shape == (len(lengths), spec.n_features, expect_frames)
    assert feat_lengths.dtype == torch.int64 and feat_lengths.tolist() == expect_lengths
    assert [spec.num_frames(n) for n in lengths] == expect_lengths
    for row, n in enumerate(expect_lengths):
        assert torch.all(feats[row, :, n:] == 0.0)  # frames past the length hold pad_value
        assert torch.all(feats[row, :, :n].abs().sum(0) > 0)


def test_per_feature_normalization_over_valid_frames(speech_batch):
    audio, lengths = speech_batch
    feats, flen = AudioToMelSpectrogram(FeatureSpec(dither=0.0)).eval()(audio, lengths)
    for row in range(3):
        valid = feats[row, :, : flen[row]]
        assert valid.mean(-1).abs().max() < 1e-4
        assert (valid.std(-1) - 1).abs().max() < 1e-3


def test_batched_equals_one_by_one(speech_batch):
    audio, lengths = speech_batch
    pre = AudioToMelSpectrogram(FeatureSpec(dither=0.0, n_mels=80)).eval()
    batched, flen = pre(audio, lengths)
    for row in range(3):
        n = int(lengths[row])
        single, slen = pre(audio[row : row + 1, :n], lengths[row : row + 1])
        assert slen.item() == flen[row].item()
        assert (single[0, :, : slen.item()] - batched[row, :, : slen.item()]).abs().max() < 1e-4


def test_dither_only_in_training(speech_batch):
    audio, lengths = speech_batch
    pre = AudioToMelSpectrogram(FeatureSpec(normalize=None))
    before = audio.clone()
    eval_a, _ = pre.eval()(audio, lengths)
    eval_b, _ = pre(audio, lengths)
    assert torch.equal(eval_a, eval_b)
    torch.manual_seed(0)
    train, _ = pre.train()(audio, lengths)
    assert not torch.equal(train, eval_a)
    assert torch.equal(audio, before)  # input not modified in place
    # dither only moves near-silent cells: the speech frames barely change
    assert (train[0, :, :200] - eval_a[0, :, :200]).abs().median() < 1e-2


def test_a_tone_lights_the_mel_band_around_its_frequency():
    spec = FeatureSpec(dither=0.0, normalize=None, n_mels=40)
    sr = spec.sample_rate
    centres = mel_to_hz_slaney(np.linspace(hz_to_mel_slaney(0.0), hz_to_mel_slaney(sr / 2), 42))[1:-1]
    pre = AudioToMelSpectrogram(spec).eval()
    for freq in (300.0, 1000.0, 2500.0, 6000.0):
        x = torch.sin(2 * math.pi * freq * torch.arange(sr) / sr)[None]
        feats, _ = pre(x, torch.tensor([sr]))
        band = int(feats[0, :, 10:90].mean(-1).argmax())
        assert abs(centres[band] - freq) <= (centres[band + 1] - centres[band - 1]) / 2


def test_slaney_mel_scale_and_filterbank():
    assert hz_to_mel_slaney(np.array(1000.0)) == pytest.approx(15.0)
    assert hz_to_mel_slaney(np.array(6400.0)) == pytest.approx(42.0)  # 27 mels per factor 6.4 above 1 kHz
    f = np.array([0.0, 200.0, 999.0, 1000.0, 4321.0, 8000.0])
    np.testing.assert_allclose(mel_to_hz_slaney(hz_to_mel_slaney(f)), f, atol=1e-9)
    fb = mel_filterbank(16000, 512, 64).numpy()
    assert fb.shape == (64, 257) and fb.min() >= 0
    # Slaney normalization: each triangle of height 2 / (f[i+2] - f[i]) has unit area in Hz
    wide = fb[40:]  # wide bands are sampled finely enough for the sum to approximate the area
    np.testing.assert_allclose(wide.sum(1) * 16000 / 512, 1.0, atol=0.02)
    peaks = fb.argmax(1)
    assert np.all(np.diff(peaks) >= 0)


def test_empty_and_one_frame_utterances_give_no_nan():
    pre = AudioToMelSpectrogram(FeatureSpec(dither=0.0)).eval()
    audio = torch.randn(3, 3200) * 0.1
    feats, flen = pre(audio, torch.tensor([3200, 160, 0]))
    assert flen.tolist() == [20, 1, 0]
    assert torch.isfinite(feats).all()
    assert torch.all(feats[2] == 0)


def test_nemo_config_round_trip_and_key_mapping():
    spec = FeatureSpec(n_mels=80, normalize=None, dither=0.0, window_size=0.025)
    cfg = spec.to_nemo_config()
    assert cfg["_target_"] == "nemo.collections.asr.modules.AudioToMelSpectrogramPreprocessor"
    assert cfg["features"] == 80 and "n_mels" not in cfg and cfg["normalize"] == "NA"
    assert FeatureSpec.from_nemo_config(cfg) == spec
    # a typical QuartzNet config from a .nemo archive (ints where we use floats, deprecated switches)
    qn = {
        "_target_": "nemo.collections.asr.modules.AudioToMelSpectrogramPreprocessor",
        "normalize": "per_feature",
        "window_size": 0.02,
        "sample_rate": 16000,
        "window_stride": 0.01,
        "window": "hann",
        "features": 64,
        "n_fft": 512,
        "frame_splicing": 1,
        "dither": 1e-05,
        "stft_conv": False,
        "lowfreq": 0,
        "pad_to": 16,
    }
    assert FeatureSpec.from_nemo_config(qn) == FeatureSpec(n_fft=512)
    samples = FeatureSpec.from_nemo_config(
        {"n_window_size": 400, "n_window_stride": 160, "window_size": None, "window_stride": None}
    )
    assert (samples.win_length, samples.hop_length, samples.fft_size) == (400, 160, 512)
    legacy = {"cls": "nemo.collections.asr.modules.AudioToMelSpectrogramPreprocessor", "params": {"features": 80}}
    assert FeatureSpec.from_nemo_config(legacy).n_mels == 80


@pytest.mark.parametrize(
    "cfg, message",
    [
        ({"features": 64, "n_mels": 80}, r"preprocessor\.n_mels: unknown"),
        ({"feature": 64}, r"preprocessor\.feature: unknown .*features"),
        ({"_target_": "nemo.collections.asr.modules.AudioToMFCCPreprocessor"}, "AudioToMFCCPreprocessor is not"),
        ({"pad_to": "max"}, "'max' is not supported"),
        ({"normalize": {"fixed_mean": [0.0], "fixed_std": [1.0]}}, "fixed_mean"),
        ({"n_window_size": 400, "window_size": 0.025}, "exactly one of window_size"),
    ],
)
def test_nemo_config_errors_name_the_key(cfg, message):
    with pytest.raises(SpecError, match=message):
        FeatureSpec.from_nemo_config(cfg)


def test_feature_spec_loads_strictly_from_a_recipe():
    spec = spec_from_dict(
        FeatureSpec, {"n_mels": 80, "normalize": None, "log_zero_guard_value": "tiny", "highfreq": 7600}
    )
    assert spec.n_mels == 80 and spec.normalize is None and spec.highfreq == 7600.0
    assert spec_from_dict(FeatureSpec, spec_to_dict(spec)) == spec
    with pytest.raises(SpecError, match="normalize"):
        spec_from_dict(FeatureSpec, {"normalize": "per_utterance"})
    with pytest.raises(SpecError, match="highfreq"):
        spec_from_dict(FeatureSpec, {"highfreq": 9000})


# -- parity with NeMo ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def nemo_preprocessor_cls():
    pytest.importorskip("nemo")
    from nemo.collections.asr.modules import AudioToMelSpectrogramPreprocessor

    return AudioToMelSpectrogramPreprocessor


@pytest.mark.nemo
@pytest.mark.parametrize(
    "kwargs",
    [
        {"n_mels": 64},
        {"n_mels": 80},
        {"n_mels": 64, "normalize": None},
        {"n_mels": 80, "normalize": None},
        {"n_mels": 80, "normalize": "all_features", "exact_pad": True, "window_size": 0.025},
        {"n_mels": 64, "log_zero_guard_type": "clamp", "mag_power": 1.0, "window": "hamming", "frame_splicing": 2},
    ],
)
def test_matches_nemo_preprocessor(nemo_preprocessor_cls, speech_batch, kwargs):
    audio, lengths = speech_batch
    spec = FeatureSpec(dither=0.0, **kwargs)
    cfg = spec.to_nemo_config()
    cfg.pop("_target_")
    ref = nemo_preprocessor_cls(**cfg).eval()
    ours = AudioToMelSpectrogram(spec).eval()  # its own window and filterbank (NeMo's comes from librosa)
    np.testing.assert_allclose(ours.featurizer.fb.numpy(), ref.featurizer.fb.numpy(), atol=1e-7, rtol=1e-5)
    # state dicts load strictly both ways
    AudioToMelSpectrogram(spec).load_state_dict(ref.state_dict(), strict=True)
    ref.load_state_dict(ours.state_dict(), strict=True)
    with torch.no_grad():
        expect, expect_len = ref(input_signal=audio.clone(), length=lengths)
        got, got_len = ours(audio, lengths)
    assert torch.equal(got_len, expect_len)
    assert got.shape == expect.shape
    assert (got - expect).abs().max().item() <= 1e-4


@pytest.mark.slow
def test_exports_to_onnx_with_dynamic_batch_and_length(tmp_path, speech_batch):
    """The dynamo exporter (opset 18) handles the STFT; ONNX Runtime matches PyTorch on another shape."""
    ort = pytest.importorskip("onnxruntime")
    audio, lengths = speech_batch
    pre = AudioToMelSpectrogram(FeatureSpec(dither=0.0)).eval()
    path = tmp_path / "mel.onnx"
    batch, time = torch.export.Dim("batch"), torch.export.Dim("time")
    torch.onnx.export(
        pre,
        (audio[:2], lengths[:2]),
        str(path),
        input_names=["audio", "lengths"],
        output_names=["feats", "feat_lengths"],
        dynamo=True,
        opset_version=18,
        dynamic_shapes={"audio": {0: batch, 1: time}, "lengths": {0: batch}},
    )
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x, n = audio[:, :30000].contiguous(), torch.tensor([30000, 25000, 12345])
    feats, feat_lengths = session.run(None, {"audio": x.numpy(), "lengths": n.numpy()})
    expect, expect_lengths = pre(x, n)
    assert feat_lengths.tolist() == expect_lengths.tolist()
    np.testing.assert_allclose(feats, expect.numpy(), atol=2e-4, rtol=0)
