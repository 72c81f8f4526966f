"""`speechtao asr evaluate` and `speechtao asr infer` through the real CLI on espeak-ng speech.

A tiny CTC model (~80k parameters) is trained here for a few seconds until it transcribes three espeak-ng
utterances exactly; the checkpoint it saves is then evaluated (WER 0) and transcribed word for word. A
preset with random weights checks the mechanics where the words do not matter (WER ~100%, --max-wer gating).
"""

import json
import os
import re
import shutil
import subprocess
import sys

import pytest
import soundfile as sf
import torch

TEXTS = {"left": "turn left", "door": "open the door", "stop": "stop now"}
LAST_LINE = re.compile(r"^WER (\d+\.\d\d)% CER (\d+\.\d\d)% \((\d+) utterances, ([0-9.e-]+) hours\)$")

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="apt-get install espeak-ng")


def run_cli(*args):
    """The installed command in a child process (one test uses it: what a user types)."""
    env = dict(os.environ, SPEECHTAO_THREADS="1")
    return subprocess.run([sys.executable, "-m", "speechtao", *args], capture_output=True, text=True, env=env)


@pytest.fixture
def cli(capsys):
    """The same command line in this process (``speechtao.cli.main``): saves a torch import per call."""
    from speechtao.cli import main

    def call(*args):
        capsys.readouterr()
        rc = main([str(a) for a in args])
        out, err = capsys.readouterr()
        return subprocess.CompletedProcess(args, rc, out, err)

    return call


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Three espeak-ng utterances (22.05 kHz WAV) and a manifest with written-form references."""
    d = tmp_path_factory.mktemp("speech")
    lines = []
    for name, text in TEXTS.items():
        subprocess.run(["espeak-ng", "-w", str(d / f"{name}.wav"), text], check=True)
        info = sf.info(str(d / f"{name}.wav"))
        assert info.samplerate == 22050  # read_audio resamples to the model's 16 kHz
        written = text.capitalize() + "."  # the normalizer must make "Turn left." score as "turn left"
        lines.append({"audio_filepath": f"{name}.wav", "duration": info.frames / info.samplerate, "text": written})
    manifest = d / "test.jsonl"
    manifest.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return d, manifest


@pytest.fixture(scope="module")
def trained(corpus):
    """A checkpoint of a tiny model overfit on the three utterances (stops once eval-mode decoding is exact)."""
    from tiny_asr import train_tiny

    d, _ = corpus
    path = d / "tiny.ckpt"
    train_tiny(d, TEXTS, path)
    return path


def test_evaluate_trained_model_scores_zero_and_writes_outputs(corpus, trained, tmp_path):
    d, manifest = corpus
    out = tmp_path / "eval"
    r = run_cli(
        "asr",
        "evaluate",
        "--model",
        str(trained),
        "--manifest",
        str(manifest),
        "--out",
        str(out),
        "--max-wer",
        "5",
        "--batch-size",
        "2",
    )
    assert r.returncode == 0, r.stderr
    m = LAST_LINE.match(r.stdout.strip().splitlines()[-1])
    assert m and m.group(1) == "0.00" and m.group(2) == "0.00" and m.group(3) == "3"
    metrics = json.loads((out / "metrics.json").read_text())
    assert (
        metrics["wer"] == 0.0
        and metrics["cer"] == 0.0
        and metrics["n"] == 3
        and metrics["rtf"] > metrics["rtf_model"] > 0
    )
    seconds = sum(sf.info(str(d / f"{n}.wav")).duration for n in TEXTS)
    assert metrics["hours"] == pytest.approx(seconds / 3600, rel=1e-3)
    assert metrics["model"] == str(trained) and metrics["manifest"] == str(manifest)
    utts = [json.loads(x) for x in (out / "utterances.jsonl").read_text().splitlines()]
    assert [u["hypothesis"] for u in utts] == list(TEXTS.values())  # manifest order, not duration order
    assert [u["reference"] for u in utts] == [t.capitalize() + "." for t in TEXTS.values()]
    assert all(u["wer"] == 0 and {o["op"] for o in u["ops"]} == {"ok"} for u in utts)
    assert (out / "worst.txt").read_text() == "no word errors in 3 utterances\n"


def test_evaluate_random_preset_fails_max_wer_with_consistent_counts(corpus, tmp_path, cli):
    _, manifest = corpus
    out = tmp_path / "eval"
    r = cli(
        "asr",
        "evaluate",
        "--model",
        "quartznet_small",
        "--manifest",
        str(manifest),
        "--out",
        str(out),
        "--max-wer",
        "50",
        "--worst",
        "2",
    )
    assert r.returncode == 1, r.stdout + r.stderr
    assert "above --max-wer 50%" in r.stderr
    last = r.stdout.strip().splitlines()[-1]
    m = LAST_LINE.match(last)
    assert m, last
    metrics = json.loads((out / "metrics.json").read_text())
    assert float(m.group(1)) == pytest.approx(100 * metrics["wer"], abs=0.006) and metrics["wer"] > 0.5
    utts = [json.loads(x) for x in (out / "utterances.jsonl").read_text().splitlines()]
    for u in utts:  # the alignment spells both sides and its error count is the utterance's WER numerator
        ops = u["ops"]
        assert [o["ref"] for o in ops if o["op"] != "ins"] == u["normalized_reference"].split()
        assert [o["hyp"] for o in ops if o["op"] != "del"] == u["normalized_hypothesis"].split()
        errors = sum(o["op"] != "ok" for o in ops)
        assert errors == u["errors"] == u["substitutions"] + u["deletions"] + u["insertions"]
        assert u["wer"] == pytest.approx(errors / u["ref_words"])
    assert metrics["word_errors"] == sum(u["errors"] for u in utts)
    assert metrics["wer"] == pytest.approx(sum(u["errors"] for u in utts) / sum(u["ref_words"] for u in utts))
    worst = (out / "worst.txt").read_text()
    assert worst.count("REF: ") == 2 and "worst 2 of 3 utterances" in r.stdout


def test_infer_trained_model_transcribes_words_with_times(corpus, trained, tmp_path, cli):
    d, _ = corpus
    files = [str(d / f"{n}.wav") for n in TEXTS]
    r = cli("asr", "infer", "--model", str(trained), *files)
    assert r.returncode == 0, r.stderr
    rows = [json.loads(x) for x in r.stdout.splitlines()]
    assert [row["text"] for row in rows] == list(TEXTS.values())
    for row, f in zip(rows, files):
        assert row["audio_filepath"] == f
        assert [w["word"] for w in row["words"]] == row["text"].split()
        assert row["duration"] == pytest.approx(sf.info(f).duration, abs=2e-3)
        bounds = [(w["start_ms"], w["end_ms"]) for w in row["words"]]
        for (s0, e0), (s1, _e1) in zip(bounds, bounds[1:] + [(10**9, 10**9)]):
            assert 0 <= s0 < e0 <= s1 and e0 <= row["duration"] * 1000 + 1
        assert all(0 < w["confidence"] <= 1 for w in row["words"])

    ctm = tmp_path / "out.ctm"
    assert cli("asr", "infer", "--model", str(trained), *files, "--format", "ctm", "--out", str(ctm)).returncode == 0
    lines = [x.split() for x in ctm.read_text().splitlines()]
    assert [x[4] for x in lines] == " ".join(TEXTS.values()).split()
    assert [x[0] for x in lines] == ["left", "left", "door", "door", "door", "stop", "stop"]
    assert all(x[1] == "1" and float(x[3]) > 0 for x in lines)


def test_infer_manifest_srt_writes_one_file_per_recording(corpus, trained, tmp_path, cli):
    _, manifest = corpus
    out = tmp_path / "subs"
    r = cli("asr", "infer", "--model", str(trained), "--manifest", str(manifest), "--format", "srt", "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in out.iterdir()) == ["door.srt", "left.srt", "stop.srt"]
    cue = (out / "door.srt").read_text().split("\n")
    assert cue[0] == "1" and re.match(r"^00:00:0\d,\d{3} --> 00:00:0\d,\d{3}$", cue[1]) and cue[2] == "open the door"
    r = cli("asr", "infer", "--model", str(trained), "--manifest", str(manifest), "--format", "srt")
    assert r.returncode == 2 and "pass --out FOLDER" in r.stderr


def test_segments_of_one_recording_share_one_timeline(corpus, trained, tmp_path, cli):
    """Manifest segments (offset + duration) of one long file: times count from the file's start, one SRT."""
    import numpy as np

    d, _ = corpus
    gap = np.zeros(11025, dtype=np.float32)  # 0.5 s of silence at 22.05 kHz
    pieces, lines, t = [], [], 0.0
    for name in TEXTS:
        x, sr = sf.read(str(d / f"{name}.wav"), dtype="float32")
        pieces += [gap, x]
        t += len(gap) / sr
        lines.append({"audio_filepath": "long.wav", "offset": t, "duration": len(x) / sr, "text": TEXTS[name]})
        t += len(x) / sr
    sf.write(str(tmp_path / "long.wav"), np.concatenate(pieces + [gap]), 22050)
    manifest = tmp_path / "segments.jsonl"
    manifest.write_text("".join(json.dumps(x) + "\n" for x in lines))

    r = cli("asr", "infer", "--model", trained, "--manifest", manifest)
    rows = [json.loads(x) for x in r.stdout.splitlines()]
    assert [row["text"] for row in rows] == list(TEXTS.values())
    for row, line in zip(rows, lines):
        assert row["offset"] == line["offset"]
        lo, hi = 1000 * line["offset"], 1000 * (line["offset"] + line["duration"])
        assert all(lo - 1 <= w["start_ms"] < w["end_ms"] <= hi + 1 for w in row["words"])
    srt = tmp_path / "long.srt"
    assert (
        cli("asr", "infer", "--model", trained, "--manifest", manifest, "--format", "srt", "--out", srt).returncode == 0
    )
    cues = srt.read_text().strip().split("\n\n")
    assert [c.split("\n")[2] for c in cues] == list(TEXTS.values())  # cues do not span segments
    starts = [c.split("\n")[1][:12] for c in cues]
    assert starts == sorted(starts) and starts[0] >= "00:00:00,500"


