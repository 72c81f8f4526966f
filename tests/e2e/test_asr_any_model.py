"""`speechtao asr evaluate` / `asr infer` on every form of one model: the checkpoint, its ONNX export (FP32 and
INT8) and a running `speechtao serve` of the export (offline and streaming), all scored by the same code.

The model is the tiny CTC model of tiny_asr.py, overfit on three espeak-ng utterances; the real recordings of
Debian's pocketsphinx-testdata and alsa-utils (where installed) give a second manifest on which the model is
poor, so agreement there means the same hypotheses character for character, not just WER 0 everywhere.
"""

import json
import re
import shutil
import subprocess

import pytest
import soundfile as sf

from speechtao.cli import main
from tests.e2e.serve_proc import start_serve, stop_serve

TEXTS = {"left": "turn left", "door": "open the door", "stop": "stop now"}
LAST_LINE = re.compile(r"^WER (\d+\.\d\d)% CER (\d+\.\d\d)% \((\d+) utterances")

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")


@pytest.fixture
def cli(capsys):
    def call(*args):
        capsys.readouterr()
        rc = main([str(a) for a in args])
        out, err = capsys.readouterr()
        return subprocess.CompletedProcess(args, rc, out, err)

    return call


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    d = tmp_path_factory.mktemp("speech")
    lines = []
    for name, text in TEXTS.items():
        subprocess.run(["espeak-ng", "-w", str(d / f"{name}.wav"), text], check=True)
        info = sf.info(str(d / f"{name}.wav"))
        lines.append({"audio_filepath": f"{name}.wav", "duration": info.frames / info.samplerate, "text": text})
    manifest = d / "test.jsonl"
    manifest.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return d, manifest


@pytest.fixture(scope="module")
def real_manifest(tmp_path_factory):
    from speechtao.corpora.realspeech import ALSA_DIR, POCKETSPHINX_DIR, write_realspeech_manifests

    if not (POCKETSPHINX_DIR / "cards").is_dir() or not (ALSA_DIR / "Front_Left.wav").is_file():
        pytest.skip("the Debian packages pocketsphinx-testdata and alsa-utils are not installed")
    return write_realspeech_manifests(tmp_path_factory.mktemp("real"))["all"]


@pytest.fixture(scope="module")
def models(corpus, tmp_path_factory):
    """tiny.ckpt, its FP32 export (onnx/model.onnx + tokens.txt) and INT8 export (int8/model.int8.onnx)."""
    from tiny_asr import train_tiny

    d = tmp_path_factory.mktemp("models")
    wavs, manifest = corpus
    train_tiny(wavs, TEXTS, d / "tiny.ckpt")
    for fmt, out in (("onnx", d / "onnx" / "model.onnx"), ("onnx-int8", d / "int8" / "model.int8.onnx")):
        extra = ["--calib", str(manifest)] if fmt == "onnx-int8" else []
        assert main(["asr", "export", "--model", str(d / "tiny.ckpt"), "--format", fmt, "--out", str(out), *extra]) == 0
    return {"ckpt": d / "tiny.ckpt", "fp32": d / "onnx" / "model.onnx", "int8": d / "int8" / "model.int8.onnx"}


def evaluate(cli, tmp_path, manifest, *model_args):
    out = tmp_path / f"eval{len(list(tmp_path.iterdir()))}"
    r = cli("asr", "evaluate", *model_args, "--manifest", manifest, "--out", out)
    assert r.returncode == 0, r.stderr
    m = LAST_LINE.match(r.stdout.strip().splitlines()[-1])
    assert m, r.stdout
    rows = [json.loads(x) for x in (out / "utterances.jsonl").read_text().splitlines()]
    return r.stdout, json.loads((out / "metrics.json").read_text()), [x["hypothesis"] for x in rows]


def test_checkpoint_onnx_fp32_and_int8_score_alike(cli, corpus, models, real_manifest, tmp_path):
    _, manifest = corpus
    for man in (manifest, real_manifest):
        out, ref, ref_hyps = evaluate(cli, tmp_path, man, "--model", models["ckpt"])
        assert out.startswith(f"loaded checkpoint {models['ckpt']} (custom, PyTorch cpu)")
        out, fp32, fp32_hyps = evaluate(cli, tmp_path, man, "--model", models["fp32"])
        assert out.startswith(f"loaded onnx {models['fp32']} (FP32, custom, 28 tokens, CPUExecutionProvider)")
        assert fp32_hyps == ref_hyps and fp32["wer"] == ref["wer"] and fp32["cer"] == ref["cer"]
        out, int8, int8_hyps = evaluate(cli, tmp_path, man, "--model", models["int8"])
        assert out.startswith(f"loaded onnx {models['int8']} (INT8 QDQ, custom, 28 tokens")
        assert int8["loaded"].startswith("onnx ") and int8["model"] == str(models["int8"])
        assert abs(int8["cer"] - ref["cer"]) <= 0.05, (int8["cer"], ref["cer"])
        if man == manifest:
            assert ref["wer"] == 0.0 and int8["wer"] == 0.0
        else:  # the model is poor on real speech: agreement is not everyone at WER 0
            assert ref["cer"] > 0.3


def test_infer_takes_an_onnx_file(cli, corpus, models):
    wavs, _ = corpus
    r = cli("asr", "infer", "--model", models["int8"], wavs / "door.wav", wavs / "left.wav")
    assert r.returncode == 0, r.stderr
    assert f"loaded onnx {models['int8']} (INT8" in r.stderr
    rows = [json.loads(x) for x in r.stdout.splitlines()]
    assert [x["text"] for x in rows] == ["open the door", "turn left"]
    assert [w["word"] for w in rows[0]["words"]] == ["open", "the", "door"]


