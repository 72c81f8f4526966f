"""The server decodes finals with the LM of its model folder: Riva's ``speech_contexts`` boost words per request
and ``max_alternatives`` returns N-best lists, through Riva's own Python client (``riva.client``).

The repository holds the Whisper-CTC starter and the general English LM (its only LM folder: used for every
model), as ``speechtao serve --models models/`` finds them.
"""

import shutil
import subprocess
from pathlib import Path

import pytest

riva_client = pytest.importorskip("riva.client")

ROOT = Path(__file__).resolve().parents[2]
SENTENCE = "please call harlow logistics tomorrow"

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng (apt-get install espeak-ng)")


@pytest.fixture(scope="module")
def wav(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("speech") / "harlow.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "140", "-w", str(path), SENTENCE], check=True)
    return path


@pytest.fixture(scope="module")
def asr(tmp_path_factory):
    from speechtao.serve.repository import ModelRepository
    from speechtao_server.app import ServerOptions, start_server

    repo_dir = tmp_path_factory.mktemp("models")
    (repo_dir / "whisper.pt").symlink_to(ROOT / "models" / "whisper_tiny_en_ctc_synth.pt")
    (repo_dir / "lm_general_en").symlink_to(ROOT / "models" / "lm_general_en")  # the folder's only LM
    repo = ModelRepository.load(repo_dir)
    assert repo.asr("").decoder.__class__.__name__ == "LMDecoder"
    running = start_server(repo, ServerOptions(port=0))
    auth = riva_client.Auth(uri=f"127.0.0.1:{running.port}")
    yield riva_client.ASRService(auth)
    auth.channel.close()
    running.stop(grace=1.0)


def _config(**kw):
    return riva_client.RecognitionConfig(language_code="en-US", enable_word_time_offsets=True, **kw)


def _stream(asr, wav, config):
    scfg = riva_client.StreamingRecognitionConfig(config=config, interim_results=False)
    with riva_client.AudioChunkFileIterator(str(wav), 1600) as chunks:
        return [r for resp in asr.streaming_response_generator(chunks, scfg) for r in resp.results if r.is_final]


def test_streaming_max_alternatives_returns_three(asr, wav):
    finals = _stream(asr, wav, _config(max_alternatives=3))
    assert len(finals) == 1
    alts = finals[0].alternatives
    assert len(alts) == 3
    assert len({a.transcript for a in alts}) == 3
    assert all(0 < a.confidence <= 1 for a in alts)
    assert [w.word for w in alts[0].words] == alts[0].transcript.split()


def test_speech_contexts_boost_a_rare_name(asr, wav):
    plain = asr.offline_recognize(wav.read_bytes(), _config()).results[0].alternatives[0].transcript
    assert "harlow" not in plain.split()
    config = _config()
    riva_client.add_word_boosting_to_config(config, ["Harlow Logistics"], 10.0)
    boosted = asr.offline_recognize(wav.read_bytes(), config).results[0].alternatives[0].transcript
    assert "harlow" in boosted.split()
    streamed = _stream(asr, wav, config)[0].alternatives[0].transcript
    assert "harlow" in streamed.split()
    absent = _config()
    riva_client.add_word_boosting_to_config(absent, ["Zanzibar"], 10.0)
    assert asr.offline_recognize(wav.read_bytes(), absent).results[0].alternatives[0].transcript == plain
