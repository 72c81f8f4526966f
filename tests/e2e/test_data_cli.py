"""`speechtao data validate | convert | stats` through the real command line on tiny generated audio."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

SR = 16000


def run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "speechtao", *map(str, args)], capture_output=True, text=True, cwd=cwd)


def make_wav(path: Path, seconds: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.zeros(int(seconds * SR), dtype="float32"), SR)


def test_validate_reports_every_defect_with_its_line_and_exits_2(tmp_path):
    make_wav(tmp_path / "good.wav", 1.0)
    manifest = tmp_path / "train.jsonl"
    manifest.write_text(
        "\n".join(
            [
                '{"audio_filepath": "good.wav", "duration": 1.0, "text": "fine"}',
                '{"audio_filepath": "good.wav", "duration": 1.0, "text": "broken"',
                '{"audio_filepath": "a.wav", "duration": 1.0, "text": "missing audio"}',
                '{"audio_filepath": "good.wav", "duration": 1.0}',
                '{"audio_filepath": "good.wav", "offset": 0.2, "duration": -0.5, "text": "negative"}',
            ]
        )
        + "\n"
    )
    result = run_cli("data", "validate", "train.jsonl", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stdout.splitlines() == [
        "train.jsonl:2: invalid JSON: Expecting ',' delimiter at column 65 (each line must be one complete JSON "
        "object)",
        f"train.jsonl:3: audio_filepath 'a.wav' not found at {tmp_path / 'a.wav'} (paths resolve relative to the "
        "manifest's folder)",
        "train.jsonl:4: missing required field 'text' (every line needs audio_filepath, duration and text)",
        "train.jsonl:5: duration -0.5 must be a positive number of seconds (measure it from the audio, e.g. "
        "speechtao data convert)",
    ]
    assert result.stderr.strip() == "error: train.jsonl: 5 lines, 4 defects"


def test_validate_ok_vocab_and_no_audio(tmp_path):
    make_wav(tmp_path / "clips" / "a.wav", 1.0)
    make_wav(tmp_path / "clips" / "b.wav", 2.0)
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(
        '{"audio_filepath": "clips/a.wav", "duration": 1.0, "text": "it\'s one"}\n'
        '{"audio_filepath": "clips/b.wav", "duration": 2.0, "text": "Two: 2 Ωmega"}\n'
    )
    ok = run_cli("data", "validate", manifest)
    assert ok.returncode == 0 and ok.stdout.strip() == "OK: 2 utterances, 0.000833 hours (3.0 s)"
    bad = run_cli("data", "validate", manifest, "--vocab", "char")
    assert bad.returncode == 2
    assert bad.stdout.strip() == (
        f"{manifest}:2: text has characters the normalizer cannot spell: 'Ω' "
        "(transliterate them into English letters, or drop the line)"
    )
    (tmp_path / "clips" / "b.wav").unlink()
    assert run_cli("data", "validate", manifest).returncode == 2
    assert run_cli("data", "validate", manifest, "--no-audio").returncode == 0


def test_convert_folder_then_validate_and_stats(tmp_path):
    corpus = tmp_path / "corpus"
    for name, seconds, text in [("s1/a", 0.5, "alpha"), ("s1/b", 1.5, "beta beta"), ("s2/c", 3.0, "gamma")]:
        make_wav(corpus / f"{name}.wav", seconds)
        (corpus / f"{name}.txt").write_text(text + "\n")
    out = tmp_path / "lists" / "all.jsonl"
    result = run_cli("data", "convert", "--from", "folder", corpus, "--out", out, "--max-duration", "2")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "dropped 1 of 3 utterances: 1 longer than 2 s",
        f"wrote 2 utterances (0.000556 hours, 2.0 s) to {out}",
    ]
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert rows == [
        {"audio_filepath": "../corpus/s1/a.wav", "duration": 0.5, "text": "alpha"},
        {"audio_filepath": "../corpus/s1/b.wav", "duration": 1.5, "text": "beta beta"},
    ]
    assert run_cli("data", "validate", out, "--vocab", "char").returncode == 0

    stats = run_cli("data", "stats", out, "--json")
    assert stats.returncode == 0, stats.stderr
    s = json.loads(stats.stdout)
    assert (s["utterances"], s["seconds"], s["duration"]["min"], s["duration"]["max"]) == (2, 2.0, 0.5, 1.5)
    assert s["words"] == {"total": 3, "vocabulary": 2, "top": [["beta", 2], ["alpha", 1]]}
    text = run_cli("data", "stats", out).stdout
    assert "utterances  2" in text and "hours       0.001 (2.0 s)" in text


def test_convert_reports_missing_transcripts_and_exits_2(tmp_path):
    make_wav(tmp_path / "c" / "a.wav", 0.5)
    make_wav(tmp_path / "c" / "b.wav", 0.5)
    (tmp_path / "c" / "b.txt").write_text("bee")
    result = run_cli("data", "convert", "--from", "folder", tmp_path / "c", "--out", tmp_path / "m.jsonl")
    assert result.returncode == 2
    assert f"{tmp_path / 'c' / 'a.wav'}: no transcript a.txt next to it" in result.stderr
    assert not (tmp_path / "m.jsonl").exists()
    result = run_cli(
        "data", "convert", "--from", "folder", tmp_path / "c", "--out", tmp_path / "m.jsonl", "--min-duration", "1"
    )
    assert result.returncode == 2 and "no transcript a.txt" in result.stderr
    (tmp_path / "c" / "a.txt").write_text("ay")
    result = run_cli(
        "data", "convert", "--from", "folder", tmp_path / "c", "--out", tmp_path / "m.jsonl", "--min-duration", "1"
    )
    assert result.returncode == 2 and "duration filter left no utterances" in result.stderr