def test_infer_input_errors_exit_2(corpus, tmp_path, cli):
    d, manifest = corpus
    r = cli("asr", "infer", "--model", "quartznet_small", str(tmp_path / "missing.wav"))
    assert r.returncode == 2 and "missing.wav': file not found" in r.stderr
    r = cli("asr", "infer", "--model", "quartznet_small")
    assert r.returncode == 2 and "give audio FILES or --manifest M" in r.stderr
    r = cli("asr", "infer", "--model", "quartznet_small", "--manifest", manifest, "--batch-size", "0")
    assert r.returncode == 2 and "--batch-size 1 or more" in r.stderr


def test_bad_manifest_and_missing_model_exit_2(corpus, tmp_path, cli):
    d, _ = corpus
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"audio_filepath": str(d / "left.wav"), "duration": 1.0}) + "\n")
    r = cli("asr", "evaluate", "--model", "quartznet_small", "--manifest", str(bad))
    assert r.returncode == 2 and f"{bad}:1: missing required field 'text'" in r.stderr
    r = cli("asr", "infer", "--model", str(tmp_path / "none.ckpt"), str(d / "left.wav"))
    assert r.returncode == 2 and "none.ckpt: model not found" in r.stderr


def test_cuda_request_without_cuda_exits_3(corpus, cli):
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here: --device cuda is a valid request")
    d, _ = corpus
    r = cli("asr", "infer", "--model", "quartznet_small", "--device", "cuda", str(d / "left.wav"))
    assert r.returncode == 3 and "CUDA is not available here (use --device cpu)" in r.stderr


