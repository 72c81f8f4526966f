import math
from pathlib import Path

import numpy as np
import pytest
import torch

from speechtao.audio import read_audio
from speechtao.augment import (
    AugmentSpec,
    SpecAugment,
    SpecAugmentSpec,
    WaveAugmenter,
    add_noise,
    coloured_noise,
    gain,
    reverb_impulse_response,
    reverberate,
    speed_perturb,
    telephone_band,
)
from speechtao.errors import SpecError
from speechtao.spec import spec_from_dict

SPEECH = Path(__file__).parents[1] / "fixtures" / "audio_speech_16k.wav"
SR = 16000


def tone(freq, seconds=1.0, amp=0.5, sr=SR):
    return (amp * np.sin(2 * np.pi * freq * np.arange(int(sr * seconds)) / sr)).astype(np.float32)


def power_db(x):
    return 10 * math.log10(float(np.mean(np.square(x, dtype=np.float64))) + 1e-30)


def band_db(x, freq, sr=SR):
    """Level of the spectrum around ``freq`` (Hann-windowed, +-20 Hz)."""
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x)))) / len(x)
    hz = np.fft.rfftfreq(len(x), 1 / sr)
    return 20 * math.log10(spectrum[np.abs(hz - freq) <= 20].max() + 1e-30)


# -- SpecAugment ------------------------------------------------------------------------------------------


def features(batch=3, channels=40, frames=100):
    return torch.rand(batch, channels, frames) + 1.0  # strictly positive: zeros mark masked cells


def test_spec_augment_is_identity_in_eval_and_when_off():
    feats, lengths = features(), torch.tensor([100, 60, 30])
    aug = SpecAugment(SpecAugmentSpec(freq_masks=2, time_masks=2)).eval()
    assert aug(feats, lengths) is feats
    assert SpecAugment(SpecAugmentSpec()).train()(feats, lengths) is feats


def test_spec_augment_masks_only_within_each_length():
    feats, lengths = features(), torch.tensor([100, 60, 0])
    spec = SpecAugmentSpec(freq_masks=2, freq_width=8, time_masks=3, time_width=0.2, rect_masks=2, rect_time=10)
    for seed in range(20):
        out = SpecAugment(spec, torch.Generator().manual_seed(seed)).train()(feats, lengths)
        assert torch.equal(out[1, :, 60:], feats[1, :, 60:])
        assert torch.equal(out[2], feats[2])  # an empty utterance is left alone
        masked = out == 0
        assert masked[0].any() or masked[1].any()
        assert torch.equal(out[~masked], feats[~masked])  # everything else untouched


def test_spec_augment_mask_geometry():
    feats, lengths = features(batch=64), torch.full((64,), 100)
    freq_only = SpecAugment(SpecAugmentSpec(freq_masks=1, freq_width=8), torch.Generator().manual_seed(0)).train()
    bands = (freq_only(feats, lengths) == 0).all(-1).sum(-1)  # masked channels per utterance, across all frames
    assert bands.max().item() == 8 and bands.min().item() == 0  # widths uniform in [0, freq_width]
    time_only = SpecAugment(SpecAugmentSpec(time_masks=1, time_width=0.1), torch.Generator().manual_seed(0)).train()
    half = torch.tensor([100, 50] * 32)
    spans = (time_only(feats, half) == 0).all(1).sum(-1)  # masked frames per utterance, across all channels
    assert spans[0::2].max().item() <= 10 and spans[1::2].max().item() <= 5  # 10% of each valid length
    assert spans[0::2].max().item() >= 8


def test_spec_augment_is_reproducible_from_its_generator():
    feats, lengths = features(), torch.tensor([100, 80, 50])
    spec = SpecAugmentSpec(freq_masks=2, time_masks=4, time_width=5)
    a = SpecAugment(spec, torch.Generator().manual_seed(7)).train()(feats, lengths)
    b = SpecAugment(spec, torch.Generator().manual_seed(7)).train()(feats, lengths)
    c = SpecAugment(spec, torch.Generator().manual_seed(8)).train()(feats, lengths)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_spec_augment_spec_nemo_config():
    citrinet = {
        "_target_": "nemo.collections.asr.modules.SpectrogramAugmentation",
        "freq_masks": 2,
        "time_masks": 10,
        "freq_width": 27,
        "time_width": 0.05,
    }
    spec = SpecAugmentSpec.from_nemo_config(citrinet)
    assert spec == SpecAugmentSpec(freq_masks=2, time_masks=10, freq_width=27, time_width=0.05)
    assert SpecAugmentSpec.from_nemo_config(spec.to_nemo_config()) == spec
    with pytest.raises(SpecError, match=r"spec_augment\.time_mask: unknown"):
        SpecAugmentSpec.from_nemo_config({"time_mask": 2})
    with pytest.raises(SpecError, match="time_width"):
        SpecAugmentSpec.from_nemo_config({"time_width": 1.5})


# -- waveform augmentations -------------------------------------------------------------------------------


@pytest.mark.parametrize("factor", [0.9, 1.1, 1.05])
def test_speed_perturb_changes_duration_and_pitch_by_the_factor(factor):
    x = tone(1000.0)
    y = speed_perturb(x, SR, factor)
    assert abs(len(y) - len(x) / factor) <= 1
    peak = np.argmax(np.abs(np.fft.rfft(y * np.hanning(len(y))))) * SR / len(y)
    assert abs(peak - 1000.0 * factor) <= 2 * SR / len(y)
    assert np.array_equal(speed_perturb(x, SR, 1.0), x)


