"""The generic training loop on a toy task: loss goes down, SIGKILL + --resume is bit-identical, bad
checkpoints are refused, DDP over gloo equals one process with the doubled batch.

Run as a script (``python test_train_loop.py OUT_DIR STEPS [resume]``) it trains the toy task; the tests start
it as a subprocess so that it can be killed.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from speechtao.errors import CheckpointError, DataError, InputError
from speechtao.train.checkpoint import load_checkpoint
from speechtao.train.ddp import init_distributed, shutdown_distributed
from speechtao.train.history import HistoryWriter, read_history
from speechtao.train.loop import Trainer, TrainerSpec, TrainTask, seed_everything
from speechtao.train.optim import OptimSpec
from speechtao.train.precision import cpu_has_native_bf16
from speechtao.train.schedule import ScheduleSpec

HERE = Path(__file__).resolve()


class ToyTask(TrainTask):
    """Classify which of 3 frequencies a noisy sinusoid carries. Conv1d + BatchNorm (+ Dropout), shuffled
    batches, NumPy noise drawn while batching (so resume must restore the NumPy stream, and dropout the torch one).
    Under DDP each rank takes ``global_batch[rank::world]``.
    """

    def __init__(self, batch_size=8, n=96, dropout=0.2, seed=0, rank=0, world=1, sleep=0.0, noise=0.3):
        g = np.random.default_rng(seed)
        self.labels = g.integers(0, 3, n)
        t = np.arange(64) / 64.0
        self.x = np.stack([np.sin(2 * np.pi * (2 + 3 * y) * t + g.uniform(0, 6)) for y in self.labels]).astype(
            np.float32
        )
        self.batch_size, self.seed, self.rank, self.world, self.sleep = batch_size, seed, rank, world, sleep
        self.noise = noise
        seed_everything(seed)
        self.model = nn.Sequential(
            nn.Conv1d(1, 8, 5, padding=2, bias=False),
            nn.BatchNorm1d(8),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.AdaptiveAvgPool1d(1),
            nn.Flatten(),
            nn.Linear(8, 3),
        )

    def _order(self, epoch):
        return np.random.default_rng([self.seed, epoch]).permutation(len(self.labels))

    def num_batches(self, epoch):
        return len(self.labels) // (self.batch_size * self.world)

    def train_batches(self, epoch, start_index):
        order = self._order(epoch)
        gb = self.batch_size * self.world
        for i in range(start_index, self.num_batches(epoch)):
            idx = order[i * gb : (i + 1) * gb][self.rank :: self.world]
            noise = np.random.normal(0, self.noise, (len(idx), 64)).astype(np.float32)
            yield torch.from_numpy(self.x[idx] + noise)[:, None, :], torch.from_numpy(self.labels[idx])

    def loss(self, model, batch):
        if self.sleep:
            time.sleep(self.sleep)
        x, y = batch
        return nn.functional.cross_entropy(model(x), y)

    def validate(self):
        self.model.eval()
        with torch.no_grad():
            logits = self.model(torch.from_numpy(self.x)[:, None, :])
            err = float((logits.argmax(-1).numpy() != self.labels).mean())
        return {"err": err, "loss": float(nn.functional.cross_entropy(logits, torch.from_numpy(self.labels)))}

    def payload(self):
        return {"state_dict": self.model.state_dict()}

    def batch_stats(self, batch):
        return {"utterances": float(len(batch[1]))}


def toy_trainer(
    out_dir,
    steps,
    batch_size=8,
    dropout=0.2,
    ckpt_every=5,
    rank=0,
    world=1,
    ctx=None,
    sleep=0.0,
    optim="novograd",
    lines=None,
):
    noise = 0.3 if dropout else 0.0  # the DDP comparison runs without random noise and dropout
    task = ToyTask(batch_size=batch_size, dropout=dropout, rank=rank, world=world, sleep=sleep, noise=noise)
    spec = TrainerSpec(
        out_dir=Path(out_dir),
        max_steps=steps,
        max_epochs=100,
        device="cpu",
        seed=7,
        log_every=5,
        val_every=10,
        checkpoint_every=ckpt_every,
        keep_last=2,
        monitor="err",
        grad_clip=5.0,
    )
    log = lines.append if lines is not None else None
    return Trainer(
        task, spec, OptimSpec(lr=0.05, name=optim, betas=(0.9, 0.5)), ScheduleSpec(warmup_steps=3), ctx=ctx, log=log
    )


def final_weights(out_dir):
    return torch.load(Path(out_dir) / "final.pt", weights_only=True)["state_dict"]


def run_script(*args, **kw):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, str(HERE), *map(str, args)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **kw,
    )


def test_loss_decreases_and_outputs_written(tmp_path):
    lines = []
    metrics = toy_trainer(tmp_path, steps=30, lines=lines).fit()
    pattern = re.compile(
        r"^epoch (\d+) step (\d+) loss (\d+\.\d{3}) lr (\d\.\de[-+]\d\d)( err \d\.\d{3})? elapsed (\d+m)?\d+s eta (\d+m)?\d+s$"
    )
    logged = [m for m in map(pattern.match, lines) if m]
    losses = [float(m.group(3)) for m in logged]
    assert [int(m.group(2)) for m in logged] == [5, 10, 15, 20, 25, 30]
    assert losses[-1] < 0.75 * losses[0], losses
    assert metrics["best_val_err"] < 0.4, metrics  # chance is 0.67
    assert logged[0].group(5) is None and logged[-1].group(5) is not None  # the metric once validated
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["steps"] == 30 and saved["utterances_per_s"] > 0 and saved["best_val_err"] == metrics["best_val_err"]
    assert (tmp_path / "best.pt").is_file() and (tmp_path / "final.pt").is_file()
    kept = sorted(p.name for p in (tmp_path / "checkpoints").glob("step-*.pt"))
    index = json.loads((tmp_path / "checkpoints" / "index.json").read_text())
    assert kept == sorted(e["file"] for e in index["checkpoints"])
    assert {"step-00000025.pt", "step-00000030.pt"} <= set(kept) and len(kept) <= 3  # last 2 + best 1
    history = read_history(tmp_path / "history.jsonl")
    train = [e for e in history if e["kind"] == "train"]
    assert [e["step"] for e in train] == [5, 10, 15, 20, 25, 30]
    assert [f"{e['loss']:.3f}" for e in train] == [m.group(3) for m in logged]
    assert [f"{e['lr']:.1e}" for e in train] == [m.group(4) for m in logged]
    assert set(train[0]) == {"kind", "epoch", "step", "loss", "lr", "elapsed_s"}
    vals = [e for e in history if e["kind"] == "val"]
    assert [e["step"] for e in vals] == [10, 20, 30] and set(vals[0]["metrics"]) == {"err", "loss"}
    assert vals[-1]["metrics"] == saved["final_val"]
    elapsed = [e["elapsed_s"] for e in history]
    assert elapsed == sorted(elapsed) and elapsed[0] >= 0
    assert history.index(vals[0]) == history.index(train[1]) + 1  # in the order they happened


def test_cpu_bf16_detection_reads_the_cpu_flags(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu sse avx2 avx512f\n")
    assert not cpu_has_native_bf16(info)
    info.write_text("processor\t: 0\nflags\t\t: fpu avx512f avx512_bf16 avx512vnni\n")
    assert cpu_has_native_bf16(info)
    assert not cpu_has_native_bf16(tmp_path / "missing")


class _DtypeTask(ToyTask):
    """Records the dtype the model computed its logits in."""

    def loss(self, model, batch):
        x, y = batch
        logits = model(x)
        self.dtypes.add(logits.dtype)
        return nn.functional.cross_entropy(logits, y)


@pytest.mark.parametrize("native", [True, False])
def test_bf16_precision_on_cpu(tmp_path, monkeypatch, native):
    """precision bf16 autocasts on a CPU with native bf16 (and still trains); elsewhere fp32, said in the log."""
    monkeypatch.setattr("speechtao.train.precision.cpu_has_native_bf16", lambda *a: native)
    task = _DtypeTask(dropout=0.0)
    task.dtypes = set()
    lines = []
    spec = TrainerSpec(
        out_dir=tmp_path,
        max_steps=30,
        max_epochs=100,
        device="cpu",
        seed=7,
        log_every=5,
        val_every=10,
        monitor="err",
        precision="bf16",
    )
    metrics = Trainer(
        task, spec, OptimSpec(lr=0.05, name="adamw"), ScheduleSpec(warmup_steps=3), log=lines.append
    ).fit()
    assert task.dtypes == ({torch.bfloat16} if native else {torch.float32})
    header = next(line for line in lines if line.startswith("parameters:"))
    assert ("(bf16 autocast)" if native else "(fp32)") in header
    assert any("training in fp32 on CPU" in line for line in lines) is (not native)
    assert all(v.dtype == torch.float32 for v in final_weights(tmp_path).values() if v.is_floating_point())
    assert metrics["best_val_err"] < 0.4, metrics  # chance is 0.67


def test_max_time_s_ends_the_run_cleanly(tmp_path):
    lines = []
    trainer = toy_trainer(tmp_path, steps=10_000, sleep=0.01, lines=lines)
    trainer.spec = dataclasses.replace(trainer.spec, max_time_s=0.5)
    metrics = trainer.fit()
    assert 1 <= metrics["steps"] < 10_000
    assert any("max_time_s 0.5 reached" in line for line in lines)
    assert metrics["final_val"] is not None  # the last step validated and wrote final.pt like a finished run
    assert (tmp_path / "final.pt").is_file() and (tmp_path / "best.pt").is_file()
    with pytest.raises(ValueError, match="max_time_s"):
        dataclasses.replace(trainer.spec, max_time_s=0)


def test_fit_schedule_to_time_decays_the_learning_rate_by_the_deadline(tmp_path):
    """With fit_schedule_to_time the schedule is shortened to the steps that fit in max_time_s, so the run ends
    by itself with the learning rate decayed; without it the deadline cuts the schedule near its peak."""

    def run(out, fit, resume=False):
        lines = []
        task = ToyTask(dropout=0.0, sleep=0.01)
        spec = TrainerSpec(
            out_dir=out,
            max_steps=100_000,
            max_epochs=100_000,
            device="cpu",
            seed=7,
            log_every=1,
            val_every=40,
            checkpoint_every=1000,
            monitor="err",
            max_time_s=2.0,
            fit_schedule_to_time=fit,
        )
        metrics = Trainer(
            task, spec, OptimSpec(lr=0.05, name="adamw"), ScheduleSpec(warmup_steps=3), log=lines.append
        ).fit(resume=resume)
        lrs = [float(m.group(1)) for m in map(re.compile(r"^epoch \d+ step \d+ loss \S+ lr (\S+)").match, lines) if m]
        return metrics, lrs, lines

    metrics, lrs, lines = run(tmp_path / "fit", True)
    assert any("optimizer steps fit in the budget" in line for line in lines)
    assert 20 < metrics["steps"] < 100_000
    assert lrs[-1] < 0.25 * 0.05  # the cosine ran (about) to its end: the last step's lr is near zero
    assert (
        load_checkpoint(sorted((tmp_path / "fit" / "checkpoints").glob("step-*.pt"))[-1])["train_state"]["fitted_total"]
        == metrics["steps"]
    )
    again, _, _ = run(tmp_path / "fit", True, resume=True)  # the fitted length is restored: nothing is left to do
    assert again["steps"] == metrics["steps"]
    _, cut, cut_lines = run(tmp_path / "cut", False)
    assert any("max_time_s 2 reached" in line for line in cut_lines)
    assert cut[-1] > 0.9 * 0.05  # a 100,000-step schedule cut after a few hundred steps: still near the peak
    with pytest.raises(ValueError, match="max_time_s"):
        TrainerSpec(out_dir=tmp_path, fit_schedule_to_time=True)


class _RecordingTask(ToyTask):
    """Snapshots the weights each optimizer step starts from (accumulate 1: one loss call per step) and the
    weights each validation sees."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.starts, self.validated = [], []

    def loss(self, model, batch):
        self.starts.append({k: v.detach().clone() for k, v in self.model.state_dict().items()})
        return super().loss(model, batch)

    def validate(self):
        self.validated.append({k: v.detach().clone() for k, v in self.model.state_dict().items()})
        return super().validate()


