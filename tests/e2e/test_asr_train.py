"""`speechtao asr train` / `asr finetune` through the real CLI on six espeak-ng utterances and a ~26k-parameter
model: the loss falls, outputs load with load_model, a SIGKILLed run resumed with --resume ends bit-identical
to an uninterrupted one (dropout, dither, SpecAugment and wave augmentation all draw random numbers), and
bad specs or checkpoints exit 2 with a message naming the problem.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest
import soundfile as sf
import torch
import yaml

TEXTS = ["turn left", "open the door", "stop now", "go right", "close the window", "turn on the light"]
LOG_LINE = re.compile(
    r"^epoch (\d+) step (\d+) loss (\d+\.\d{3}) lr (\d\.\de[-+]\d\d)( wer \d\.\d{3})? elapsed (\d+m)?\d+s eta (\d+m)?\d+s$"
)


def without_times(line: str) -> str:
    """A log line less its elapsed time and ETA (which differ between runs)."""
    return line.split(" elapsed ")[0]


def history_untimed(run) -> list[dict]:
    """The run's history.jsonl entries less their elapsed times."""
    from speechtao.train.history import read_history

    return [{k: v for k, v in e.items() if k != "elapsed_s"} for e in read_history(run)]


pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")

TINY_MODEL = {
    "preprocessor": {"n_mels": 40, "window_size": 0.025, "window_stride": 0.01},  # dither on (default)
    "blocks": [
        {"filters": 64, "repeat": 1, "kernel": 11, "stride": 2, "residual": False, "dropout": 0.1},
        {"filters": 64, "repeat": 2, "kernel": 11, "dropout": 0.1},
        {"filters": 96, "repeat": 1, "kernel": 1, "residual": False, "separable": False},
    ],
}


def cli(*args, wait=True):
    env = dict(os.environ, SPEECHTAO_THREADS="1", OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "speechtao", *map(str, args)]
    if wait:
        return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)


def main(*args):
    """The CLI entry point in this process (torch is already imported): its exit code."""
    from speechtao.cli import main as cli_main

    return cli_main([str(a) for a in args])


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    d = tmp_path_factory.mktemp("speech")
    lines = []
    for i, text in enumerate(TEXTS):
        subprocess.run(["espeak-ng", "-w", str(d / f"u{i}.wav"), text], check=True)
        info = sf.info(str(d / f"u{i}.wav"))
        lines.append(
            {"audio_filepath": f"u{i}.wav", "duration": info.frames / info.samplerate, "text": text.capitalize() + "."}
        )
    (d / "all.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    return d


def write_spec(path, corpus, out_dir, **extra):
    spec = {
        "model": {"config": TINY_MODEL},
        "data": {
            "train": [str(corpus / "all.jsonl")],
            "validation": [str(corpus / "all.jsonl")],
            "batch_size": 3,
            "augment": {"speed_prob": 0.5, "gain_prob": 0.5},
        },
        "optim": {"name": "adamw", "lr": 3e-3},
        "schedule": {"warmup_steps": 3},
        "spec_augment": {"freq_masks": 1, "freq_width": 5, "time_masks": 1, "time_width": 5},
        "trainer": {
            "out_dir": str(out_dir),
            "max_steps": 30,
            "log_every": 5,
            "val_every": 10,
            "checkpoint_every": 5,
            "seed": 3,
        },
    }
    spec.update(extra)
    path.write_text(yaml.safe_dump(spec))
    return path


@pytest.fixture(scope="module")
def reference(corpus, tmp_path_factory):
    d = tmp_path_factory.mktemp("ref")
    spec = write_spec(d / "train.yaml", corpus, d / "run")
    r = cli("asr", "train", "--spec", spec)
    assert r.returncode == 0, r.stderr
    return spec, d / "run", r.stdout


def test_train_loss_falls_and_outputs_load(reference):
    from speechtao.asr.checkpoint import load_model

    _, run, stdout = reference
    logged = [m for m in map(LOG_LINE.match, stdout.splitlines()) if m]
    assert [int(m.group(2)) for m in logged] == [5, 10, 15, 20, 25, 30]
    losses = [float(m.group(3)) for m in logged]
    assert losses[-1] < 0.5 * losses[0], losses
    assert "parameters: 26,357" in stdout and "resolved spec:" in stdout
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["steps"] == 30 and metrics["audio_s_per_s"] > 0 and 0 <= metrics["best_val_wer"] <= 1
    assert metrics["final_val"]["cer"] < 1.0  # it has begun to spell
    assert yaml.safe_load((run / "spec.yaml").read_text())["trainer"]["max_steps"] == 30
    for name in ("final.pt", "best.pt", "checkpoints/step-00000030.pt"):
        loaded = load_model(run / name)
        assert loaded.tokenizer.vocab_size == 28 and loaded.spec["trainer"]["out_dir"] == str(run)


def test_sigkill_and_resume_end_bit_identical(corpus, reference, tmp_path):
    _, ref_run, _ = reference
    spec = write_spec(tmp_path / "train.yaml", corpus, tmp_path / "run")
    proc = cli("asr", "train", "--spec", spec, wait=False)
    index = tmp_path / "run" / "checkpoints" / "index.json"
    deadline = time.time() + 120
    while time.time() < deadline:
        if index.is_file() and any(e["step"] >= 10 for e in json.loads(index.read_text())["checkpoints"]):
            break
        assert proc.poll() is None, proc.stdout.read()
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "run" / "final.pt").exists(), "the run finished before it was killed"
    r = cli("asr", "train", "--spec", spec, "--resume")
    assert r.returncode == 0, r.stderr
    m = re.search(r"resumed from \S+step-(\d{8})\.pt at epoch \d+ batch \d+ step (\d+)", r.stdout)
    assert m and int(m.group(1)) == int(m.group(2)) and 10 <= int(m.group(2)) < 30, r.stdout
    ref_lines = [without_times(line) for line in reference[2].splitlines() if LOG_LINE.match(line)]
    resumed_lines = [without_times(line) for line in r.stdout.splitlines() if LOG_LINE.match(line)]
    assert resumed_lines and resumed_lines == ref_lines[-len(resumed_lines) :]  # same losses, lrs and WERs
    a = torch.load(ref_run / "final.pt", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "run" / "final.pt", weights_only=True)["state_dict"]
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    # the history of the killed and resumed run reads like the uninterrupted one's (times aside)
    assert history_untimed(tmp_path / "run") == history_untimed(ref_run)


