"""The Riva-protocol server over loopback, driven by Riva's own Python client (``riva.client``).

A tiny CTC model is overfit on three espeak-ng utterances (as in test_asr_eval_infer.py), saved as a checkpoint
and exported to ONNX; both are served from one model repository. A WAV file streamed exactly as Riva's file
client streams it (RIFF header in the first chunk, encoding and rate unset) must give the transcript and word
times of ``speechtao asr infer`` on the same file.
"""

import json
import shutil
import subprocess
import threading
import time

import numpy as np
import pytest
import soundfile as sf

grpc = pytest.importorskip("grpc")
riva_client = pytest.importorskip("riva.client")
from riva.client.proto import riva_asr_pb2 as rasr  # noqa: E402

TEXTS = {"left": "turn left", "door": "open the door", "stop": "stop now"}

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    d = tmp_path_factory.mktemp("speech")
    for name, text in TEXTS.items():
        subprocess.run(["espeak-ng", "-w", str(d / f"{name}.wav"), text], check=True)
    return d


def train_tiny(corpus, out):
    """A ~80k-parameter model overfit until eval-mode greedy decoding is exact three checks in a row."""
    from tiny_asr import train_tiny as overfit

    overfit(corpus, TEXTS, out)
    return out


@pytest.fixture(scope="module")
def models(corpus, tmp_path_factory):
    """A model repository: tiny.onnx (the default, first by name) and tinyckpt.ckpt (PyTorch backend)."""
    from speechtao.asr.checkpoint import load_model
    from speechtao.export.onnx_export import export_onnx

    d = tmp_path_factory.mktemp("models")
    ckpt = train_tiny(corpus, d / "tinyckpt.ckpt")
    export_onnx(load_model(ckpt), d / "tiny.onnx", tokens_txt=False)
    return d


@pytest.fixture(scope="module")
def server(models):
    from speechtao.serve.repository import ModelRepository
    from speechtao_server.app import ServerOptions, start_server
    from speechtao_server.limits import Limits

    repo = ModelRepository.load(models)
    running = start_server(repo, ServerOptions(port=0, limits=Limits(idle_timeout_s=5.0)))
    yield running
    running.stop(grace=1.0)


@pytest.fixture(scope="module")
def asr(server):
    auth = riva_client.Auth(uri=f"127.0.0.1:{server.port}")
    yield riva_client.ASRService(auth)
    auth.channel.close()


def infer(model, files):
    """`speechtao asr infer` in this process: JSON rows, one per file."""
    import contextlib
    import io

    from speechtao.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["asr", "infer", "--model", str(model), *map(str, files)]) == 0
    return [json.loads(x) for x in out.getvalue().splitlines()]


def stream_file(asr, path, model="", chunk_frames=1600, **cfg):
    """Riva's file client: raw file bytes (header included) in chunks, config with encoding and rate unset."""
    config = riva_client.RecognitionConfig(language_code="en-US", enable_word_time_offsets=True, model=model, **cfg)
    scfg = riva_client.StreamingRecognitionConfig(config=config, interim_results=True)
    with riva_client.AudioChunkFileIterator(str(path), chunk_frames) as chunks:
        return [r for resp in asr.streaming_response_generator(chunks, scfg) for r in resp.results]


def words(result):
    return [(w.word, w.start_time, w.end_time) for w in result.alternatives[0].words]


def test_streamed_wav_matches_asr_infer_with_interims_first(corpus, models, asr):
    files = [corpus / f"{n}.wav" for n in TEXTS]
    rows = infer(models / "tinyckpt.ckpt", files)
    assert [r["text"] for r in rows] == list(TEXTS.values())
    saw_interim = False
    for path, row in zip(files, rows):
        for model in ("", "tinyckpt"):  # the default (ONNX) and the PyTorch checkpoint
            results = stream_file(asr, path, model=model)
            finals = [r for r in results if r.is_final]
            assert len(finals) == 1 and results[-1].is_final, [
                (r.is_final, r.alternatives[0].transcript) for r in results
            ]
            assert finals[0].alternatives[0].transcript == row["text"]
            interims = results[:-1]
            assert all(not r.is_final and 0 <= r.stability < 1 for r in interims)
            saw_interim = saw_interim or bool(interims)
            got = words(finals[0])
            assert [w for w, _, _ in got] == row["text"].split()
            starts_ends = [x for _, s, e in got for x in (s, e)]
            assert starts_ends == sorted(starts_ends) and all(s < e for _, s, e in got)
            if model == "tinyckpt":  # same weights, same arithmetic: the same word times as `asr infer`
                assert got == [(w["word"], w["start_ms"], w["end_ms"]) for w in row["words"]]
            assert finals[0].audio_processed == pytest.approx(row["duration"], abs=0.01)
    assert saw_interim  # with 160 ms chunks and 0.48 s look-ahead, 1 s utterances get interim results


