"""Serving the Whisper-encoder CTC model: its ONNX export carries Whisper's front-end settings, both backends
compute Whisper log-mels (not NeMo's), chunked streaming works with its 20 ms frames, and a real recording
streamed through the library recognizer with the INT8 export gives the transcript `speechtao asr infer` gives
for the checkpoint."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from speechtao.asr.whisper import WhisperFeatureSpec, WhisperLogMel, whisper_normalize
from speechtao.errors import InputError
from speechtao.serve.backends import OnnxBackend, TorchBackend, load_backend
from speechtao.serve.recognizer import Recognizer, StreamingOptions

STARTER = Path("models/whisper_tiny_en_ctc_synth.pt")
DATA = Path("/usr/share/pocketsphinx/test/data")
CARDS = [DATA / "cards" / f"00{i}.wav" for i in (1, 3)]  # "ten of clubs", "seven of clubs" (heard: "...clobs")
SENTENCE = DATA / "librivox" / "sense_and_sensibility_01_austen_64kb-0870.wav"  # 7.1 s, many chunk windows
CALIB = sorted(p for p in Path("/usr/share/sounds/alsa").glob("*_*.wav"))  # alsa-utils' spoken channel names

pytestmark = [
    pytest.mark.skipif(not STARTER.is_file(), reason=f"{STARTER} is not in this checkout"),
    pytest.mark.skipif(not SENTENCE.is_file(), reason="apt-get install pocketsphinx-testdata"),
    pytest.mark.skipif(not CALIB, reason="apt-get install alsa-utils (calibration recordings)"),
]


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """FP32 and INT8 exports of the Whisper starter (INT8 is dynamic by default for Whisper models, so the
    calibration manifest of alsa-utils' recordings goes unused)."""
    from speechtao.cli import main

    d = tmp_path_factory.mktemp("whisper_exports")
    calib = d / "calib.jsonl"
    calib.write_text(
        "".join(json.dumps({"audio_filepath": str(w), "duration": 1.0, "text": "x"}) + "\n" for w in CALIB)
    )
    assert main(["asr", "export", "--model", str(STARTER), "--format", "onnx", "--out", str(d / "model.onnx")]) == 0
    assert (
        main(
            [
                "asr",
                "export",
                "--model",
                str(STARTER),
                "--format",
                "onnx-int8",
                "--calib",
                str(calib),
                "--out",
                str(d / "model.int8.onnx"),
            ]
        )
        == 0
    )
    return d


def _stream(rec, x, piece=1600):
    s = rec.create_stream()
    for k in range(0, len(x), piece):
        s.accept_waveform(16000, x[k : k + piece])
        while rec.is_ready(s):
            rec.decode_stream(s)
    s.input_finished()
    while rec.is_ready(s):
        rec.decode_stream(s)
    results = s.pop_results()
    return " ".join(r.text for r in results if r.is_final), results


def _infer(paths, capsys, model=STARTER):
    """`speechtao asr infer` of ``model`` (default: the checkpoint): {file name: text}."""
    from speechtao.cli import main

    capsys.readouterr()
    assert main(["asr", "infer", "--model", str(model), *map(str, paths)]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    return {Path(r["audio_filepath"]).name: r["text"] for r in rows}


def test_export_metadata_names_whisper_and_its_front_end(exports):
    from speechtao.export.onnx_export import read_metadata

    for name in ("model.onnx", "model.int8.onnx"):
        meta = read_metadata(exports / name)
        assert meta["family"] == "whisper" and meta["subsampling_factor"] == "2" and meta["normalize_type"] == "whisper"
        assert json.loads(meta["features"]) == {
            "sample_rate": 16000,
            "n_mels": 80,
            "n_fft": 400,
            "hop_length": 160,
            "dynamic_range": 8.0,
            "normalize": "whisper",
        }
    quant = json.loads(read_metadata(exports / "model.int8.onnx")["quantization"])
    assert quant["format"] == "dynamic" and quant["op_types"] == ["MatMul"]  # Whisper's default INT8 scheme
    # INT8 weights except the MLP output projections (ffn_out_nodes): 57% of the FP32 file for tiny.en
    assert (exports / "model.int8.onnx").stat().st_size < 0.6 * (exports / "model.onnx").stat().st_size


def test_both_backends_use_whisper_log_mels_and_agree(exports):
    from speechtao.audio import read_audio

    onnx_b, torch_b = load_backend(exports / "model.onnx"), load_backend(STARTER)
    assert isinstance(onnx_b, OnnxBackend) and isinstance(torch_b, TorchBackend)
    x = read_audio(CARDS[0], sample_rate=16000)
    audio, lengths = x[None].astype(np.float32), np.array([len(x)])
    with torch.no_grad():
        ref, ref_n = WhisperLogMel(WhisperFeatureSpec())(torch.from_numpy(audio), torch.from_numpy(lengths))
    for b in (onnx_b, torch_b):
        assert (b.family, b.sample_rate, b.subsampling_factor, b.samples_per_frame) == ("whisper", 16000, 2, 320)
        feats, n = b.features(audio, lengths)
        np.testing.assert_allclose(feats, ref.numpy(), atol=1e-6)
        assert n.tolist() == ref_n.tolist()
    lp_o, n_o = onnx_b(audio, lengths)
    lp_t, n_t = torch_b(audio, lengths)
    assert n_o.tolist() == n_t.tolist() == [(len(x) // 160 + 1) // 2]  # ceil(frames / 2)
    np.testing.assert_allclose(lp_o, lp_t, atol=1e-3)


def test_stream_normalization_floors_at_the_running_peak(exports):
    """A chunk window's features are Whisper's (floored at the utterance's peak so far minus 8), not NeMo's
    per-feature normalization: the first window of a stream equals the offline front end on that window."""
    from speechtao.audio import read_audio

    backend = load_backend(exports / "model.onnx")
    rec = Recognizer(backend, StreamingOptions(chunk_ms=320, left_context_ms=0, right_context_ms=320))
    seen = []
    real = backend.run_features
    backend.run_features = lambda f, n: (seen.append((f.copy(), n.copy())), real(f, n))[1]
    x = read_audio(SENTENCE, sample_rate=16000)
    s = rec.create_stream()
    s.accept_waveform(16000, x[: rec.chunk + rec.right])
    rec.decode_stream(s)
    first, n = seen[0]
    offline, off_n = backend.features(x[None, : rec.chunk + rec.right], np.array([rec.chunk + rec.right]))
    assert n.tolist() == off_n.tolist()
    np.testing.assert_allclose(first[0, :, : n[0]], offline[0, :, : n[0]], atol=1e-5)
    # later windows use the peak of everything received so far
    s.accept_waveform(16000, x[rec.chunk + rec.right : 3 * rec.chunk + rec.right])
    while rec.is_ready(s):
        rec.decode_stream(s)
    raw, flen = backend.features.raw(x[None, : 3 * rec.chunk + rec.right], np.array([3 * rec.chunk + rec.right]))
    peak = float(raw[0, :, : flen[0]].max())
    assert s.stats.peak(raw[0]) == pytest.approx(peak, abs=1e-5)
    last, ln = seen[-1]
    window, wn = backend.features.raw(
        x[None, 2 * rec.chunk : 3 * rec.chunk + rec.right], np.array([rec.chunk + rec.right])
    )
    np.testing.assert_allclose(last[0, :, : ln[0]], whisper_normalize(window[0, :, : wn[0]], peak - 8.0), atol=1e-5)


def test_int8_stream_gives_the_transcript_of_asr_infer(exports, capsys):
    """The INT8 export streamed in 100 ms pieces (chunk windows, interim results, then the final pass over the
    utterance) transcribes each card recording within one character of `asr infer` with that file and of the
    FP32 checkpoint. (Not always exactly: the final pass starts where the endpointer found speech, and a dynamic
    INT8 graph sets its activation ranges from the audio it is given; measured: "ten of clob" streamed,
    "ten of clobs" offline, once in the three recordings.)"""
    from speechtao.asr.metrics import cer
    from speechtao.audio import read_audio

    int8 = exports / "model.int8.onnx"
    reference, fp32 = _infer(CARDS, capsys, int8), _infer(CARDS, capsys)
    rec = Recognizer.from_path(str(int8))
    for wav in CARDS:
        text, results = _stream(rec, read_audio(wav, sample_rate=16000))
        assert "clob" in text, (wav.name, text)
        for ref in (reference[wav.name], fp32[wav.name]):
            assert cer([ref], [text]) <= 1 / len(ref), (wav.name, text, ref)
        assert any(not r.is_final for r in results)  # interim results came from the chunk windows


def test_chunked_decoding_of_a_sentence(exports, capsys):
    """7 s of speech: the PyTorch backend's final pass is exactly `asr infer`; chunk-only decoding (20 ms
    frames, 1.2 s left / 0.48 s right context, no final pass) is as close to the true transcript as the offline
    pass (measured: CER 0.30 offline, 0.30 PyTorch chunks, 0.28 INT8 chunks) in both backends."""
    from speechtao.asr.metrics import cer
    from speechtao.audio import read_audio
    from speechtao.text.normalize import normalize_text

    lines = (SENTENCE.parent / "transcription").read_text().splitlines()
    truth = normalize_text(next(t for t in lines if SENTENCE.stem in t).split("</s>")[0].replace("<s>", ""))
    reference = _infer([SENTENCE], capsys)[SENTENCE.name]
    x = read_audio(SENTENCE, sample_rate=16000)
    assert _stream(Recognizer.from_path(str(STARTER)), x)[0] == reference
    chunks = StreamingOptions(final_pass="chunks")
    for model in (STARTER, exports / "model.int8.onnx"):
        text, _ = _stream(Recognizer.from_path(str(model), chunks), x)
        assert cer([truth], [text]) <= cer([truth], [reference]) + 0.05, (model, text, reference, truth)
        assert cer([reference], [text]) < 0.25, (model, text, reference)


def test_whisper_window_limit_is_named(exports):
    backend = load_backend(exports / "model.onnx")
    with pytest.raises(InputError, match="longer than the model takes"):
        backend(np.zeros((1, 16000 * 31), np.float32), np.array([16000 * 31]))


def test_riva_server_streams_the_whisper_int8_export(exports, tmp_path, capsys):
    """Riva's own client streams a card recording to the gRPC server holding only the Whisper INT8 export."""
    pytest.importorskip("grpc")
    riva_client = pytest.importorskip("riva.client")
    import shutil

    from speechtao.serve.repository import ModelRepository
    from speechtao_server.app import ServerOptions, start_server

    reference = _infer(CARDS[:1], capsys, exports / "model.int8.onnx")[CARDS[0].name]
    shutil.copy(exports / "model.int8.onnx", tmp_path / "whisper_int8.onnx")
    running = start_server(ModelRepository.load(tmp_path), ServerOptions(port=0))
    auth = riva_client.Auth(uri=f"127.0.0.1:{running.port}")
    try:
        config = riva_client.RecognitionConfig(language_code="en-US", enable_word_time_offsets=True)
        scfg = riva_client.StreamingRecognitionConfig(config=config, interim_results=True)
        with riva_client.AudioChunkFileIterator(str(CARDS[0]), 1600) as chunks:
            results = [
                r
                for resp in riva_client.ASRService(auth).streaming_response_generator(chunks, scfg)
                for r in resp.results
            ]
    finally:
        auth.channel.close()
        running.stop(grace=1.0)
    finals = [r.alternatives[0].transcript for r in results if r.is_final]
    assert finals == [reference]
    assert [w.word for w in [r for r in results if r.is_final][0].alternatives[0].words] == reference.split()