def test_finetune_new_vocabulary_frozen_encoder(corpus, reference, tmp_path, capsys):
    from speechtao.asr.checkpoint import load_model

    _, ref_run, _ = reference
    spec = write_spec(tmp_path / "ft.yaml", corpus, tmp_path / "ft")
    data = yaml.safe_load(spec.read_text())
    del data["model"]
    data.update(
        init_from=str(ref_run / "final.pt"), freeze_encoder=True, tokenizer={"kind": "sentencepiece", "vocab_size": 40}
    )
    data["trainer"].update(max_steps=4, val_every=0)
    spec.write_text(yaml.safe_dump(data))
    assert main("asr", "finetune", "--spec", spec) == 0
    assert "vocabulary changed (28 -> " in capsys.readouterr().out
    before, after = load_model(ref_run / "final.pt"), load_model(tmp_path / "ft" / "final.pt")
    assert after.tokenizer.vocab_size != 28 and after.model.vocab_size == after.tokenizer.vocab_size
    enc_a, enc_b = before.model.encoder.state_dict(), after.model.encoder.state_dict()
    conv = [k for k in enc_a if k.endswith("conv.weight")]
    bn = [k for k in enc_a if k.endswith(".weight") and k not in conv]
    assert conv and bn
    assert all(torch.equal(enc_a[k], enc_b[k]) for k in conv)  # frozen
    assert any(not torch.equal(enc_a[k], enc_b[k]) for k in bn)  # BatchNorm still trains


@pytest.mark.parametrize(
    "override, message",
    [
        ("optim.lr=fast", "optim.lr: expected float, got 'fast'"),
        ("trainer.epochs=3", "trainer.epochs: unknown key for TrainerSpec"),
        ("model.preset=quartznet_small", "model: give model.preset or model.config"),
        ("data.max_batch_seconds=20", "give data.batch_size or data.max_batch_seconds"),
        ("optim.name=sgd", "optim.name: expected one of ['adamw', 'novograd'], got 'sgd'"),
    ],
)
def test_spec_errors_exit_2(corpus, tmp_path, capsys, override, message):
    spec = write_spec(tmp_path / "train.yaml", corpus, tmp_path / "run")
    assert main("asr", "train", "--spec", spec, override) == 2
    assert message in capsys.readouterr().err


