"""A recording longer than the Whisper encoder's 30 s: `speechtao asr evaluate` and `asr infer` decode it in
overlapping windows (speechtao.asr.longform) instead of refusing it, and what they hear is what they hear in
the recordings it is made of.

The recording: the 18 real recordings of Debian's pocketsphinx-testdata and alsa-utils, one after another with
a second of silence between them (63.8 s). The model: the Whisper-CTC starter in models/.
"""

import difflib
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from speechtao.cli import main

STARTER = Path(__file__).parents[2] / "models" / "whisper_tiny_en_ctc_synth.pt"
GAP_S = 1.0


@pytest.fixture(scope="module")
def recordings(tmp_path_factory):
    from speechtao.audio import read_audio
    from speechtao.corpora.realspeech import ALSA_DIR, POCKETSPHINX_DIR, write_realspeech_manifests

    if not (POCKETSPHINX_DIR / "cards").is_dir() or not (ALSA_DIR / "Front_Left.wav").is_file():
        pytest.skip("the Debian packages pocketsphinx-testdata and alsa-utils are not installed")
    if not STARTER.is_file():
        pytest.fail(f"{STARTER} is missing (it is committed with the repository)")
    d = tmp_path_factory.mktemp("long")
    parts = write_realspeech_manifests(d / "parts")["all"]
    rows = [json.loads(x) for x in parts.read_text().splitlines()]
    audio, starts = [], []
    for r in rows:
        starts.append(sum(len(a) for a in audio) / 16000)
        audio += [read_audio(r["audio_filepath"], 16000), np.zeros(int(GAP_S * 16000), np.float32)]
    x = np.concatenate(audio)
    sf.write(str(d / "long.wav"), x, 16000, subtype="PCM_16")
    line = {
        "audio_filepath": str(d / "long.wav"),
        "duration": len(x) / 16000,
        "text": " ".join(r["text"] for r in rows),
    }
    (d / "long.jsonl").write_text(json.dumps(line) + "\n")
    return d, parts, starts


def test_a_minute_long_recording_reads_as_its_parts(recordings, tmp_path, capsys):
    from speechtao.asr.metrics import cer

    d, parts, starts = recordings
    assert (
        main(["asr", "evaluate", "--model", str(STARTER), "--manifest", str(d / "long.jsonl"), "--out", str(tmp_path)])
        == 0
    )
    capsys.readouterr()
    (long_row,) = [json.loads(x) for x in (tmp_path / "utterances.jsonl").read_text().splitlines()]
    assert long_row["duration"] > 60
    assert main(["asr", "infer", "--model", str(STARTER), "--manifest", str(parts)]) == 0
    part_rows = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    joined = " ".join(r["text"] for r in part_rows)
    refs = " ".join(json.loads(x)["text"] for x in parts.read_text().splitlines())
    # measured: CER 0.17 between the two transcripts; the long one scores CER 29.2% (WER 80.6%), the parts 32.1%
    # (83.3%)
    assert cer([joined], [long_row["hypothesis"]]) < 0.3, (joined, long_row["hypothesis"])
    assert cer([refs], [long_row["hypothesis"]]) < cer([refs], [joined]) + 0.04

    # word times: the words both transcripts share sit where the parts put them, shifted by each part's start
    assert main(["asr", "infer", "--model", str(STARTER), str(d / "long.wav")]) == 0
    (long_words,) = [json.loads(x)["words"] for x in capsys.readouterr().out.splitlines()]
    part_words = [
        dict(w, start_ms=w["start_ms"] + round(1000 * s), end_ms=w["end_ms"] + round(1000 * s))
        for row, s in zip(part_rows, starts)
        for w in row["words"]
    ]
    a, b = [w["word"] for w in part_words], [w["word"] for w in long_words]
    pairs = [
        (part_words[m.a + k], long_words[m.b + k])
        for m in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_matching_blocks()
        for k in range(m.size)
    ]
    assert len(pairs) > 0.4 * len(part_words)  # measured: 48 of 101 (the starter often runs words together)
    shifts = sorted(abs(p["start_ms"] - q["start_ms"]) for p, q in pairs)
    # measured: median 10 ms, 90th percentile 36 ms (a few matches pair a common word with another "of")
    assert shifts[len(shifts) // 2] <= 40 and shifts[int(0.9 * len(shifts))] <= 200, shifts


def test_a_window_longer_than_the_model_takes_is_refused(recordings, capsys):
    d, _, _ = recordings
    args = ["asr", "evaluate", "--model", str(STARTER), "--manifest", str(d / "long.jsonl"), "--window-s", "40"]
    assert main(args) == 2
    assert "long-form window of 40.0 s: the model takes at most 30.0 s" in capsys.readouterr().err
    assert main([*args[:-1], "10", "--overlap-s", "6"]) == 2
    assert "long-form overlap of 6 s: must be between 0 and half the window (5 s)" in capsys.readouterr().err