def test_offline_recognize_wav_flac_and_raw_pcm(corpus, asr, tmp_path):
    path = corpus / "door.wav"
    resp = asr.offline_recognize(path.read_bytes(), riva_client.RecognitionConfig(language_code="en-US"))
    assert [r.alternatives[0].transcript for r in resp.results] == ["open the door"]
    x, sr = sf.read(str(path), dtype="float32")
    sf.write(str(tmp_path / "door.flac"), x, sr)
    flac = (tmp_path / "door.flac").read_bytes()
    cfg = riva_client.RecognitionConfig(encoding=riva_client.AudioEncoding.FLAC)
    assert asr.offline_recognize(flac, cfg).results[0].alternatives[0].transcript == "open the door"
    # FLAC streamed: decoded once the stream ends, so the final arrives after the last chunk
    scfg = riva_client.StreamingRecognitionConfig(config=cfg, interim_results=True)
    chunks = [flac[i : i + 4000] for i in range(0, len(flac), 4000)]
    results = [r for resp in asr.streaming_response_generator(iter(chunks), scfg) for r in resp.results]
    assert [r.alternatives[0].transcript for r in results if r.is_final] == ["open the door"]
    # FLAC and Ogg/Opus streamed as Riva's transcribe_file.py streams any file: raw bytes, encoding unset
    from speechtao.audio import resample

    sf.write(str(tmp_path / "door.opus"), resample(x, sr, 16000), 16000, format="OGG", subtype="OPUS")  # Opus: 16 kHz
    for name in ("door.flac", "door.opus"):
        file_bytes = (tmp_path / name).read_bytes()
        offline = asr.offline_recognize(file_bytes, riva_client.RecognitionConfig(language_code="en-US"))
        streamed = [r for r in stream_file(asr, tmp_path / name) if r.is_final]
        assert [r.alternatives[0].transcript for r in streamed] == [offline.results[0].alternatives[0].transcript]
        if name == "door.flac":  # lossless: the WAV's transcript
            assert offline.results[0].alternatives[0].transcript == "open the door"
    opus_cfg = riva_client.RecognitionConfig(encoding=riva_client.AudioEncoding.OGGOPUS)
    opus = (tmp_path / "door.opus").read_bytes()
    assert (
        asr.offline_recognize(opus, opus_cfg).results[0].alternatives[0].transcript
        == offline.results[0].alternatives[0].transcript
    )
    # raw 16-bit PCM at 44.1 kHz (no header): resampled to the model's 16 kHz
    from speechtao.audio import pcm16_encode

    raw = pcm16_encode(resample(x, sr, 44100))
    cfg = riva_client.RecognitionConfig(encoding=riva_client.AudioEncoding.LINEAR_PCM, sample_rate_hertz=44100)
    assert asr.offline_recognize(raw, cfg).results[0].alternatives[0].transcript == "open the door"


