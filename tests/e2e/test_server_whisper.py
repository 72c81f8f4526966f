"""`speechtao serve --model whisper:tiny.en`, driven by Riva's own Python client (``riva.client``) on a real
recording Debian ships (pocketsphinx-testdata, LibriVox): offline Recognize and a real-time StreamingRecognize of
the WAV file (as Riva's file client streams it) both give the transcript and word times of `speechtao asr infer
--model whisper:tiny.en`; interims arrive before the final, and the words of the stable (0.9) interims are a
prefix of the final's words (case and punctuation aside) in every response of the stream.
"""

import contextlib
import io
import json
import string
from pathlib import Path

import pytest

from tests.e2e.serve_proc import start_serve, stop_serve

grpc = pytest.importorskip("grpc")
riva_client = pytest.importorskip("riva.client")

MODEL = "whisper:tiny.en"
STREAMING = ("--redecode-ms", "500", "--max-interim-share", "2")  # interims often enough for a 3.3 s recording
WAV = Path("/usr/share/pocketsphinx/test/data/librivox/sense_and_sensibility_01_austen_64kb-0930.wav")  # 3.3 s

pytestmark = pytest.mark.skipif(not WAV.is_file(), reason="apt-get install pocketsphinx-testdata (real recordings)")


@pytest.fixture(scope="module")
def served():
    """`speechtao serve --model whisper:tiny.en` in a child process on a free loopback port: "127.0.0.1:PORT"."""
    proc, address, lines = start_serve("--model", MODEL, "--drain-seconds", "1", "--no-itn", *STREAMING)
    assert any(f"model {MODEL}: asr torch-cpu 16000 Hz {MODEL} (default)" in x for x in lines), "".join(lines)
    yield address
    stop_serve(proc)


@pytest.fixture(scope="module")
def asr(served):
    auth = riva_client.Auth(uri=served)
    yield riva_client.ASRService(auth)
    auth.channel.close()


@pytest.fixture(scope="module")
def local():
    """`speechtao asr infer --model whisper:tiny.en WAV` in this process: its JSON row."""
    from speechtao.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["asr", "infer", "--model", MODEL, str(WAV)]) == 0
    return json.loads(out.getvalue().strip().splitlines()[-1])


def config(**kw):
    return riva_client.RecognitionConfig(language_code="en-US", enable_word_time_offsets=True, **kw)


def words_of(alt):
    return [(w.word, w.start_time, w.end_time) for w in alt.words]


def keys(text):
    return [w.strip(string.punctuation).lower() for w in text.split()]


def test_offline_recognize_equals_asr_infer(asr, local):
    resp = asr.offline_recognize(WAV.read_bytes(), config())  # a WAV file: encoding and rate from its header
    assert len(resp.results) == 1
    alt = resp.results[0].alternatives[0]
    assert alt.transcript == local["text"] and local["text"].lower().startswith("he might even have been made")
    assert words_of(alt) == [(w["word"], w["start_ms"], w["end_ms"]) for w in local["words"]]
    # Riva's default verbatim_transcripts=false: Whisper writes the written form itself, no ITN over it
    resp = asr.offline_recognize(WAV.read_bytes(), config(verbatim_transcripts=False))
    assert resp.results[0].alternatives[0].transcript == local["text"]


def test_streaming_in_real_time_ends_with_the_asr_infer_transcript(asr, local):
    scfg = riva_client.StreamingRecognitionConfig(config=config(), interim_results=True)
    chunks = riva_client.AudioChunkFileIterator(str(WAV), 1600, riva_client.sleep_audio_length)  # 100 ms, real time
    responses = list(asr.streaming_response_generator(chunks, scfg))
    finals = [r for resp in responses for r in resp.results if r.is_final]
    assert len(finals) == 1
    final = finals[0].alternatives[0]
    assert final.transcript == local["text"]
    assert words_of(final) == [(w["word"], w["start_ms"], w["end_ms"]) for w in local["words"]]
    interims = [resp for resp in responses if resp.results and not resp.results[0].is_final]
    assert interims, "no interim result before the final"
    final_keys = keys(final.transcript)
    stable_seen = 0
    for resp in interims:
        assert [round(r.stability, 3) for r in resp.results] in ([0.9], [0.1], [0.9, 0.1]), resp
        joined = "".join(r.alternatives[0].transcript for r in resp.results)
        assert joined == joined.strip() and joined  # the stable part and the rest read as one hypothesis
        if round(resp.results[0].stability, 3) == 0.9:
            stable = keys(resp.results[0].alternatives[0].transcript)
            assert final_keys[: len(stable)] == stable, (stable, final_keys)
            stable_seen += 1
    assert stable_seen >= 1, [[(r.stability, r.alternatives[0].transcript) for r in x.results] for x in interims]


def test_bad_requests_get_the_ctc_paths_statuses(asr):
    raw = WAV.read_bytes()[44:]  # samples without the header and without sample_rate_hertz
    with pytest.raises(grpc.RpcError) as err:
        asr.offline_recognize(raw, config(encoding=riva_client.AudioEncoding.LINEAR_PCM))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "sample_rate_hertz" in err.value.details()
    with pytest.raises(grpc.RpcError) as err:
        asr.offline_recognize(WAV.read_bytes(), config(model="whisper:small"))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND and MODEL in err.value.details()


def test_model_listing_names_the_whisper_streaming_settings(asr):
    resp = asr.stub.GetRivaSpeechRecognitionConfig(riva_client.proto.riva_asr_pb2.RivaSpeechRecognitionConfigRequest())
    online = {c.parameters["type"]: dict(c.parameters) for c in resp.model_config if c.model_name == MODEL}["online"]
    assert online["family"] == "whisper_seq" and online["redecode_ms"] == "500" and online["final_beam"] == "5"
    assert online["interim_beam"] == "1" and online["endpointing"] == "energy_vad"
    assert online["bf16_encoder"] in ("interims", "off")  # off where the CPU has no native bf16


@pytest.mark.slow  # ~1 min on the loaded 2-core machine: two 30 s windows on each side
def test_offline_recording_over_30_s_is_asr_infer_in_30_s_windows(asr, tmp_path):
    """The five cards and the five LibriVox recordings back to back (34 s): one result per 30 s window, their texts
    joined are `asr infer`'s transcript of the file."""
    import numpy as np
    import soundfile as sf

    from speechtao.audio import read_audio
    from speechtao.cli import main

    rows = [json.loads(line) for line in Path("manifests/realspeech/all.jsonl").read_text().splitlines()][:10]
    audio = np.concatenate([read_audio(r["audio_filepath"], 16000) for r in rows])
    wav = tmp_path / "long.wav"
    sf.write(str(wav), audio, 16000, subtype="PCM_16")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["asr", "infer", "--model", MODEL, str(wav)]) == 0
    local = json.loads(out.getvalue().strip().splitlines()[-1])
    resp = asr.offline_recognize(wav.read_bytes(), config())
    assert len(resp.results) == 2  # 0-30 s and 30-34 s
    assert " ".join(r.alternatives[0].transcript for r in resp.results) == local["text"]
    words = [(w.word, w.start_time, w.end_time) for r in resp.results for w in r.alternatives[0].words]
    assert words == [(w["word"], w["start_ms"], w["end_ms"]) for w in local["words"]]
    assert resp.results[1].alternatives[0].words[0].start_time >= 30000
