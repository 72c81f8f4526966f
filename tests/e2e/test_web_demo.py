"""`speechtao serve --web`: the browser page in headless Chromium, a WAV file as its microphone. The page streams
the microphone through the WebSocket bridge into the gRPC server; the final transcript must equal `speechtao asr
infer` on the same file. Also: the page is one self-contained file (no CDN), and the bridge answers questions."""

import os
import shutil
import subprocess
import time
import urllib.request

import numpy as np
import pytest
import soundfile as sf

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None:
    pytest.skip("Chromium is not installed (apt-get install chromium)", allow_module_level=True)
if shutil.which("espeak-ng") is None:
    pytest.skip("espeak-ng is not installed (apt-get install espeak-ng)", allow_module_level=True)

TEXTS = {"lights": "turn on the lights", "door": "open the door", "stop": "stop now"}


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    from tiny_asr import train_tiny

    from speechtao.audio import read_audio, resample
    from speechtao.serve.repository import ModelRepository
    from speechtao_server.app import ServerOptions, start_server
    from speechtao_server.web import start_web

    d = tmp_path_factory.mktemp("web")
    rng = np.random.default_rng(0)
    clips = {}
    for name, text in TEXTS.items():  # each clip as a microphone hears it: lead-in, speech, a pause, a noise floor
        subprocess.run(["espeak-ng", "-w", str(d / f"{name}.raw.wav"), text], check=True)
        speech = read_audio(d / f"{name}.raw.wav", 16000)
        # the clip the test plays, and two variants so that the tiny model does not hang on the exact samples:
        # through 44.1 kHz and back at another level, and with shorter pauses
        # and sub-frame shifts (the microphone starts at no particular sample)
        variants = {
            name: (speech, 4000, 32000),
            f"{name}_r": (0.8 * resample(resample(speech, 16000, 44100), 44100, 16000), 4000, 32000),
            f"{name}_p": (speech, 1600, 8000),
            **{f"{name}_s{k}": (speech, 4000 + k, 32000) for k in (40, 80, 120)},
        }
        for key, (x, lead, tail) in variants.items():
            x = np.concatenate([np.zeros(lead, "float32"), x, np.zeros(tail, "float32")])
            sf.write(str(d / f"{key}.wav"), x + rng.normal(0, 1e-3, len(x)).astype("float32"), 16000)
            clips[key] = text
    models = d / "models"
    models.mkdir()
    train_tiny(d, clips, models / "tiny.ckpt")
    running = start_server(ModelRepository.load(models), ServerOptions(port=0, itn=False))
    bridge = start_web(running.port, "127.0.0.1", 0)
    yield d, models / "tiny.ckpt", bridge
    bridge.stop()
    running.stop(grace=1.0)


def test_page_is_self_contained(served):
    _, _, bridge = served
    page = urllib.request.urlopen(bridge.url, timeout=10).read().decode()
    assert "<script src" not in page and "https://" not in page and "getUserMedia" in page
    with pytest.raises(urllib.error.HTTPError):
        urllib.request.urlopen(bridge.url + "nothing-here", timeout=10)


def test_microphone_in_chromium_gives_the_transcript_of_asr_infer(served, tmp_path):
    from speechtao.asr.checkpoint import load_model
    from speechtao.asr.infer import Transcriber, utterances_from

    d, ckpt, bridge = served
    mic = d / "lights.wav"  # Chromium plays it as the microphone, looping; the page stops before it loops
    expected = Transcriber.from_loaded(load_model(ckpt)).transcribe(utterances_from([str(mic)]))[0].text
    assert expected == TEXTS["lights"]
    seconds = sf.info(str(mic)).duration - 1.0
    profile = tmp_path / "profile"
    cmd = [
        CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", f"--user-data-dir={profile}",
        "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={mic}", "--autoplay-policy=no-user-gesture-required",
        "--remote-debugging-port=0", f"{bridge.url}?auto=mic&seconds={seconds:.2f}",
    ]  # fmt: skip
    browser = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=dict(os.environ))
    try:
        deadline = time.monotonic() + 90
        while not bridge.finals and time.monotonic() < deadline and browser.poll() is None:
            time.sleep(0.2)
        time.sleep(1.0)  # a last final of the same stream, if any
    finally:
        browser.kill()
        err = browser.stderr.read().decode(errors="replace")[-2000:]
    heard = " ".join(bridge.finals).strip()
    assert heard, f"no final transcript came back from the page (Chromium said: {err})"
    assert heard == expected
