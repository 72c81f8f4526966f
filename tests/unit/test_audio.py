import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from speechtao.audio import (
    AudioInfo,
    alaw_decode,
    alaw_encode,
    audio_info,
    decode_bytes,
    mulaw_decode,
    mulaw_encode,
    pcm16_decode,
    pcm16_encode,
    read_audio,
    resample,
    write_wav,
)
from speechtao.errors import AudioError, InputError

SPEECH = Path(__file__).parents[1] / "fixtures" / "audio_speech_16k.wav"


def tone(freq: float, sr: int, seconds: float = 1.0, amp: float = 0.5) -> np.ndarray:
    return (amp * np.sin(2 * np.pi * freq * np.arange(int(sr * seconds)) / sr)).astype(np.float32)


def rms_db(x: np.ndarray) -> float:
    return 10 * math.log10(float(np.mean(np.square(x, dtype=np.float64))) + 1e-30)


# -- resampling -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "orig_sr, freq", [(44100, 1000.0), (8000, 1000.0), (8000, 3300.0), (22050, 5000.0), (48000, 440.0), (11025, 2500.0)]
)
def test_resample_keeps_a_sine_frequency(orig_sr, freq):
    y = resample(tone(freq, orig_sr), orig_sr, 16000)
    assert y.dtype == np.float32
    assert len(y) == 16000
    spectrum = np.abs(np.fft.rfft(y * np.hanning(len(y))))
    peak_hz = np.argmax(spectrum) * 16000 / len(y)  # 1 Hz bins
    assert abs(peak_hz - freq) <= 1.0
    # the level survives (pass band): RMS of a 0.5 sine is 0.5/sqrt(2)
    assert abs(rms_db(y[800:-800]) - rms_db(tone(freq, orig_sr))) < 0.1


@pytest.mark.parametrize(
    "orig_sr, target_sr, freq",
    [(44100, 16000, 10000.0), (44100, 16000, 7900.0), (48000, 16000, 12000.0), (16000, 8000, 5000.0)],
)
def test_resample_removes_content_above_the_new_nyquist(orig_sr, target_sr, freq):
    y = resample(tone(freq, orig_sr), orig_sr, target_sr)
    # without the low-pass the tone would alias down at full level (-9 dB); require 60 dB below that
    assert rms_db(y[200:-200]) < rms_db(tone(freq, orig_sr)) - 60


def test_upsampling_adds_no_images():
    y = resample(tone(3000.0, 8000), 8000, 16000)
    spectrum = np.abs(np.fft.rfft(y * np.hanning(len(y))))  # 1 Hz bins
    image = spectrum[4900:5100].max() / spectrum[3000]
    assert 20 * np.log10(image) < -80  # the 5 kHz image of a 3 kHz tone is gone


@pytest.mark.parametrize("orig_sr, target_sr", [(16001, 16000), (16000, 44100), (8000, 11025)])
def test_resample_any_rate_pair_length_and_round_trip(orig_sr, target_sr):
    x = tone(700.0, orig_sr, seconds=0.5)
    y = resample(x, orig_sr, target_sr)
    assert len(y) == math.ceil(len(x) * target_sr / orig_sr)
    back = resample(y, target_sr, orig_sr)[: len(x)]
    np.testing.assert_allclose(back[500:-500], x[500:-500], atol=1e-3)


def test_resample_same_rate_is_a_copy_and_rejects_2d():
    x = tone(100.0, 16000, 0.1)
    y = resample(x, 16000, 16000)
    assert y is not x and np.array_equal(x, y)
    with pytest.raises(ValueError, match="mix channels down"):
        resample(np.zeros((2, 100)), 16000, 8000)


# -- reading and writing ----------------------------------------------------------------------------------


def test_fixture_reads_as_mono_float32_speech():
    x = read_audio(SPEECH)
    info = audio_info(SPEECH)
    assert info == AudioInfo(sample_rate=16000, frames=len(x), channels=1, duration=len(x) / 16000)
    assert x.dtype == np.float32 and x.ndim == 1
    assert 1.5 < info.duration < 4 and 0.1 < np.abs(x).max() <= 1.0


def test_stereo_is_mixed_down(tmp_path):
    left, right = tone(300.0, 16000, 0.25), tone(500.0, 16000, 0.25, amp=0.25)
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([left, right], axis=1), 16000, subtype="FLOAT")
    assert audio_info(path).channels == 2
    np.testing.assert_allclose(read_audio(path), (left + right) / 2, atol=1e-7)


def test_offset_and_duration_read_the_right_samples(tmp_path):
    ramp = (np.arange(16000) / 16000).astype(np.float32)
    path = tmp_path / "ramp.flac"
    sf.write(path, ramp, 8000, subtype="PCM_24")  # FLAC, 2 s at 8 kHz
    part = read_audio(path, sample_rate=8000, offset=0.5, duration=0.25)
    np.testing.assert_allclose(part, ramp[4000:6000], atol=1e-6)
    tail = read_audio(path, sample_rate=8000, offset=1.75, duration=5.0)  # runs past the end: what is there
    np.testing.assert_allclose(tail, ramp[14000:], atol=1e-6)
    # at 16 kHz the excerpt is resampled: twice the samples, same content
    up = read_audio(path, sample_rate=16000, offset=0.5, duration=0.25)
    assert len(up) == 4000
    np.testing.assert_allclose(up[200:-200:2], ramp[4100:5900], atol=2e-3)


def test_offset_past_the_end_and_bad_arguments_raise(tmp_path):
    path = tmp_path / "short.wav"
    write_wav(path, np.zeros(1600, np.float32), 16000)
    with pytest.raises(AudioError, match=r"short\.wav.*offset 0\.2 s is at or past its end"):
        read_audio(path, offset=0.2)
    with pytest.raises(AudioError, match="negative"):
        read_audio(path, offset=-1.0)
    with pytest.raises(AudioError, match="duration 0"):
        read_audio(path, duration=0)