def test_unknown_preset_missing_field_and_resume_errors_exit_2(corpus, tmp_path, capsys):
    spec = write_spec(tmp_path / "train.yaml", corpus, tmp_path / "run")
    assert main("asr", "train", "--spec", spec, "model.config=null", "model.preset=quartznet_tiny") == 2
    err = capsys.readouterr().err
    assert "unknown preset 'quartznet_tiny'" in err and "quartznet_small" in err
    data = yaml.safe_load(spec.read_text())
    del data["optim"]
    spec.write_text(yaml.safe_dump(data))
    assert main("asr", "train", "--spec", spec) == 2
    assert "optim: required field missing" in capsys.readouterr().err
    assert main("asr", "finetune", "--spec", spec, "init_from=quartznet_small") == 2
    assert "model: unknown key for ASRFinetuneSpec" in capsys.readouterr().err
    write_spec(spec, corpus, tmp_path / "run")
    assert main("asr", "train", "--spec", spec, "--resume") == 2
    assert "no checkpoint to resume from (run without --resume" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_truncated_checkpoint_refused_and_no_silent_overwrite(corpus, reference, tmp_path, capsys):
    spec, ref_run, _ = reference
    shutil.copytree(ref_run, tmp_path / "run")
    spec = write_spec(tmp_path / "train.yaml", corpus, tmp_path / "run")
    assert main("asr", "train", "--spec", spec) == 2
    assert "already holds checkpoints of a run; pass --resume" in capsys.readouterr().err
    ckpt = tmp_path / "run" / "checkpoints" / "step-00000030.pt"
    ckpt.write_bytes(ckpt.read_bytes()[:3000])
    assert main("asr", "train", "--spec", spec, "trainer.max_steps=40", "--resume") == 2
    err = capsys.readouterr().err
    assert "step-00000030.pt" in err and "truncated or corrupt" in err, err


@pytest.mark.slow
def test_torchrun_two_processes_train_and_write_once(corpus, tmp_path):
    """`torchrun --nproc_per_node=2 -m speechtao asr train` on CPU (gloo): one log, one set of outputs."""
    from speechtao.asr.checkpoint import load_model

    spec = write_spec(tmp_path / "train.yaml", corpus, tmp_path / "run")
    env = dict(os.environ, SPEECHTAO_THREADS="1", OMP_NUM_THREADS="1")
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node=2",
            "--master_port=29533",
            "-m",
            "speechtao",
            "asr",
            "train",
            "--spec",
            str(spec),
            "trainer.device=cpu",
            "trainer.max_steps=12",
            "data.batch_size=2",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "2 process(es)" in r.stdout and r.stdout.count("done: 12 steps") == 1  # rank 0 alone logs
    logged = [m for m in map(LOG_LINE.match, r.stdout.splitlines()) if m]
    assert [int(m.group(2)) for m in logged] == [5, 10]
    assert load_model(tmp_path / "run" / "final.pt").tokenizer.vocab_size == 28  # strict state-dict load
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["world_size"] == 2


def test_jasper_small_preset_trains_prunes_and_exports(corpus, tmp_path):
    """The CPU Jasper DR preset (full convolutions, dense residuals) learns, then prunes and exports."""
    from speechtao.asr.checkpoint import load_model

    spec = write_spec(tmp_path / "jasper.yaml", corpus, tmp_path / "run", model={"preset": "jasper_small"})
    r = cli("asr", "train", "--spec", spec, "trainer.max_steps=40", "trainer.val_every=40", "optim.lr=2e-3")
    assert r.returncode == 0, r.stderr
    losses = [float(m.group(3)) for m in (LOG_LINE.match(x) for x in r.stdout.splitlines()) if m]
    assert len(losses) == 8 and losses[-1] < 0.6 * losses[0], losses
    assert load_model(tmp_path / "run" / "final.pt").config.family == "jasper"
    r = cli("asr", "prune", "--model", tmp_path / "run" / "final.pt", "--ratio", "0.5", "--out", tmp_path / "p.pt")
    assert r.returncode == 0, r.stderr
    pruned = load_model(tmp_path / "p.pt")
    assert pruned.config.blocks[1].filters == 32 and pruned.config.blocks[1].residual_dense
    r = cli("asr", "export", "--model", tmp_path / "p.pt", "--format", "onnx", "--out", tmp_path / "m.onnx")
    assert r.returncode == 0, r.stderr + r.stdout
