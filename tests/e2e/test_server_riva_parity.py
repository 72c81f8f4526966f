"""What Riva's own clients do, through `riva.client`, against a server with default limits: a 15-minute offline
request, 32 streams from one host, model listing as transcribe_file(_offline).py --list-models reads it,
verbatim_transcripts (inverse text normalization) and profanity_filter, language codes, unparseable requests,
lowercase bearer schemes, NLP caps, punctuation of punctuated text and an observable drain.

Models are hand-made backends (no training): the tone backend of the unit tests and a backend that spells a
fixed sentence, so the checks are about the server, fast and exact."""

import re
import threading
import time

import numpy as np
import pytest

grpc = pytest.importorskip("grpc")
riva_client = pytest.importorskip("riva.client")
from riva.client.proto import health_pb2, health_pb2_grpc  # noqa: E402
from riva.client.proto import riva_asr_pb2 as rasr  # noqa: E402
from riva.client.proto import riva_nlp_pb2 as rnlp  # noqa: E402

from speechtao.audio import pcm16_encode  # noqa: E402
from speechtao.serve.recognizer import Recognizer, StreamingOptions  # noqa: E402
from speechtao.serve.repository import ModelRepository  # noqa: E402
from speechtao.text.tokenizers import CharTokenizer  # noqa: E402
from speechtao_server.app import ServerOptions, start_server  # noqa: E402
from speechtao_server.limits import Limits  # noqa: E402
from tests.e2e.test_server_ops import pcm_requests, punct_folder, qa_folder  # noqa: E402,F401  (module fixtures)
from tests.unit.test_serve_recognizer import SR, ToneBackend, tones  # noqa: E402

SPOKEN = "damn it costs twenty five dollars"


