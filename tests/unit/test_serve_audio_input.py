"""Wire audio: WAV headers in the first chunk, raw encodings, stray bytes, streaming resampling."""

import io
import struct

import numpy as np
import pytest
import soundfile as sf

from speechtao.audio import alaw_encode, mulaw_encode, pcm16_encode, resample
from speechtao.errors import AudioError
from speechtao.serve.audio_input import AudioDecoder, StreamResampler, decode_request_audio, parse_wav_header


def wav_bytes(x, sr, subtype="PCM_16"):
    buf = io.BytesIO()
    sf.write(buf, x, sr, format="WAV", subtype=subtype)
    return buf.getvalue()


def feed_all(dec, data, piece):
    out = [dec.feed(data[i : i + piece]) for i in range(0, len(data), piece)]
    tail = dec.finish()
    return np.concatenate([o for o in out + [tail] if o is not None])


@pytest.mark.parametrize("rates", [(22050, 16000), (8000, 16000), (44100, 16000), (48000, 8000), (16000, 16000)])
def test_stream_resampler_equals_one_shot(rates, rng):
    x = (0.1 * rng.standard_normal(rates[0])).astype(np.float32)
    r = StreamResampler(*rates)
    pieces, pos = [], 0
    while pos < len(x):
        n = int(rng.integers(1, 2500))
        pieces.append(r.push(x[pos : pos + n]))
        pos += n
    y = np.concatenate(pieces + [r.flush()])
    np.testing.assert_array_equal(y, resample(x, *rates))


@pytest.mark.parametrize(
    "subtype,enc,channels,tol",
    [("PCM_16", "pcm16", 1, 0), ("FLOAT", "float32", 2, 0), ("ULAW", "mulaw", 1, 0.02), ("ALAW", "alaw", 1, 0.02)],
)
@pytest.mark.parametrize("piece", [7, 44, 1000])  # the header split over chunks, exactly one, or inside one
def test_wav_header_in_the_first_chunks(subtype, enc, channels, tol, piece, rng):
    x = (0.3 * rng.standard_normal((2000, channels))).clip(-1, 1).astype(np.float32)
    data = wav_bytes(x, 8000, subtype)
    dec = AudioDecoder("ENCODING_UNSPECIFIED", 0, 0)
    y = feed_all(dec, data, piece)
    assert dec.fmt.encoding == enc and dec.fmt.sample_rate == 8000 and dec.fmt.channels == channels
    ref, _ = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    assert y.shape == (2000, channels)
    np.testing.assert_allclose(y, ref, atol=tol + 1e-6)


def test_wav_chunks_before_and_after_data_are_not_audio():
    samples = pcm16_encode(np.linspace(-0.5, 0.5, 100))
    fmt = struct.pack("<HHIIHH", 1, 1, 16000, 32000, 2, 16)
    body = (
        b"WAVE"
        + b"fmt "
        + struct.pack("<I", 16)
        + fmt
        + b"LIST"
        + struct.pack("<I", 5)
        + b"abcde\0"
        + b"data"
        + struct.pack("<I", len(samples))
        + samples
        + b"LIST"
        + struct.pack("<I", 4)
        + b"tail"
    )
    data = b"RIFF" + struct.pack("<I", len(body)) + body
    header = parse_wav_header(data)
    assert header.data_bytes == 200 and header.header_bytes == len(data) - 200 - 12
    y = feed_all(AudioDecoder("LINEAR_PCM", 0, 0), data, 50)
    np.testing.assert_allclose(y[:, 0], np.frombuffer(samples, "<i2") / 32768.0)


@pytest.mark.parametrize(
    "data,message",
    [
        (b"RIFX\0\0\0\0WAVE", "big-endian RIFX"),
        (b"RIFF\0\0\0\0AVI fmt ", "RIFF type is 'AVI ', not 'WAVE'"),
        (b"RIFF\0\0\0\0WAVEdata\0\0\0\0", "data chunk before the fmt chunk"),
        (
            b"RIFF\0\0\0\0WAVEfmt \x10\0\0\0" + struct.pack("<HHIIHH", 85, 1, 16000, 0, 1, 0) + b"data\0\0\0\0",
            "format tag 0x55 is not supported",
        ),
        (
            b"RIFF\0\0\0\0WAVEfmt \x10\0\0\0" + struct.pack("<HHIIHH", 1, 1, 16000, 0, 1, 8) + b"data\0\0\0\0",
            "8-bit PCM is not supported",
        ),
        (
            b"RIFF\0\0\0\0WAVEfmt \x10\0\0\0" + struct.pack("<HHIIHH", 1, 0, 16000, 0, 1, 16) + b"data\0\0\0\0",
            "0 channels",
        ),
    ],
)
def test_bad_wav_headers_say_what_to_send(data, message):
    with pytest.raises(AudioError, match=message) as err:
        AudioDecoder("ENCODING_UNSPECIFIED", 0, 0).feed(data)
    assert "ffmpeg" in str(err.value) or "RIFX" in str(err.value) or "not supported" in str(err.value)