def _ema_spec(out_dir, **kw):
    return TrainerSpec(
        **{
            **dict(
                out_dir=Path(out_dir),
                max_steps=20,
                max_epochs=100,
                device="cpu",
                seed=7,
                log_every=5,
                val_every=10,
                checkpoint_every=5,
                keep_last=2,
                monitor="err",
                ema_decay=0.8,
            ),
            **kw,
        }
    )


def test_ema_validates_and_saves_the_average(tmp_path):
    """With trainer.ema_decay, validation, best.pt and final.pt hold the moving average of the weights, computed
    as min(decay, (1 + step) / (10 + step)); training itself follows the raw weights, which checkpoints keep."""
    task = _RecordingTask(dropout=0.0)
    Trainer(task, _ema_spec(tmp_path), OptimSpec(lr=0.05, name="adamw"), ScheduleSpec(warmup_steps=3)).fit()
    ckpt = load_checkpoint(tmp_path / "checkpoints" / "step-00000020.pt")
    raw = ckpt["train_state"]["raw_state_dict"]
    after = task.starts[1:] + [raw]  # the weights after steps 1..20
    assert len(after) == 20
    avg = {k: v.clone() for k, v in task.starts[0].items()}
    averages = {}
    for step, w in enumerate(after, start=1):
        d = min(0.8, (1 + step) / (10 + step))
        for k, v in w.items():
            avg[k] = avg[k] + (1 - d) * (v - avg[k]) if v.is_floating_point() else v.clone()
        averages[step] = {k: v.clone() for k, v in avg.items()}
    for got, step in (
        (task.validated[0], 10),
        (task.validated[1], 20),
        (final_weights(tmp_path), 20),
        (ckpt["state_dict"], 20),
    ):
        for k, v in averages[step].items():
            assert torch.allclose(got[k].float(), v.float(), atol=1e-6), (step, k)
    weight = "6.weight"  # the Linear layer: the average really differs from where training ended
    assert not torch.allclose(averages[20][weight], raw[weight], atol=1e-4)
    best = torch.load(tmp_path / "best.pt", weights_only=True)
    step = best["extra"]["step"]
    assert all(torch.allclose(best["state_dict"][k].float(), averages[step][k].float(), atol=1e-6) for k in raw)