@pytest.mark.parametrize("snr_db, noise_len", [(0.0, 16000), (7.5, 5000), (20.0, 40000), (-5.0, 123)])
def test_add_noise_hits_the_requested_snr(snr_db, noise_len):
    rng = np.random.default_rng(1)
    x = read_audio(SPEECH)
    noise = rng.standard_normal(noise_len).astype(np.float32) * 3.0
    y = add_noise(x, noise, snr_db, rng)
    assert y.dtype == np.float32 and len(y) == len(x)
    measured = power_db(x) - power_db(y.astype(np.float64) - x)
    assert abs(measured - snr_db) < 0.1
    assert np.array_equal(add_noise(np.zeros(100, np.float32), noise, 10.0), np.zeros(100))


@pytest.mark.parametrize("mulaw", [False, True])
def test_telephone_band_keeps_300_to_3400_hz(mulaw):
    x = tone(120.0, amp=0.2) + tone(1000.0, amp=0.2) + tone(5000.0, amp=0.2)
    y = telephone_band(x, SR, mulaw=mulaw)
    assert len(y) == len(x) and y.dtype == np.float32
    assert abs(band_db(y, 1000.0) - band_db(x, 1000.0)) < 0.5
    assert band_db(y, 120.0) < band_db(x, 120.0) - 40
    assert band_db(y, 5000.0) < band_db(x, 5000.0) - 40


def test_reverb_impulse_response_decays_60_db_per_rt60():
    rt60 = 0.4
    h = reverb_impulse_response(SR, rt60, np.random.default_rng(0)).astype(np.float64)
    assert h[0] == 1.0 and len(h) == int(0.005 * SR) + int(1.2 * rt60 * SR)
    win = int(0.05 * SR)
    early = 10 * np.log10(np.sum(h[int(0.05 * SR) :][:win] ** 2))
    late = 10 * np.log10(np.sum(h[int(0.25 * SR) :][:win] ** 2))
    assert abs((early - late) - 60 * 0.2 / rt60) < 3.0


def test_reverberate_keeps_length_level_and_alignment():
    rng = np.random.default_rng(0)
    x = read_audio(SPEECH)
    y = reverberate(x, SR, 0.6, rng)
    assert len(y) == len(x) and y.dtype == np.float32
    assert abs(power_db(y) - power_db(x)) < 0.01
    corr = [float(np.dot(x[: len(x) - lag], y[lag:])) for lag in range(200)]  # y lagging x by 0..199 samples
    assert int(np.argmax(corr)) == 0  # the direct path stays at lag 0
    assert not np.allclose(y, x, atol=1e-2)


def test_gain_and_coloured_noise():
    x = tone(440.0)
    assert power_db(gain(x, 6.0)) - power_db(x) == pytest.approx(6.0, abs=1e-4)
    rng = np.random.default_rng(0)
    for colour, slope in [("white", 0.0), ("pink", -3.0), ("brown", -6.0)]:
        n = coloured_noise(1 << 16, colour, rng)
        assert power_db(n) == pytest.approx(0.0, abs=1e-3)
        psd = np.abs(np.fft.rfft(n)) ** 2
        low, high = psd[500:1000].mean(), psd[4000:8000].mean()  # three octaves apart
        assert 10 * np.log10(high / low) == pytest.approx(slope * 3, abs=1.5)


# -- the training-time pipeline ---------------------------------------------------------------------------


def test_wave_augmenter_off_by_default_is_identity():
    x = read_audio(SPEECH)
    assert not AugmentSpec().enabled
    assert np.array_equal(WaveAugmenter(AugmentSpec())(x, SR, np.random.default_rng(0)), x)


def test_wave_augmenter_all_on_is_seeded_and_changes_the_audio():
    x = read_audio(SPEECH)
    spec = AugmentSpec(
        speed_prob=1.0,
        speed_factors=(1.1,),
        reverb_prob=1.0,
        noise_prob=1.0,
        babble_prob=1.0,
        telephone_prob=1.0,
        gain_prob=1.0,
    )
    aug = WaveAugmenter(spec, noise_sources=[tone(50.0)], babble_sources=[x[::-1].copy(), x[4000:], x[:9000]])
    a = aug(x, SR, np.random.default_rng(3))
    b = aug(x, SR, np.random.default_rng(3))
    c = aug(x, SR, np.random.default_rng(4))
    assert a.dtype == np.float32 and abs(len(a) - len(x) / 1.1) <= 1
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert np.isfinite(a).all()


def test_wave_augmenter_probabilities_are_respected():
    x = tone(300.0, seconds=0.2)
    aug = WaveAugmenter(AugmentSpec(speed_prob=0.5, speed_factors=(0.9,)))
    rng = np.random.default_rng(0)
    changed = sum(len(aug(x, SR, rng)) != len(x) for _ in range(200))
    assert 70 < changed < 130


def test_augment_spec_validation_and_recipe_loading():
    spec = spec_from_dict(AugmentSpec, {"noise_prob": 0.5, "noise_snr_db": [5, 15], "speed_factors": [0.95, 1.05]})
    assert spec.noise_snr_db == (5.0, 15.0) and spec.speed_factors == (0.95, 1.05) and spec.enabled
    with pytest.raises(SpecError, match="noise_snr_db: low 20.0 is above high 10.0"):
        spec_from_dict(AugmentSpec, {"noise_snr_db": [20, 10]})
    with pytest.raises(SpecError, match="gain_prob must be in"):
        spec_from_dict(AugmentSpec, {"gain_prob": 2})
    with pytest.raises(ValueError, match="babble_sources"):
        WaveAugmenter(AugmentSpec(babble_prob=0.1))
