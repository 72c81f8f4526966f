"""LM decoding on real audio: the Whisper-CTC starter with the committed general English LM.

- a rare name (out of the LM's vocabulary) in synthetic speech is misrecognized greedily and by the plain LM
  decoder, and recognized once it is boosted; boosting a word that is not said does not insert it;
- ``asr infer --lm`` writes word times and confidences from the beam result, and ``asr evaluate --lm`` on the
  Debian real recordings (pocketsphinx-testdata, alsa-utils) beats greedy decoding.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "models" / "whisper_tiny_en_ctc_synth.pt"
LM = ROOT / "models" / "lm_general_en"
SENTENCE = "please call harlow logistics tomorrow"


@pytest.fixture(scope="module")
def name_wav(tmp_path_factory) -> Path:
    if shutil.which("espeak-ng") is None:
        pytest.skip("needs espeak-ng (apt-get install espeak-ng)")
    wav = tmp_path_factory.mktemp("boost") / "harlow.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "140", "-w", str(wav), SENTENCE], check=True)
    return wav


@pytest.fixture(scope="module")
def whisper():
    from speechtao.asr.backends import open_model

    model = open_model(str(MODEL))
    yield model
    model.close()


def test_boosting_recognizes_a_rare_name(name_wav, whisper):
    import torch

    from speechtao.asr.ctc import greedy_decode
    from speechtao.asr.infer import Utterance
    from speechtao.lm.decode import Boost, LMDecoder

    assert "harlow" not in (LM / "words.txt").read_text().split()  # out of the LM's vocabulary
    tok = whisper.tokenizer
    lp = whisper.log_probs([Utterance(str(name_wav))])[0]
    greedy = tok.decode(list(greedy_decode(torch.from_numpy(lp.copy())[None], None, tok.blank_id)[0].token_ids))
    decoder = LMDecoder(LM, tok)
    plain = decoder.search(lp)[0].text
    boosted = decoder.search(lp, boosts=[Boost.parse("Harlow Logistics:10")])[0].text
    assert "harlow" not in greedy.split() and "harlow" not in plain.split(), (greedy, plain)
    assert "harlow" in boosted.split(), boosted
    # A boosted word that is not said is not inserted, and the rest of the transcript stays.
    absent = decoder.search(lp, boosts=[Boost.parse("Zanzibar:10"), Boost.parse("Kowalski:10")])[0].text
    assert absent == plain


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, SPEECHTAO_THREADS="1", PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "speechtao", *args], capture_output=True, text=True, env=env, cwd=ROOT)


def test_infer_with_lm_writes_word_times_and_confidences(name_wav):
    out = _cli("asr", "infer", "--model", str(MODEL), str(name_wav), "--lm", str(LM), "--boost", "Harlow:10")
    assert out.returncode == 0, out.stderr
    rec = json.loads(out.stdout.splitlines()[0])
    words = rec["words"]
    assert "harlow" in rec["text"].split() and [w["word"] for w in words] == rec["text"].split()
    assert all(0 <= w["start_ms"] < w["end_ms"] <= 1000 * rec["duration"] + 1 for w in words)
    assert all(a["end_ms"] <= b["start_ms"] for a, b in zip(words, words[1:]))
    assert all(0 < w["confidence"] <= 1 for w in words)
    assert "LM " in out.stderr  # what was loaded names the LM


@pytest.mark.slow
def test_general_lm_beats_greedy_on_real_speech(tmp_path):
    if not Path("/usr/share/pocketsphinx/test/data").is_dir():
        pytest.skip("needs pocketsphinx-testdata (apt-get install pocketsphinx-testdata alsa-utils)")
    made = _cli("data", "realspeech", "--out", str(tmp_path))
    assert made.returncode == 0, made.stderr
    manifest = str(tmp_path / "all.jsonl")
    greedy = _cli("asr", "evaluate", "--model", str(MODEL), "--manifest", manifest, "--out", str(tmp_path / "g"))
    lm = _cli(
        "asr", "evaluate", "--model", str(MODEL), "--manifest", manifest, "--lm", str(LM), "--out", str(tmp_path / "l")
    )
    assert greedy.returncode == 0 and lm.returncode == 0, greedy.stderr + lm.stderr
    wer_greedy = json.loads((tmp_path / "g" / "metrics.json").read_text())["wer"]
    wer_lm = json.loads((tmp_path / "l" / "metrics.json").read_text())["wer"]
    assert wer_lm < 0.85 * wer_greedy, (wer_greedy, wer_lm)