def test_ema_resume_continues_raw_weights_and_average(tmp_path):
    ref = _ema_spec(tmp_path / "ref")
    Trainer(ToyTask(dropout=0.0), ref, OptimSpec(lr=0.05, name="adamw"), ScheduleSpec(warmup_steps=3)).fit()
    cut = tmp_path / "cut"
    spec = _ema_spec(cut, max_time_s=0.12)
    stopped = Trainer(
        ToyTask(dropout=0.0, sleep=0.02), spec, OptimSpec(lr=0.05, name="adamw"), ScheduleSpec(warmup_steps=3)
    ).fit()
    assert stopped["steps"] < 20
    lines = []
    Trainer(
        ToyTask(dropout=0.0),
        dataclasses.replace(spec, max_time_s=None),
        OptimSpec(lr=0.05, name="adamw"),
        ScheduleSpec(warmup_steps=3),
        log=lines.append,
    ).fit(resume=True)
    assert any("resumed from" in line for line in lines)
    a, b = final_weights(tmp_path / "ref"), final_weights(cut)
    for k in a:
        assert torch.equal(a[k], b[k]), k
    # a checkpoint and a resume that disagree about the average are refused, naming the setting
    with pytest.raises(CheckpointError, match="ema_decay"):
        Trainer(
            ToyTask(dropout=0.0),
            dataclasses.replace(spec, max_time_s=None, ema_decay=0.0),
            OptimSpec(lr=0.05, name="adamw"),
            ScheduleSpec(warmup_steps=3),
        ).fit(resume=True)
    with pytest.raises(ValueError, match="ema_decay"):
        _ema_spec(tmp_path, ema_decay=1.0)