class SpellBackend(ToneBackend):
    """Spells SPOKEN from the first output frame, one character every other frame, whatever the audio."""

    def __call__(self, audio, lengths):
        out, frames = super().__call__(audio, lengths)
        out[:] = np.log(0.1 / 28)
        out[:, :, self.tokenizer.blank_id] = np.log(0.9)
        ids = CharTokenizer().encode(SPOKEN)
        for b in range(len(audio)):
            for k, i in enumerate(ids[: int(frames[b]) // 2]):
                out[b, 2 * k] = np.log(0.1 / 28)
                out[b, 2 * k, i] = np.log(0.9)
        return out, frames


def repo():
    return ModelRepository(
        asr_models={
            "tone": Recognizer(ToneBackend(), StreamingOptions(), name="tone"),
            "spell": Recognizer(SpellBackend(), StreamingOptions(), name="spell"),
        },
        default_asr="tone",
        root="<tests>",
    )


@pytest.fixture(scope="module")
def server():
    running = start_server(repo(), ServerOptions(port=0))  # default limits: what `speechtao serve` starts with
    yield running
    running.stop(grace=1.0)


@pytest.fixture(scope="module")
def asr(server):
    auth = riva_client.Auth(uri=f"127.0.0.1:{server.port}")
    yield riva_client.ASRService(auth)
    auth.channel.close()


def rpc_error(call) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as err:
        call()
    return err.value


def test_fifteen_minutes_offline_in_one_message(asr):
    """15 min of 16-bit 16 kHz audio (28.8 MB; gRPC's default cap is 4 MiB, about 131 s)."""
    x = np.concatenate([tones(("a", 0.4), ("_", 1.6))] * 450)  # 900 s
    data = pcm16_encode(x)
    assert len(data) == 28_800_000
    config = riva_client.RecognitionConfig(
        encoding=riva_client.AudioEncoding.LINEAR_PCM, sample_rate_hertz=SR, language_code="en-US"
    )
    resp = asr.offline_recognize(data, config)
    assert [r.alternatives[0].transcript for r in resp.results] == ["a"] * 450
    assert 898.4 < resp.results[-1].audio_processed <= 900  # the last utterance ends after its tone at 898.4 s


def test_thirty_two_streams_from_one_host(server):
    """An application server is one peer: 32 concurrent streams from 127.0.0.1 with default limits."""
    x = tones(("_", 0.2), ("b", 0.3), ("_", 0.5))
    finals, errors = [], []
    opened = threading.Barrier(32, timeout=30)

    def one():
        channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
        stub = riva_client.proto.riva_asr_pb2_grpc.RivaSpeechRecognitionStub(channel)

        def requests():
            for i, req in enumerate(pcm_requests(x)):
                if i == 1:
                    opened.wait()  # every stream is open before any sends audio
                yield req

        try:
            for resp in stub.StreamingRecognize(requests(), timeout=60):
                finals.extend(r.alternatives[0].transcript for r in resp.results if r.is_final)
        except grpc.RpcError as exc:
            errors.append((exc.code(), exc.details()))
        finally:
            channel.close()

    threads = [threading.Thread(target=one) for _ in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    assert errors == [] and finals == ["b"] * 32


def test_model_listing_as_the_riva_scripts_read_it(asr):
    config = asr.stub.GetRivaSpeechRecognitionConfig(rasr.RivaSpeechRecognitionConfigRequest())
    listed = {}
    for kind in ("offline", "online"):  # transcribe_file_offline.py, transcribe_file.py
        models = {}
        for c in config.model_config:
            if c.parameters["type"] == kind:
                models.setdefault(c.parameters["language_code"], []).append({"model": [c.model_name]})
        listed[kind] = models
    assert listed["offline"] == listed["online"] == {"en-US": [{"model": ["tone"]}, {"model": ["spell"]}]}
    online = [c for c in config.model_config if c.parameters["type"] == "online"]
    assert all(c.parameters["streaming"] == "true" and "chunk_ms" in c.parameters for c in online)


def recognize(asr, **cfg):
    config = riva_client.RecognitionConfig(
        encoding=riva_client.AudioEncoding.LINEAR_PCM,
        sample_rate_hertz=SR,
        model="spell",
        enable_word_time_offsets=True,
        **cfg,
    )
    resp = asr.offline_recognize(pcm16_encode(tones(("a", 3.0))), config)
    alt = resp.results[0].alternatives[0]
    return alt.transcript, [(w.word, w.start_time, w.end_time) for w in alt.words]


def test_verbatim_transcripts_and_profanity_filter(asr):
    pytest.importorskip("nemo_text_processing", reason="inverse text normalization needs pip install 'speechtao[itn]'")
    spoken, spoken_words = recognize(asr, verbatim_transcripts=True)
    assert spoken == SPOKEN and [w for w, _, _ in spoken_words] == SPOKEN.split()
    written, words = recognize(asr)  # verbatim_transcripts unset = false, Riva's default: written form
    assert written == "damn it costs $25"
    # "$25" covers the spoken words "twenty five dollars": from the first's start to the last's end
    assert words[:3] == spoken_words[:3] and words[3] == ("$25", spoken_words[3][1], spoken_words[5][2])
    masked, words = recognize(asr, profanity_filter=True)
    assert masked == "d*** it costs $25" and words[0][0] == "d***"


def test_language_code_checked(asr):
    for code in ("en-US", "EN-us", ""):
        assert recognize(asr, language_code=code, verbatim_transcripts=True)[0] == SPOKEN
    err = rpc_error(lambda: recognize(asr, language_code="de-DE"))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "language_code 'de-DE'" in err.details()


def test_unparseable_request_is_invalid_argument(server):
    """A TextTransformRequest whose text is not UTF-8 (field 1, bytes ff fe): protobuf refuses to parse it."""
    channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
    raw = channel.unary_unary("/nvidia.riva.nlp.RivaLanguageUnderstanding/PunctuateText")
    err = rpc_error(lambda: raw(b"\x0a\x02\xff\xfe", timeout=10))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "UTF-8" in err.details(), err.details()
    raw = channel.unary_unary("/nvidia.riva.asr.RivaSpeechRecognition/Recognize")
    err = rpc_error(lambda: raw(b"\x0a\x05\x1a\x03\xff\xfe\xfd", timeout=10))  # config.language_code not UTF-8
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "Recognize" in err.details()
    channel.close()


def test_bearer_scheme_is_case_insensitive():
    token = "s3cret-token-for-tests"
    running = start_server(repo(), ServerOptions(port=0, token=token))
    try:
        for scheme in ("Bearer", "bearer", "BEARER"):
            auth = riva_client.Auth(
                uri=f"127.0.0.1:{running.port}", metadata_args=[["authorization", f"{scheme} {token}"]]
            )
            assert recognize(riva_client.ASRService(auth), verbatim_transcripts=True)[0] == SPOKEN
            auth.channel.close()
        auth = riva_client.Auth(uri=f"127.0.0.1:{running.port}", metadata_args=[["authorization", f"Basic {token}"]])
        err = rpc_error(lambda: recognize(riva_client.ASRService(auth)))
        assert err.code() == grpc.StatusCode.UNAUTHENTICATED
        auth.channel.close()
    finally:
        running.stop(grace=0.5)


def test_health_not_serving_is_observable_while_draining():
    running = start_server(repo(), ServerOptions(port=0, itn=False))
    channel = grpc.insecure_channel(f"127.0.0.1:{running.port}")
    health = health_pb2_grpc.HealthStub(channel)
    stub = riva_client.proto.riva_asr_pb2_grpc.RivaSpeechRecognitionStub(channel)
    release = threading.Event()

    def held():
        yield from pcm_requests(tones(("a", 0.2)))
        release.wait(10)

    call = stub.StreamingRecognize(held(), timeout=30)
    end = time.monotonic() + 5
    while running.active == 0 and time.monotonic() < end:
        time.sleep(0.02)
    stopper = threading.Thread(target=running.stop, kwargs={"grace": 5.0})
    stopper.start()
    try:
        time.sleep(0.3)
        assert (
            health.Check(health_pb2.HealthCheckRequest(), timeout=3).status
            == health_pb2.HealthCheckResponse.NOT_SERVING
        )
        err = rpc_error(lambda: list(stub.StreamingRecognize(pcm_requests(tones(("a", 0.2))), timeout=5)))
        assert err.code() == grpc.StatusCode.UNAVAILABLE and "shutting down" in err.details()
    finally:
        release.set()
    assert [r.is_final for resp in call for r in resp.results][-1]  # the stream in flight finished
    stopper.join(10)
    channel.close()


def test_nlp_caps_punctuated_input_and_config_names(punct_folder, qa_folder):  # noqa: F811
    from speechtao.serve.nlp import load_nlp_model

    r = repo()
    r.nlp_models["punct"] = {"punct": load_nlp_model(punct_folder)}
    r.nlp_models["qa"] = {"qa": load_nlp_model(qa_folder)}
    running = start_server(
        r, ServerOptions(port=0, itn=False, limits=Limits(max_text_chars=200, max_qa_context_chars=300))
    )
    auth = riva_client.Auth(uri=f"127.0.0.1:{running.port}")
    nlp = riva_client.NLPService(auth)
    try:
        punctuated = nlp.punctuate_text(["hello, world. how are you?"]).text[0]
        assert punctuated == nlp.punctuate_text(["hello world how are you"]).text[0]
        assert not re.search(r"[,.?]{2}", punctuated), punctuated
        err = rpc_error(lambda: nlp.punctuate_text(["word " * 41]))
        assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "--max-text-chars 200" in err.details()
        assert nlp.natural_query("who?", "x " * 150).results is not None  # 300 characters: at the cap
        err = rpc_error(lambda: nlp.natural_query("who?", "x " * 151))
        assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "--max-qa-context-chars 300" in err.details()
        config = nlp.stub.GetRivaNLPConfig(rnlp.RivaNLPConfigRequest())
        assert {c.parameters["source"] for c in config.model_config} == {punct_folder.name, qa_folder.name}
    finally:
        auth.channel.close()
        running.stop(grace=0.5)