# ---- output formats, in process --------------------------------------------------------------------------


def _words(*spec):
    from speechtao.asr.ctc import Word

    return [Word(w, s, e, 0.5) for w, s, e in spec]


SUBTITLE_CASES = [
    # words (word, start_ms, end_ms), options, expected groups of words
    ("one cue", [("a", 0, 100), ("b", 200, 300)], {}, [["a", "b"]]),
    (
        "word limit",
        [(c, i * 100, i * 100 + 50) for i, c in enumerate("abcde")],
        {"max_words": 2},
        [["a", "b"], ["c", "d"], ["e"]],
    ),
    ("pause splits", [("a", 0, 100), ("b", 1500, 1600)], {"max_gap_s": 1.0}, [["a"], ["b"]]),
    (
        "time limit",
        [("a", 0, 100), ("b", 2000, 2100), ("c", 4000, 5200)],
        {"max_seconds": 5.0, "max_gap_s": 9},
        [["a", "b"], ["c"]],
    ),
    ("char limit", [("abcdef", 0, 100), ("ghijkl", 100, 200)], {"max_chars": 12}, [["abcdef"], ["ghijkl"]]),
    ("empty", [], {}, []),
]


@pytest.mark.parametrize("name,words,opts,expected", SUBTITLE_CASES, ids=[c[0] for c in SUBTITLE_CASES])
def test_subtitle_groups(name, words, opts, expected):
    from speechtao.asr.infer import SubtitleOptions, subtitle_groups

    groups = subtitle_groups(_words(*words), SubtitleOptions(**opts))
    assert [[w.word for w in g] for g in groups] == expected


def test_srt_and_ctm_text():
    from speechtao.asr.infer import Transcript, to_ctm, to_srt

    t = Transcript(
        "/x/rec.wav",
        "hello world",
        _words(("hello", 3_599_950, 3_600_400), ("world", 3_600_500, 3_601_000)),
        2.0,
        0.9,
        offset=3599.0,
    )
    assert to_srt([t]) == "1\n00:59:59,950 --> 01:00:01,000\nhello world\n"
    assert to_ctm([t]) == "rec 1 3599.950 0.450 hello 0.5000\nrec 1 3600.500 0.500 world 0.5000\n"