@pytest.mark.slow  # tests/e2e/test_asr_train.py kills and resumes the real CLI in the fast suite
def test_sigkill_then_resume_is_bit_identical(tmp_path):
    ref = toy_trainer(tmp_path / "ref", steps=40)
    ref.fit()
    killed = tmp_path / "killed"
    proc = run_script(killed, 40, "--sleep", "0.1")
    index = killed / "checkpoints" / "index.json"
    deadline = time.time() + 120
    while time.time() < deadline:
        if index.is_file() and any(e["step"] >= 15 for e in json.loads(index.read_text())["checkpoints"]):
            break
        assert proc.poll() is None, proc.stdout.read()
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (killed / "final.pt").exists(), "the run finished before it was killed"
    out = run_script(killed, 40, "--resume").communicate(timeout=120)[0]
    assert "resumed from" in out, out
    a, b = final_weights(tmp_path / "ref"), final_weights(killed)
    for k in a:
        assert torch.equal(a[k], b[k]), k


class _CrashingTask(ToyTask):
    """Raises inside its ``crash_at``-th loss call, as a killed process stops between two checkpoints."""

    def __init__(self, crash_at, **kw):
        super().__init__(**kw)
        self.calls, self.crash_at = 0, crash_at

    def loss(self, model, batch):
        self.calls += 1
        if self.calls == self.crash_at:
            raise RuntimeError("killed")
        return super().loss(model, batch)