def test_missing_and_corrupt_files_raise_audio_error_naming_the_file(tmp_path):
    missing = tmp_path / "nope.wav"
    with pytest.raises(AudioError, match=r"nope\.wav' not found") as exc:
        read_audio(missing)
    assert isinstance(exc.value, InputError) and exc.value.exit_code == 2
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x10\x00\x00\x00WAVEfmt garbage that is not audio")
    with pytest.raises(AudioError, match=r"cannot decode audio file '.*corrupt\.wav'.*ffmpeg"):
        read_audio(corrupt)
    with pytest.raises(AudioError, match="corrupt.wav"):
        audio_info(corrupt)
    truncated = tmp_path / "truncated.flac"
    sf.write(truncated, tone(440.0, 16000), 16000)
    truncated.write_bytes(truncated.read_bytes()[:40])
    with pytest.raises(AudioError, match="truncated.flac"):
        read_audio(truncated)


def test_write_wav_is_16_bit_and_round_trips(tmp_path):
    x = np.array([0.0, 0.5, -0.5, 1.5, -1.5, 1 / 32768], np.float32)
    path = tmp_path / "out.wav"
    write_wav(path, x, 16000)
    assert sf.info(path).subtype == "PCM_16"
    pcm, sr = sf.read(path, dtype="int16")
    assert sr == 16000
    assert pcm.tolist() == [0, 16384, -16384, 32767, -32768, 1]  # clipped, rounded
    with pytest.raises(AudioError, match="missing_dir"):
        write_wav(tmp_path / "missing_dir" / "x.wav", x, 16000)


def test_ogg_vorbis_reads(tmp_path):
    path = tmp_path / "a.ogg"
    sf.write(path, tone(440.0, 16000), 16000, format="OGG", subtype="VORBIS")
    y = read_audio(path)
    assert len(y) == 16000
    peak = np.argmax(np.abs(np.fft.rfft(y))) * 16000 / len(y)
    assert abs(peak - 440) <= 1


# -- codecs -----------------------------------------------------------------------------------------------


def test_g711_known_code_points():
    assert mulaw_encode(np.zeros(3)) == b"\xff\xff\xff"
    assert alaw_encode(np.zeros(1)) == b"\xd5"
    # mu-law: 0x80 / 0x00 are the largest positive / negative values, 0xFF and 0x7F are +0 and -0
    np.testing.assert_array_equal(mulaw_decode(b"\x80\x00\xff\x7f") * 32768, [32124, -32124, 0, 0])
    # A-law: 0xAA / 0x2A extremes, 0xD5 / 0x55 the smallest steps either side of zero
    np.testing.assert_array_equal(alaw_decode(b"\xaa\x2a\xd5\x55") * 32768, [32256, -32256, 8, -8])
    assert mulaw_encode(np.array([1.0, -1.0])) == b"\x80\x00"  # clipped to the top codes


def test_g711_codes_round_trip_through_decode():
    codes = bytes(range(256))
    assert alaw_encode(alaw_decode(codes)) == codes
    mu = bytes(c for c in range(256) if c != 0x7F)  # 0x7F is -0, which re-encodes as +0 (0xFF)
    assert mulaw_encode(mulaw_decode(mu)) == mu


def test_g711_round_trip_error_bounds():
    x = np.linspace(-1, 1, 20001)
    s = np.abs(x) * 32768
    mu = np.abs(mulaw_decode(mulaw_encode(x)) - x) * 32768
    assert np.all(mu <= (s + 132) / 16)  # logarithmic: error grows with the magnitude
    assert mu[s < 100].max() <= 8  # fine steps (8) near zero
    a = np.abs(alaw_decode(alaw_encode(x)) - x) * 32768
    assert np.all(a <= np.maximum(16, s / 16))
    assert a[s < 100].max() <= 16


def test_g711_matches_cpython_audioop_on_every_int16():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        audioop = pytest.importorskip("audioop")  # removed in Python 3.13
    pcm = np.arange(-32768, 32768, dtype=np.int16)
    x = pcm / 32768.0
    assert mulaw_encode(x) == audioop.lin2ulaw(pcm.tobytes(), 2)
    assert alaw_encode(x) == audioop.lin2alaw(pcm.tobytes(), 2)
    codes = bytes(range(256))
    np.testing.assert_array_equal(mulaw_decode(codes) * 32768, np.frombuffer(audioop.ulaw2lin(codes, 2), np.int16))
    np.testing.assert_array_equal(alaw_decode(codes) * 32768, np.frombuffer(audioop.alaw2lin(codes, 2), np.int16))


def test_pcm16_and_decode_bytes(tmp_path):
    x = np.array([0.0, 0.25, -1.0, 32767 / 32768], np.float32)
    data = pcm16_encode(x)
    assert data == b"\x00\x00\x00\x20\x00\x80\xff\x7f"
    np.testing.assert_array_equal(pcm16_decode(data), x)
    np.testing.assert_array_equal(decode_bytes(data, "pcm16"), x)
    np.testing.assert_array_equal(decode_bytes(b"\xff", "mulaw"), [0.0])
    with pytest.raises(AudioError, match="odd number of bytes"):
        pcm16_decode(b"\x00\x00\x00")
    path = tmp_path / "x.wav"
    write_wav(path, x, 8000)
    np.testing.assert_array_equal(decode_bytes(path.read_bytes(), "file"), x)
    with pytest.raises(AudioError, match="cannot decode"):
        decode_bytes(b"not a wav file at all", "file")