def test_raw_encodings_and_their_errors():
    x = np.linspace(-0.9, 0.9, 801).astype(np.float32)
    for enc, payload, tol in [
        ("LINEAR_PCM", pcm16_encode(x), 1e-4),
        ("MULAW", mulaw_encode(x), 0.03),
        ("ALAW", alaw_encode(x), 0.03),
    ]:
        dec = AudioDecoder(enc, 8000, 1)
        y = feed_all(dec, payload, 33)  # odd piece sizes: 16-bit samples split across chunks
        np.testing.assert_allclose(y[:, 0], x, atol=tol)
    with pytest.raises(AudioError, match="needs sample_rate_hertz"):
        AudioDecoder("LINEAR_PCM", 0, 1).feed(b"\0\0")
    for rate in (1, 2**31 - 1):  # resampling cost grows with the rate ratio: absurd rates are refused first
        with pytest.raises(AudioError, match=f"sample rate {rate} Hz is outside 4000-384000 Hz"):
            AudioDecoder("MULAW", rate, 1).feed(b"\0" * 8)
        with pytest.raises(AudioError, match="WAV header: sample rate"):
            AudioDecoder("ENCODING_UNSPECIFIED", 0, 0).feed(
                b"RIFF\0\0\0\0WAVEfmt \x10\0\0\0" + struct.pack("<HHIIHH", 1, 1, rate, 0, 2, 16) + b"data\0\0\0\0"
            )
    with pytest.raises(AudioError, match="at most 8 channels"):
        AudioDecoder("LINEAR_PCM", 16000, 9).feed(b"\0" * 36)
    dec = AudioDecoder("LINEAR_PCM", 16000, 2)  # stereo: frames of 4 bytes
    dec.feed(b"\0" * 6)
    with pytest.raises(AudioError, match="2 stray byte"):
        dec.finish()
    with pytest.raises(AudioError, match="encoding 'SPEEX' is not supported"):
        AudioDecoder("SPEEX", 16000, 1)
    with pytest.raises(AudioError, match="ended inside a WAV header"):
        dec = AudioDecoder("ENCODING_UNSPECIFIED", 0, 0)
        dec.feed(b"RIFF\0\0\0\0WAVEfm")
        dec.finish()


def test_whole_request_audio_flac_and_empty(rng):
    x = (0.2 * rng.standard_normal((3000, 2))).astype(np.float32)
    buf = io.BytesIO()
    sf.write(buf, x, 16000, format="FLAC")
    y, sr = decode_request_audio(buf.getvalue(), "ENCODING_UNSPECIFIED", 0, 0)  # recognized by its magic
    assert sr == 16000 and y.shape == (3000, 2)
    np.testing.assert_allclose(y, x, atol=1e-4)
    with pytest.raises(AudioError, match="holds no audio"):
        decode_request_audio(b"", "LINEAR_PCM", 16000, 1)
    with pytest.raises(AudioError, match="cannot be decoded as a FLAC") as err:
        decode_request_audio(b"fLaC" + b"\0" * 50, "FLAC", 0, 0)
    assert " object at 0x" not in str(err.value)  # libsndfile's words, not the in-memory file object's repr
    dec = AudioDecoder("FLAC", 0, 0)  # streamed FLAC is decoded once complete
    assert dec.feed(buf.getvalue()[:1000]) is None and dec.feed(buf.getvalue()[1000:]) is None
    assert dec.finish().shape == (3000, 2) and dec.fmt.sample_rate == 16000


@pytest.mark.parametrize(
    "fmt,subtype,enc", [("FLAC", "PCM_16", "FLAC"), ("OGG", "OPUS", "OGGOPUS"), ("OGG", "OPUS", None)]
)
def test_streamed_flac_and_ogg_opus_are_buffered_and_decoded_whole(rng, fmt, subtype, enc):
    """As Riva's file client streams any file: 1600-byte pieces, with the encoding set or unset (then the magic
    says what it is); the stream's audio equals the whole file decoded at once."""
    x = (0.2 * rng.standard_normal(16000)).astype(np.float32)
    buf = io.BytesIO()
    sf.write(buf, x, 16000, format=fmt, subtype=subtype)
    data = buf.getvalue()
    dec = AudioDecoder(enc or "ENCODING_UNSPECIFIED", 0, 0)
    assert all(dec.feed(data[i : i + 1600]) is None for i in range(0, len(data), 1600))
    whole, rate = decode_request_audio(data, enc or "ENCODING_UNSPECIFIED", 0, 0)
    np.testing.assert_array_equal(dec.finish(), whole)
    assert rate == dec.fmt.sample_rate == 16000 and whole.shape[0] >= 16000
    dec = AudioDecoder("ENCODING_UNSPECIFIED", 0, 0)  # a first piece shorter than the magic waits for more
    assert dec.feed(data[:2]) is None and dec.feed(data[2:]) is None and dec.finish().shape == whole.shape