def _history_without_time(out_dir):
    return [{k: v for k, v in e.items() if k != "elapsed_s"} for e in read_history(out_dir)]


def test_resumed_history_equals_an_uninterrupted_one(tmp_path):
    """history.jsonl of a run stopped after step 16 (checkpoint at 10, entries at 15 written after it) and
    resumed equals the history of the run that was not stopped: the entries after the checkpoint are dropped."""
    toy_trainer(tmp_path / "ref", steps=30, ckpt_every=10).fit()
    cut = tmp_path / "cut"
    stopped = toy_trainer(cut, steps=30, ckpt_every=10)
    stopped.task = _CrashingTask(crash_at=17)
    with pytest.raises(RuntimeError, match="killed"):
        stopped.fit()
    assert [e["step"] for e in read_history(cut)] == [5, 10, 10, 15]
    toy_trainer(cut, steps=30, ckpt_every=10).fit(resume=True)
    ref = _history_without_time(tmp_path / "ref")
    assert [e["step"] for e in ref] == [5, 10, 10, 15, 20, 20, 25, 30, 30]
    assert _history_without_time(cut) == ref
    elapsed = [e["elapsed_s"] for e in read_history(cut)]
    assert elapsed == sorted(elapsed)  # the resumed run goes on counting from the checkpoint's time