def test_onnx_errors_name_the_file_and_the_fix(cli, models, corpus, tmp_path):
    _, manifest = corpus
    r = cli("asr", "evaluate", "--model", tmp_path / "none.onnx", "--manifest", manifest)
    assert r.returncode == 2 and "none.onnx: ONNX file not found" in r.stderr
    shutil.copy(models["fp32"], tmp_path / "model.onnx")
    (tmp_path / "tokens.txt").write_text("a 0\nb 1\n<blk> 2\n")
    r = cli("asr", "evaluate", "--model", tmp_path / "model.onnx", "--manifest", manifest)
    assert r.returncode == 2 and "tokens.txt beside it lists 2 tokens" in r.stderr
    r = cli("asr", "evaluate", "--manifest", manifest)
    assert r.returncode == 2 and "no model: pass --model" in r.stderr
    r = cli("asr", "evaluate", "--model", models["fp32"], "--streaming", "--manifest", manifest)
    assert r.returncode == 2 and "--streaming applies to --server" in r.stderr


@pytest.fixture(scope="module")
def served(models, tmp_path_factory):
    """`speechtao serve` of the INT8 export in a child process on a free loopback port: yields "127.0.0.1:PORT"."""
    repo = tmp_path_factory.mktemp("repo")
    shutil.copy(models["int8"], repo / "tiny.onnx")
    proc, address, _ = start_serve("--models", str(repo), "--drain-seconds", "1", "--no-itn")
    yield address
    stop_serve(proc)


@pytest.mark.skipif(pytest.importorskip("riva.client") is None, reason="nvidia-riva-client is not installed")
def test_server_offline_and_streaming_score_as_the_local_file(cli, corpus, models, real_manifest, served, tmp_path):
    _, manifest = corpus
    for man in (manifest, real_manifest):
        _, local, _ = evaluate(cli, tmp_path, man, "--model", models["int8"])
        for mode in ([], ["--streaming"]):
            out, remote, hyps = evaluate(cli, tmp_path, man, "--server", served, *mode)
            kind = "StreamingRecognize finals" if mode else "offline Recognize"
            assert out.startswith(f"loaded riva {served} ({kind}, model <server default>)")
            assert abs(100 * remote["wer"] - 100 * local["wer"]) <= 0.5, (man, mode, remote["wer"], local["wer"])
            if man == manifest:
                assert hyps == list(TEXTS.values())
    r = cli("asr", "infer", "--server", served, "--streaming", corpus[0] / "door.wav")
    assert r.returncode == 0, r.stderr
    row = json.loads(r.stdout)
    assert row["text"] == "open the door" and [w["word"] for w in row["words"]] == ["open", "the", "door"]
    assert 0 <= row["words"][0]["start_ms"] < row["words"][-1]["end_ms"] <= 1000 * row["duration"] + 1


def test_server_that_is_not_there_is_named(cli, corpus):
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r = cli("asr", "evaluate", "--server", f"127.0.0.1:{port}", "--manifest", corpus[1])
    assert r.returncode == 1 and f"server 127.0.0.1:{port}: refused the connection" in r.stderr
    r = cli("asr", "evaluate", "--server", "nohost", "--manifest", corpus[1])
    assert r.returncode == 2 and "expected host:port" in r.stderr


@pytest.mark.nemo
def test_a_nemo_archive_written_by_nemo_scores_as_the_checkpoint(cli, corpus, models, real_manifest, tmp_path):
    """The checkpoint goes to .nemo (`asr export --format nemo`), NeMo restores it and saves it again itself;
    `asr evaluate` on NeMo's archive gives the checkpoint's hypotheses, which are NeMo's own greedy decoding."""
    pytest.importorskip("nemo")
    import torch
    from nemo.collections.asr.models import ASRModel

    from speechtao.audio import read_audio

    ours = tmp_path / "ours.nemo"
    assert main(["asr", "export", "--model", str(models["ckpt"]), "--format", "nemo", "--out", str(ours)]) == 0
    model = ASRModel.restore_from(str(ours), map_location="cpu").eval()
    theirs = tmp_path / "theirs.nemo"
    model.save_to(str(theirs))
    _, manifest = corpus
    for man in (real_manifest, manifest):
        _, ref, ref_hyps = evaluate(cli, tmp_path, man, "--model", models["ckpt"])
        out, got, hyps = evaluate(cli, tmp_path, man, "--model", theirs)
        assert out.startswith(f"loaded nemo {theirs} (")
        assert hyps == ref_hyps and got["wer"] == ref["wer"]
    assert ref_hyps == list(TEXTS.values())
    rows = [json.loads(x) for x in manifest.read_text().splitlines()]
    labels = list(model.decoder.vocabulary)
    for row, hyp in zip(rows, ref_hyps):  # NeMo's forward, best path: blank last, repeats merged
        audio = torch.from_numpy(read_audio(manifest.parent / row["audio_filepath"], 16000))[None]
        with torch.no_grad():
            log_probs, n, _ = model.forward(input_signal=audio, input_signal_length=torch.tensor([audio.shape[1]]))
        best = log_probs[0, : int(n[0])].argmax(-1).numpy()
        keep = [int(t) for i, t in enumerate(best) if t != len(labels) and (i == 0 or t != best[i - 1])]
        assert "".join(labels[t] for t in keep).strip() == hyp