def test_separate_channels_and_mixdown(corpus, models, asr, tmp_path):
    a, sr = sf.read(str(corpus / "left.wav"), dtype="float32")
    b, _ = sf.read(str(corpus / "stop.wav"), dtype="float32")
    stereo = np.zeros((max(len(a), len(b)), 2), np.float32)
    stereo[: len(a), 0], stereo[: len(b), 1] = a, b
    sf.write(str(tmp_path / "two.wav"), stereo, sr, subtype="PCM_16")
    for c in (0, 1):  # each channel on its own, as `asr infer` reads it (padding included)
        sf.write(str(tmp_path / f"ch{c}.wav"), stereo[:, c], sr, subtype="PCM_16")
    expected = [r["text"] for r in infer(models / "tinyckpt.ckpt", [tmp_path / "ch0.wav", tmp_path / "ch1.wav"])]
    assert expected[1] == "stop now"  # the longer one is unpadded
    results = stream_file(asr, tmp_path / "two.wav", enable_separate_recognition_per_channel=True)
    finals = {r.channel_tag: r.alternatives[0].transcript for r in results if r.is_final}
    assert finals == {0: expected[0], 1: expected[1]}
    sf.write(str(tmp_path / "same.wav"), np.stack([a, a], axis=1), sr, subtype="PCM_16")
    finals = [r for r in stream_file(asr, tmp_path / "same.wav") if r.is_final]  # mixdown of equal channels
    assert [(r.channel_tag, r.alternatives[0].transcript) for r in finals] == [(0, "turn left")]


MALFORMED = [
    # (name, requests, code, text in the message)
    (
        "audio first",
        [rasr.StreamingRecognizeRequest(audio_content=b"\0\0")],
        "INVALID_ARGUMENT",
        "send streaming_config first",
    ),
    ("two configs", "two_configs", "INVALID_ARGUMENT", "a second streaming_config"),
    ("no audio", "config_only", "INVALID_ARGUMENT", "held no audio"),
    ("bad header", "bad_header", "INVALID_ARGUMENT", "RIFF type is 'WAVX', not 'WAVE'"),
    ("24-bit wav", "pcm24", "INVALID_ARGUMENT", "24-bit PCM is not supported"),
    ("raw without rate", "raw_no_rate", "INVALID_ARGUMENT", "needs sample_rate_hertz"),
    ("opus garbage", "opus", "INVALID_ARGUMENT", "cannot be decoded as a FLAC/OGG/WAV file"),
    ("odd bytes", "odd", "INVALID_ARGUMENT", "stray byte"),
    ("unknown model", "unknown_model", "NOT_FOUND", "'nope' is not served here"),
    ("bad endpointing", "bad_endpoint", "INVALID_ARGUMENT", "stop_threshold must be in (0, 1]"),
]


def _requests(kind):
    def first(**cfg):
        return rasr.StreamingRecognizeRequest(
            streaming_config=rasr.StreamingRecognitionConfig(config=rasr.RecognitionConfig(**cfg))
        )

    audio = rasr.StreamingRecognizeRequest
    if isinstance(kind, list):
        return kind
    return {
        "two_configs": [first(), first()],
        "config_only": [first()],
        "bad_header": [first(), audio(audio_content=b"RIFF\x24\0\0\0WAVXfmt ")],
        "pcm24": [
            first(),
            audio(
                audio_content=b"RIFF\x24\0\0\0WAVEfmt \x10\0\0\0\x01\0\x01\0\x80\x3e\0\0\0\0\0\0\x03\0"
                b"\x18\0data\0\0\0\0" + b"\0" * 30
            ),
        ],
        "raw_no_rate": [first(encoding=riva_client.AudioEncoding.LINEAR_PCM), audio(audio_content=b"\0" * 320)],
        "opus": [
            first(encoding=riva_client.AudioEncoding.OGGOPUS, sample_rate_hertz=16000),
            audio(audio_content=b"\0" * 320),
        ],
        "odd": [
            first(encoding=riva_client.AudioEncoding.LINEAR_PCM, sample_rate_hertz=16000),
            audio(audio_content=b"\0" * 321),
        ],
        "unknown_model": [first(model="nope"), audio(audio_content=b"\0" * 320)],
        "bad_endpoint": [
            rasr.StreamingRecognizeRequest(
                streaming_config=rasr.StreamingRecognitionConfig(
                    config=rasr.RecognitionConfig(
                        sample_rate_hertz=16000, endpointing_config=rasr.EndpointingConfig(stop_threshold=1.5)
                    )
                )
            )
        ],
    }[kind]