def test_checkpoints_written_before_history_and_elapsed_time_still_resume(tmp_path):
    """A checkpoint without the train_state entries added with history.jsonl (elapsed_s, history_lines) resumes
    like any other: the counters start from their defaults and the history keeps the entries up to its step."""
    from speechtao.train.checkpoint import save_checkpoint

    toy_trainer(tmp_path / "ref", steps=20, ckpt_every=10).fit()
    old = tmp_path / "old"
    stopped = toy_trainer(old, steps=20, ckpt_every=10)
    stopped.task = _CrashingTask(crash_at=17)
    with pytest.raises(RuntimeError, match="killed"):
        stopped.fit()
    path = old / "checkpoints" / "step-00000010.pt"
    ckpt = load_checkpoint(path)
    for key in ("elapsed_s", "history_lines"):
        del ckpt["train_state"][key]
    save_checkpoint(path, ckpt)
    toy_trainer(old, steps=20, ckpt_every=10).fit(resume=True)
    assert _history_without_time(old) == _history_without_time(tmp_path / "ref")
    a, b = final_weights(tmp_path / "ref"), final_weights(old)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_history_resume_without_a_recorded_line_count_keeps_the_steps_up_to_the_checkpoint(tmp_path):
    lines = [
        {"kind": "train", "epoch": 0, "step": 5, "loss": 1.0, "lr": 0.1, "elapsed_s": 1.0},
        {"kind": "val", "epoch": 0, "step": 5, "metrics": {"wer": 0.5}, "elapsed_s": 1.5},
        {"kind": "train", "epoch": 0, "step": 10, "loss": 0.5, "lr": 0.1, "elapsed_s": 2.0},
    ]
    (tmp_path / "history.jsonl").write_text("".join(json.dumps(e) + "\n" for e in lines) + '{"kind": "tr')
    writer = HistoryWriter(tmp_path, resume_lines=None, resume_step=5)
    assert read_history(tmp_path) == lines[:2] and writer.lines == 2
    writer.write(lines[2])
    assert read_history(tmp_path / "history.jsonl") == lines
    HistoryWriter(tmp_path)  # a new run starts an empty history
    assert read_history(tmp_path) == []
    (tmp_path / "history.jsonl").write_text('{"kind": "train"}\n{"kind": "tr\n')
    with pytest.raises(DataError, match=r"history.jsonl:2: not a JSON line"):
        read_history(tmp_path)


def test_truncated_checkpoint_is_refused(tmp_path):
    toy_trainer(tmp_path, steps=10).fit()
    latest = tmp_path / "checkpoints" / "step-00000010.pt"
    data = latest.read_bytes()
    latest.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="step-00000010.pt.*truncated or corrupt"):
        load_checkpoint(latest)
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        toy_trainer(tmp_path, steps=20).fit(resume=True)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="junk.pt"):
        load_checkpoint(tmp_path / "junk.pt")


def test_refuses_to_overwrite_and_to_resume_nothing(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint to resume from"):
        toy_trainer(tmp_path, steps=5).fit(resume=True)
    toy_trainer(tmp_path, steps=5).fit()
    with pytest.raises(InputError, match="--resume"):
        toy_trainer(tmp_path, steps=5).fit()


def test_ddp_two_processes_match_one_with_doubled_batch(tmp_path):
    """2 gloo processes x batch 4 (BatchNorm synchronized) == 1 process x batch 8, no dropout."""
    one = toy_trainer(tmp_path / "one", steps=12, batch_size=8, dropout=0.0, optim="adamw")
    one.fit()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node=2",
            "--master_port=29517",
            str(HERE),
            str(tmp_path / "two"),
            "12",
            "--ddp",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    a, b = final_weights(tmp_path / "one"), final_weights(tmp_path / "two")
    for k in a:
        assert torch.allclose(a[k].float(), b[k].float(), atol=1e-5, rtol=1e-4), (k, (a[k] - b[k]).abs().max())


def _main(argv):
    torch.set_num_threads(1)
    out, steps = argv[0], int(argv[1])
    sleep = float(argv[argv.index("--sleep") + 1]) if "--sleep" in argv else 0.0
    if "--ddp" in argv:
        ctx = init_distributed("cpu")
        toy_trainer(
            out, steps, batch_size=4, dropout=0.0, rank=ctx.rank, world=ctx.world_size, ctx=ctx, optim="adamw"
        ).fit()
        shutdown_distributed()
        return
    toy_trainer(out, steps, sleep=sleep).fit(resume="--resume" in argv)


if __name__ == "__main__":
    _main(sys.argv[1:])
