"""`speechtao data augment` through the real CLI on a real recording: N deterministic copies per utterance,
a new manifest that validates, the SNR asked for, codecs, resume by rerun, and errors that exit 2."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "audio_speech_16k.wav"


def run_cli(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "speechtao", *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=300
    )


@pytest.fixture
def manifest(tmp_path):
    shutil.copy(FIXTURE, tmp_path / "speech.wav")
    seconds = sf.info(str(tmp_path / "speech.wav")).duration
    lines = [
        {"audio_filepath": "speech.wav", "duration": seconds, "text": "the whole recording", "speaker": "a"},
        {"audio_filepath": "speech.wav", "offset": 0.5, "duration": 1.0, "text": "a segment of it"},
    ]
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return path


def _read(path):
    return [json.loads(x) for x in Path(path).read_text().splitlines()]


def test_copies_are_deterministic_valid_and_resume(manifest, tmp_path):
    args = ["data", "augment", "--manifest", manifest, "--copies", "2", "--seed", "7"]
    r = run_cli(*args, "--out", tmp_path / "a")
    assert r.returncode == 0, r.stderr
    assert "4 lines (4 files made, 0 reused" in r.stdout
    out = tmp_path / "a" / "train.aug.jsonl"
    rows = _read(out)
    assert [x["text"] for x in rows] == ["the whole recording"] * 2 + ["a segment of it"] * 2
    assert rows[0]["speaker"] == "a" and all(isinstance(x["augmentation"], list) for x in rows)
    for x in rows:  # each line's duration is its file's, paths relative to the manifest
        assert x["duration"] == pytest.approx(sf.info(str(out.parent / x["audio_filepath"])).duration, abs=1e-3)
    assert run_cli("data", "validate", out).returncode == 0
    # the same seed elsewhere gives the same bytes; a rerun reuses every file and writes the same manifest
    assert run_cli(*args, "--out", tmp_path / "b").returncode == 0
    for x in rows:
        assert (tmp_path / "a" / x["audio_filepath"]).read_bytes() == (
            tmp_path / "b" / x["audio_filepath"]
        ).read_bytes()
    (tmp_path / "a" / rows[3]["audio_filepath"]).unlink()  # as if interrupted before the last file
    r = run_cli(*args, "--out", tmp_path / "a")
    assert "(1 files made, 3 reused" in r.stdout, r.stdout
    assert _read(out) == rows
    # another seed draws other augmentations
    assert run_cli(*args[:-1], "8", "--out", tmp_path / "c").returncode == 0
    other = _read(tmp_path / "c" / "train.aug.jsonl")
    assert any(
        (tmp_path / "a" / x["audio_filepath"]).read_bytes() != (tmp_path / "c" / y["audio_filepath"]).read_bytes()
        for x, y in zip(rows, other)
    )


def test_noise_at_the_snr_asked_and_codecs(manifest, tmp_path):
    if shutil.which("ffmpeg") is None and not os.environ.get("SPEECHTAO_REQUIRE_TOOLS"):
        pytest.skip("ffmpeg is not installed (apt-get install ffmpeg); the opus codec needs it")
    r = run_cli(
        "data", "augment", "--manifest", manifest, "--out", tmp_path / "n",
        "chain.speed_prob=0", "chain.reverb_prob=0", "chain.noise_prob=1", "chain.noise_snr_db=[10, 10]",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    row = _read(tmp_path / "n" / "train.aug.jsonl")[0]
    assert row["augmentation"] == ["noise:snr=10.0"]
    clean, _ = sf.read(str(FIXTURE), dtype="float32")
    noisy, _ = sf.read(str(tmp_path / "n" / row["audio_filepath"]), dtype="float32")
    snr = 10 * np.log10(np.mean(clean**2) / np.mean((noisy - clean) ** 2))
    assert snr == pytest.approx(10.0, abs=0.3)  # 16-bit rounding aside
    r = run_cli(
        "data", "augment", "--manifest", manifest, "--out", tmp_path / "k", "--copies", "3",
        "chain.speed_prob=0", "chain.reverb_prob=0", "chain.noise_prob=0", "codecs=[mulaw, opus]", "codec_prob=1",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    rows = _read(tmp_path / "k" / "train.aug.jsonl")
    assert {x["augmentation"][0] for x in rows} == {"codec:mulaw", "codec:opus"}
    for x in rows[:3]:  # band-limited and lossy, yet the same speech: strongly correlated with the clean signal
        y, _ = sf.read(str(tmp_path / "k" / x["audio_filepath"]), dtype="float32")
        assert len(y) == len(clean) and not np.array_equal(y, clean)
        assert np.corrcoef(y, clean)[0, 1] > 0.8


@pytest.mark.parametrize(
    "extra,message",
    [
        (["codecs=[flac9]", "codec_prob=1"], "codec 'flac9' is not one of"),
        (["chain.speed_prob=0", "chain.noise_prob=0", "chain.reverb_prob=0"], "nothing to apply"),
        (["--copies", "0"], "copies must be >= 1"),
    ],
)
def test_bad_options_exit_2_naming_them(manifest, tmp_path, extra, message):
    r = run_cli("data", "augment", "--manifest", manifest, "--out", tmp_path / "x", *extra)
    assert r.returncode == 2 and message in r.stderr, r.stderr


def test_broken_manifest_line_exits_2_before_writing(manifest, tmp_path):
    manifest.write_text(manifest.read_text() + '{"audio_filepath": "gone.wav", "duration": 1.0, "text": "x"}\n')
    r = run_cli("data", "augment", "--manifest", manifest, "--out", tmp_path / "x")
    assert r.returncode == 2 and "train.jsonl:3" in r.stderr and "gone.wav" in r.stderr, r.stderr
    assert not (tmp_path / "x" / "train.aug.jsonl").exists()
