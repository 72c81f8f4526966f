"""`speechtao data synth` through the real CLI and engines, on corpora of a few utterances."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf

from speechtao.cli import main
from speechtao.corpora.synth import list_voices

FAST = "espeak-ng,flite"  # the engines that start in milliseconds
BASE = ("--n", "6", "--engines", FAST, "--sources", "wordnet")  # wordnet: the quickest sentence source to load

pytestmark = pytest.mark.skipif(
    not list_voices("espeak-ng") or not list_voices("flite") or not shutil.which("sox"),
    reason="needs espeak-ng, flite and sox (apt-get install espeak-ng flite sox)",
)


def lines(path):
    return [json.loads(x) for x in Path(path).read_text().splitlines() if x.strip()]


def synth(out, *args):
    assert main(["data", "synth", "--out", str(out), *args]) == 0
    return lines(Path(out) / "manifest.jsonl")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "c"
    rows = synth(out, *BASE, "--workers", "2", "--seed", "11")
    return out, rows


def test_wavs_are_16k_mono_and_match_the_manifest(corpus):
    out, rows = corpus
    assert len(rows) == 6
    for r in rows:
        assert not os.path.isabs(r["audio_filepath"])
        info = sf.info(str(out / r["audio_filepath"]))
        assert (info.samplerate, info.channels, info.subtype, info.format) == (16000, 1, "PCM_16", "WAV")
        assert abs(info.frames / 16000 - r["duration"]) < 1e-3 and r["duration"] > 0.5
        audio, _ = sf.read(str(out / r["audio_filepath"]))
        assert 0.5 < abs(audio).max() < 1.0  # peak-normalized, not clipped, not silent
        assert r["engine"] in ("espeak-ng", "flite") and r["voice"].startswith(r["engine"] + ":")
        assert r["speaker"] == r["voice"] and r["text"] == r["text"].lower().strip()
        assert {"rate", "pitch"} <= set(r)
    assert sorted(p.name for p in (out / "wav").rglob("*.wav")) == sorted(Path(r["audio_filepath"]).name for r in rows)


def test_same_seed_same_corpus_whatever_the_workers(corpus, tmp_path):
    _, rows = corpus
    again = synth(tmp_path / "one", *BASE, "--workers", "1", "--seed", "11")
    assert again == rows  # espeak-ng and flite are deterministic, so even durations agree
    other = synth(tmp_path / "seed12", *BASE, "--workers", "1", "--seed", "12")
    assert [(r["voice"], r["text"]) for r in other] != [(r["voice"], r["text"]) for r in rows]


def test_resume_skips_finished_files(corpus, tmp_path, capsys):
    src, rows = corpus
    out = tmp_path / "copy"
    shutil.copytree(src, out)
    wavs = sorted((out / "wav").rglob("*.wav"))
    mtimes = {p: p.stat().st_mtime_ns for p in wavs}
    (out / "manifest.jsonl").unlink()
    wavs[2].unlink()
    assert synth(out, *BASE, "--workers", "2", "--seed", "11") == rows
    for p in wavs:
        if p != wavs[2]:
            assert p.stat().st_mtime_ns == mtimes[p]
    assert wavs[2].is_file()
    # Other content options in the same folder: refused, exit 2, naming the option.
    capsys.readouterr()
    assert main(["data", "synth", "--out", str(out), *BASE, "--seed", "12"]) == 2
    assert "seed=11, now seed=12" in capsys.readouterr().err


def test_holdout_voices_are_disjoint(corpus, tmp_path):
    src, rows = corpus
    out = tmp_path / "split"
    shutil.copytree(src, out)
    synth(out, *BASE, "--seed", "11", "--holdout-voices", "2")
    train, test = lines(out / "train.jsonl"), lines(out / "test.jsonl")
    assert test and train
    assert not {r["voice"] for r in train} & {r["voice"] for r in test}
    assert sorted(map(json.dumps, train + test)) == sorted(map(json.dumps, rows))


def test_hours_stops_at_the_shortest_prefix(tmp_path):
    rows = synth(tmp_path / "h", "--hours", "0.004", "--engines", "espeak-ng", "--workers", "2", "--sources", "wordnet")
    total = sum(r["duration"] for r in rows)
    assert total >= 0.004 * 3600 > total - rows[-1]["duration"]
    assert len(list((tmp_path / "h" / "wav").rglob("*.wav"))) == len(rows)  # the overshoot is removed


def test_festival_and_piper(tmp_path):
    engines = [e for e in ("festival", "piper") if list_voices(e)]
    if not engines:
        pytest.skip("neither festival nor piper installed")
    rows = synth(
        tmp_path / "fp",
        "--n",
        "5",
        "--engines",
        ",".join(engines),
        "--workers",
        "2",
        "--seed",
        "2",
        "--sources",
        "wordnet",
    )
    assert {r["engine"] for r in rows} == set(engines)
    for r in rows:
        info = sf.info(str(tmp_path / "fp" / r["audio_filepath"]))
        assert info.samplerate == 16000 and abs(info.frames / 16000 - r["duration"]) < 1e-3


def test_cli_prints_the_summary(tmp_path):
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "speechtao",
            "data",
            "synth",
            "--out",
            str(tmp_path / "s"),
            "--n",
            "2",
            "--engines",
            "espeak-ng,nosuch",
        ],
        capture_output=True,
        text=True,
    )
    assert p.returncode == 2 and "unknown engine 'nosuch'" in p.stderr
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "speechtao",
            "data",
            "synth",
            "--out",
            str(tmp_path / "s"),
            "--n",
            "2",
            "--engines",
            "espeak-ng",
            "--sources",
            "wordnet",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "utterances   2" in p.stdout and "espeak-ng 2" in p.stdout and "voices       2 distinct" in p.stdout


def test_docs_example_runs(tmp_path):
    doc = (Path(__file__).resolve().parents[2] / "docs" / "asr.md").read_text()
    section = doc.split("### Synthetic speech\n", 1)[1]
    line = next(x for x in section.splitlines() if x.startswith("speechtao data synth --out corpora/small"))
    args = line.split()[1:]
    args[args.index("corpora/small")] = str(tmp_path / "small")
    assert main(args + ["--sources", "wordnet"]) == 0
    train, test = lines(tmp_path / "small" / "train.jsonl"), lines(tmp_path / "small" / "test.jsonl")
    assert len(train) + len(test) == 40 and len({r["voice"] for r in test}) >= 4