@pytest.mark.parametrize("name,kind,code,text", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_streams_get_status_codes(asr, name, kind, code, text):
    with pytest.raises(grpc.RpcError) as err:
        list(asr.stub.StreamingRecognize(iter(_requests(kind)), timeout=20))
    assert err.value.code().name == code and text in err.value.details(), err.value.details()


def test_unary_errors_and_model_config(asr):
    with pytest.raises(grpc.RpcError) as err:
        asr.offline_recognize(b"", riva_client.RecognitionConfig())
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "audio is empty" in err.value.details()
    with pytest.raises(grpc.RpcError) as err:
        asr.offline_recognize(b"\0" * 64, riva_client.RecognitionConfig(model="nope"))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    cfg = asr.stub.GetRivaSpeechRecognitionConfig(rasr.RivaSpeechRecognitionConfigRequest())
    params = {c.model_name: dict(c.parameters) for c in cfg.model_config}
    assert set(params) == {"tiny", "tinyckpt"} and params["tiny"]["default"] == "true"
    assert params["tiny"]["provider"] == "CPUExecutionProvider" and params["tinyckpt"]["provider"] == "torch-cpu"
    with pytest.raises(grpc.RpcError) as err:
        asr.stub.GetRivaSpeechRecognitionConfig(rasr.RivaSpeechRecognitionConfigRequest(model_name="nope"))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


def test_nlp_rpcs_without_models_are_unimplemented(server):
    auth = riva_client.Auth(uri=f"127.0.0.1:{server.port}")
    nlp = riva_client.NLPService(auth)
    calls = [
        ("PunctuateText", lambda: nlp.punctuate_text(["hello world"])),
        ("NaturalQuery", lambda: nlp.natural_query("who", "me")),
        ("ClassifyTokens", lambda: nlp.classify_tokens(["hello"], "")),
        ("ClassifyText", lambda: nlp.classify_text(["hello"], "")),
        ("AnalyzeIntent", lambda: nlp.analyze_intent("hello")),
    ]
    for rpc, call in calls:
        with pytest.raises(grpc.RpcError) as err:
            call()
        assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED and rpc in err.value.details()
    auth.channel.close()


def test_cancel_and_deadline_free_the_stream_at_once(corpus, server, asr):
    """A client that stops mid-stream (cancel) or runs out of time (deadline) leaves no stream behind."""
    data = (corpus / "door.wav").read_bytes()
    release = threading.Event()

    def slow_requests():
        yield rasr.StreamingRecognizeRequest(
            streaming_config=rasr.StreamingRecognitionConfig(config=rasr.RecognitionConfig(), interim_results=True)
        )
        yield rasr.StreamingRecognizeRequest(audio_content=data[:8000])
        release.wait(10)

    call = asr.stub.StreamingRecognize(slow_requests())
    deadline = time.monotonic() + 5
    while server.admission.active == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.admission.active == 1
    call.cancel()
    while server.admission.active and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.admission.active == 0
    release.set()

    release.clear()
    with pytest.raises(grpc.RpcError) as err:
        list(asr.stub.StreamingRecognize(slow_requests(), timeout=0.5))
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    deadline = time.monotonic() + 3
    while server.admission.active and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.admission.active == 0
    release.set()


def _python_block(doc: str, heading: str) -> str:
    import pathlib
    import re

    text = (pathlib.Path(__file__).parents[2] / doc).read_text()
    section = text.split(heading, 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def _run_example(code, server, wav):
    code = code.replace("127.0.0.1:50051", f"127.0.0.1:{server.port}").replace('"speech.wav"', repr(str(wav)))
    exec(compile(code, "example", "exec"), {})


def test_serving_doc_client_example_runs(corpus, server, capsys):
    """The streaming client of docs/serving.md ("## Clients"), against this server and file."""
    _run_example(_python_block("docs/serving.md", "## Clients"), server, corpus / "door.wav")
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1] == "True 1.0 open the door" and all(line.startswith("False ") for line in lines[:-1])


def test_readme_client_example_runs(corpus, server, capsys):
    """The offline client of the README's "## Serving" section, against this server and file."""
    _run_example(_python_block("README.md", "## Serving"), server, corpus / "door.wav")
    assert capsys.readouterr().out.splitlines() == ["open the door"]
