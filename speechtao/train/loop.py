"""The one training loop, shared by every task (ASR, NLP): :class:`Trainer` runs a :class:`TrainTask`.

Order of work per optimizer step: ``accumulate`` micro-batches forward/backward, clip, step, schedule, then
the greppable log line (and a ``history.jsonl`` entry), validation and the checkpoint, each on its own period.
A checkpoint stores model, optimizer, schedule, AMP scaler, every rank's RNG states, the data position (epoch,
next batch index) and the :class:`~speechtao.train.state.TrainState` counters, so ``fit(resume=True)``
continues bit-for-bit where a killed run stopped. The parts live beside this file: ``state`` (the counters),
``time_budget`` (max_time_s and fit_schedule_to_time), ``history`` (history.jsonl), ``precision`` (autocast),
``ema`` (weight averaging), ``rng``, ``checkpoint``, ``optim``, ``schedule`` and ``ddp``.
"""

from __future__ import annotations

import contextlib
import json
import math
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import torch
from torch import nn

from ..errors import CheckpointError, DataError, InputError
from ..spec import save_spec
from . import ddp
from .checkpoint import CheckpointManager, atomic_write_bytes, load_checkpoint, save_checkpoint
from .ema import WeightAverage
from .history import HistoryWriter
from .optim import OptimSpec, build_optimizer
from .precision import amp_dtype, autocast, precision_note
from .rng import rng_state, seed_everything, set_rng_state
from .schedule import LRSchedule, ScheduleSpec
from .state import TrainState
from .time_budget import Lap, TimeBudget, format_duration

__all__ = ["Trainer", "TrainerSpec", "TrainTask", "format_log", "seed_everything"]


@dataclass(frozen=True)
class TrainerSpec:
    out_dir: Path  # checkpoints/, best.pt, final.pt, metrics.json and spec.yaml go here
    max_epochs: int = 50
    max_steps: int | None = None  # optimizer steps; stops earlier than max_epochs and sets the schedule length
    max_time_s: float | None = None  # wall-clock budget of this run: past it, the current step is the last one
    # With max_time_s: measure the time per step (and per validation) early in the run and shorten the schedule
    # to the steps that fit, so the learning rate decays by the deadline instead of being cut off at its middle
    # (a slower machine then trains fewer steps to the end of their schedule). Shortens only, never lengthens.
    fit_schedule_to_time: bool = False
    device: Literal["auto", "cpu", "cuda"] = "auto"  # auto: CUDA when present
    # bf16: autocast on CUDA, and on CPUs with native bf16 (avx512_bf16 / AMX; elsewhere fp32, said in the log);
    # fp16: CUDA only (fp32 on CPU). Weights, gradients and optimizer state stay fp32 either way.
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    seed: int = 1234
    accumulate: int = 1  # micro-batches per optimizer step
    grad_clip: float = 0.0  # max global gradient norm; 0 = off
    log_every: int = 50  # optimizer steps between log lines
    val_every: int = 0  # optimizer steps between validations; 0 = at the end of every epoch
    checkpoint_every: int = 200  # optimizer steps between checkpoints (one is also written at the end)
    keep_last: int = 2  # newest checkpoints kept
    keep_best: int = 1  # checkpoints with the best monitored metric kept besides
    monitor: str = "wer"  # validation metric that picks best.pt
    monitor_mode: Literal["min", "max"] = "min"
    max_bad_steps: int = 20  # consecutive non-finite losses tolerated (skipped) before giving up
    # Exponential moving average of the weights (0: off). With it, validation, best.pt, final.pt and the model
    # in every checkpoint are the averaged weights; the raw ones travel in train_state for --resume. The decay
    # ramps as min(ema_decay, (1 + step) / (10 + step)), so early averages do not drag the initial weights along.
    ema_decay: float = 0.0

    def __post_init__(self):
        for name in ("max_epochs", "accumulate", "log_every", "checkpoint_every", "keep_last"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"max_steps must be >= 1 or null, got {self.max_steps}")
        if self.max_time_s is not None and self.max_time_s <= 0:
            raise ValueError(f"max_time_s must be > 0 or null, got {self.max_time_s}")
        if self.fit_schedule_to_time and self.max_time_s is None:
            raise ValueError("fit_schedule_to_time needs max_time_s (the budget to fit the schedule into)")
        if self.val_every < 0 or self.keep_best < 0 or self.grad_clip < 0:
            raise ValueError("val_every, keep_best and grad_clip must be >= 0")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(
                f"ema_decay must be in [0, 1) (0: off; e.g. 0.99 averages about the last 100 steps), "
                f"got {self.ema_decay}"
            )


class TrainTask(Protocol):
    """What the :class:`Trainer` trains. Subclass it (``class MyTask(TrainTask)``) to inherit the defaults of the
    optional methods (``param_groups``, ``batch_stats``)."""

    model: nn.Module  # the bare model (the trainer moves it to its device and wraps it for DDP itself)

    def num_batches(self, epoch: int) -> int:
        """Micro-batches this process sees in ``epoch``."""
        ...

    def train_batches(self, epoch: int, start_index: int) -> Iterable[Any]:
        """Those micro-batches from ``start_index`` on (the same ones again for the same epoch: resume needs it)."""
        ...

    def loss(self, model: nn.Module, batch: Any) -> torch.Tensor:
        """A scalar; ``model`` is what to call (the DDP wrapper under torchrun, else ``self.model``)."""
        ...

    def validate(self) -> dict[str, float]:
        """Validation metrics, e.g. ``{"wer": 0.081, "cer": 0.03}``; runs on the main process only."""
        ...

    def payload(self) -> dict:
        """What checkpoints, best.pt and final.pt hold: ``{..., "state_dict": model weights, ...}``."""
        ...

    def param_groups(self, lr: float) -> list[dict] | None:
        """Optimizer parameter groups (e.g. layer-wise learning rates); None: one group of all parameters."""
        return None

    def batch_stats(self, batch: Any) -> dict[str, float]:
        """Throughput counters of a batch, e.g. ``{"utterances": 8, "audio_s": 35.2}``; missing ones count 0."""
        return {}


def to_device(batch: Any, device: torch.device) -> Any:
    """Move every tensor inside tuples/lists/dicts to ``device``."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(b, device) for b in batch)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    return batch


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(all, trainable) parameter counts."""
    total = sum(p.numel() for p in model.parameters())
    return total, sum(p.numel() for p in model.parameters() if p.requires_grad)


def format_log(
    epoch: int, step: int, loss: float, lr: float, metric_name: str | None = None, metric: float | None = None
) -> str:
    """``epoch 3 step 400 loss 0.512 lr 3.0e-04 wer 0.081`` (metric omitted before the first validation)."""
    line = f"epoch {epoch} step {step} loss {loss:.3f} lr {lr:.1e}"
    if metric_name is not None and metric is not None:
        line += f" {metric_name} {metric:.3f}"
    return line


@dataclass
class _Run:
    """The objects of one ``fit()`` call."""

    model: nn.Module  # the bare model on its device
    run_model: nn.Module  # what computes the loss: the DDP wrapper under torchrun, else ``model``
    optimizer: torch.optim.Optimizer
    schedule: LRSchedule
    scaler: torch.amp.GradScaler | None
    total: int  # the schedule's length (fit_schedule_to_time may shorten it)
    state: TrainState
    epoch: int = 0
    start_index: int = 0  # the batch of ``epoch`` to start from (a resumed run's)
    budget: TimeBudget | None = None
    history: HistoryWriter | None = None  # main process only
    bar: Any = None  # a tqdm bar on a terminal (main process)
    bad_steps: int = 0  # consecutive non-finite losses


class Trainer:
    """Runs ``task`` to ``spec.max_steps`` / ``spec.max_epochs``; rank 0 alone writes files and logs."""

    def __init__(
        self,
        task: TrainTask,
        spec: TrainerSpec,
        optim: OptimSpec,
        schedule: ScheduleSpec,
        full_spec: Any = None,
        ctx: ddp.DistContext | None = None,
        log: Callable[[str], None] | None = None,
    ):
        self.task = task
        self.spec = spec
        self.optim_spec = optim
        self.schedule_spec = schedule
        self.full_spec = full_spec
        self.ctx = ctx or ddp.DistContext()
        quiet = lambda line: None  # noqa: E731  (ranks other than 0 stay silent)
        self.log = (log or (lambda line: print(line, flush=True))) if self.ctx.is_main else quiet
        try:
            self.device = ddp.select_device(spec.device, self.ctx)
        except ValueError as exc:
            raise InputError(str(exc)) from None
        self.amp_dtype = amp_dtype(spec.precision, self.device)  # decided once: the CPU check reads /proc/cpuinfo
        self.out_dir = Path(spec.out_dir)
        self.ckpt = CheckpointManager(self.out_dir / "checkpoints", spec.keep_last, spec.keep_best, spec.monitor_mode)
        self.ema: WeightAverage | None = None  # built in fit() once the model sits on its device

    def total_steps(self) -> int:
        """Optimizer steps the run will take (the schedule's length)."""
        acc = self.spec.accumulate
        per_epoch = [math.ceil(self.task.num_batches(e) / acc) for e in range(self.spec.max_epochs)]
        total = sum(per_epoch)
        if self.spec.max_steps is not None:
            total = min(total, self.spec.max_steps)
        if total < 1:
            raise DataError(
                "the training set yields no batches (check data.train, the duration filters and "
                "batch size against the number of utterances)"
            )
        return total

    def latest_checkpoint(self) -> Path | None:
        return self.ckpt.latest()

    # -- the loop

    def fit(self, resume: bool = False) -> dict:
        """Train (``resume``: from the newest checkpoint in trainer.out_dir); returns the metrics of metrics.json."""
        run = self._build()
        if resume:
            self._resume(run)
        else:
            if self.ctx.is_main and self.latest_checkpoint() is not None:
                raise InputError(
                    f"{self.out_dir}: already holds checkpoints of a run; pass --resume to continue "
                    "it, or choose another trainer.out_dir"
                )
            seed_everything(self.spec.seed + self.ctx.rank)
        self._start(run, resume)
        done = run.state.step >= run.total
        run.run_model.train()
        while not done and run.epoch < self.spec.max_epochs:
            done = self._train_epoch(run)
            if not done and self.spec.val_every == 0:
                self._validate(run)
                run.run_model.train()
            run.epoch += 1
            run.start_index = 0
        if run.bar is not None:
            run.bar.close()
        run.state.take_window()
        return self._finish(run)

    def _train_epoch(self, run: _Run) -> bool:
        """Train ``run.epoch`` from ``run.start_index`` on; True when the run ended inside it."""
        acc, state, n = self.spec.accumulate, run.state, self.task.num_batches(run.epoch)
        clock = Lap()  # training time, validations and checkpoints excluded
        run.optimizer.zero_grad(set_to_none=True)
        micro_loss, last = 0.0, False
        for bi, batch in enumerate(self.task.train_batches(run.epoch, run.start_index), start=run.start_index):
            stats = self.task.batch_stats(batch)
            boundary = (bi + 1) % acc == 0 or bi == n - 1
            sync = self.ctx.enabled and not boundary
            with run.run_model.no_sync() if sync else contextlib.nullcontext(), autocast(self.device, self.amp_dtype):
                loss = self.task.loss(run.run_model, to_device(batch, self.device))
                scaled = loss / acc
            if run.scaler is not None:
                run.scaler.scale(scaled).backward()
            else:
                scaled.backward()
            micro_loss += float(loss.detach()) / acc
            state.utterances += stats.get("utterances", 0.0)
            state.audio_s += stats.get("audio_s", 0.0)
            if boundary:
                lr = self._optimizer_step(run, micro_loss)
                micro_loss = 0.0
                last = self._after_step(run, lr, bi + 1, clock)
                if last:
                    break
        state.train_time_s += clock.lap()
        return last

    def _optimizer_step(self, run: _Run, loss: float) -> float:
        """Clip, step (a non-finite loss skips the step), count it, advance the schedule; returns the lr used."""
        spec, state = self.spec, run.state
        finite = math.isfinite(ddp.all_reduce_mean(loss, self.ctx))
        if finite:
            if run.scaler is not None:
                run.scaler.unscale_(run.optimizer)
            if spec.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(run.model.parameters(), spec.grad_clip)
            if run.scaler is not None:
                run.scaler.step(run.optimizer)
                run.scaler.update()
            else:
                run.optimizer.step()
            run.bad_steps = 0
            state.window_loss += loss
            state.window_n += 1
        else:
            run.bad_steps += 1
            self.log(f"epoch {run.epoch} step {state.step} loss is not finite: step skipped")
            if run.bad_steps >= spec.max_bad_steps:
                raise DataError(
                    f"training diverged: {run.bad_steps} consecutive non-finite losses at step {state.step} "
                    "(lower optim.lr, raise schedule warmup, set trainer.grad_clip, or check the labels)"
                )
        run.optimizer.zero_grad(set_to_none=True)
        lr = run.schedule.lr
        state.step += 1
        if self.ema is not None and finite:
            self.ema.update(state.step)
        run.schedule.step()
        if run.bar is not None:
            run.bar.update(1)
        return lr

    def _after_step(self, run: _Run, lr: float, next_index: int, clock: Lap) -> bool:
        """The log line, validation, schedule fit and checkpoint that fall on this step; True: it is the last."""
        spec, state, step = self.spec, run.state, run.state.step
        if step % spec.log_every == 0 and state.window_n:
            self._log_step(run, lr)
        last = step >= run.total or self._out_of_time(run)
        metric = None
        if spec.val_every and step % spec.val_every == 0 or (last and state.last_val_step != step):
            state.train_time_s += clock.lap()
            metric = float(self._validate(run)[spec.monitor])
            run.budget.validated(clock.lap(), last)
            run.run_model.train()
        fit = None if last else run.budget.refit(step)
        if fit is not None and fit < run.total:
            run.total = run.state.fitted_total = fit
            run.schedule.shorten(fit)
            self.log(
                f"max_time_s {spec.max_time_s:g}: about {fit} optimizer steps fit in the budget; "
                f"the schedule now ends at step {fit}"
            )
            if run.bar is not None:
                run.bar.total = fit
        if step % spec.checkpoint_every == 0 or last:
            state.train_time_s += clock.lap()
            self._save(run, next_index, metric)
            clock.lap()
        return last

    def _out_of_time(self, run: _Run) -> bool:
        if not run.budget.out_of_time():
            return False
        self.log(f"max_time_s {self.spec.max_time_s:g} reached: this step is the last (the schedule is cut short)")
        return True

    def _log_step(self, run: _Run, lr: float) -> None:
        """The greppable line (``epoch E step S loss L lr LR [metric M] elapsed 1m02s eta 3m10s``) and its
        history entry."""
        state, monitor = run.state, self.spec.monitor
        loss = state.take_window()
        metric = state.last_val[monitor] if state.last_val else None
        elapsed = run.budget.elapsed_total()
        eta = run.budget.eta(state.step, run.total)
        line = format_log(run.epoch, state.step, loss, lr, monitor if metric is not None else None, metric)
        self._print(run.bar, f"{line} elapsed {format_duration(elapsed)} eta {format_duration(eta)}")
        if run.history is not None:
            entry = {"kind": "train", "epoch": run.epoch, "step": state.step, "loss": loss, "lr": lr}
            run.history.write({**entry, "elapsed_s": round(elapsed, 3)})

    # -- setup

    def _build(self) -> _Run:
        """Model on its device (DDP-wrapped under torchrun), optimizer, schedule, AMP scaler, weight average."""
        spec, task = self.spec, self.task
        model = task.model.to(self.device)
        if self.ctx.enabled:
            model = ddp.convert_sync_batchnorm(model, self.device)
            task.model = model
        optimizer = build_optimizer(task.param_groups(self.optim_spec.lr) or model.parameters(), self.optim_spec)
        total = self.total_steps()
        schedule = LRSchedule(optimizer, self.schedule_spec, self.optim_spec.lr, total)
        scaler = torch.amp.GradScaler("cuda") if (self.device.type == "cuda" and spec.precision == "fp16") else None
        self.ema = WeightAverage(model, spec.ema_decay) if spec.ema_decay > 0 else None
        run_model: nn.Module = model
        if self.ctx.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            run_model = nn.parallel.DistributedDataParallel(model, device_ids=ids)
        return _Run(model, run_model, optimizer, schedule, scaler, total, TrainState())

    def _resume(self, run: _Run) -> None:
        """Load the newest checkpoint into ``run``: weights (and their average), optimizer, schedule, scaler, RNG
        states, counters and data position."""
        path = self.latest_checkpoint()
        if path is None:
            raise CheckpointError(
                f"{self.out_dir / 'checkpoints'}: no checkpoint to resume from (run without --resume to start training)"
            )
        ckpt = load_checkpoint(path)
        ts = ckpt["train_state"]
        raw = ts.get("raw_state_dict")
        if self.ema is not None and raw is None:
            raise CheckpointError(
                f"{path}: was written without trainer.ema_decay, so it holds no weight "
                "average to continue (resume with the ema_decay the run started with)"
            )
        if self.ema is None and raw is not None:
            raise CheckpointError(
                f"{path}: was written with trainer.ema_decay > 0 (its model weights are the "
                "average); resume with the ema_decay the run started with"
            )
        run.model.load_state_dict(raw if raw is not None else ckpt["state_dict"])
        if self.ema is not None:
            self.ema.load_state_dict(ckpt["state_dict"], raw)
        run.optimizer.load_state_dict(ts["optimizer"])
        run.schedule.load_state_dict(ts["schedule"])
        if run.scaler is not None and ts.get("scaler"):
            run.scaler.load_state_dict(ts["scaler"])
        rngs = ts["rng"]
        if len(rngs) == self.ctx.world_size:
            set_rng_state(rngs[self.ctx.rank])
        else:
            self.log(
                f"note: checkpoint was written by {len(rngs)} process(es), this run has "
                f"{self.ctx.world_size}: random streams restart from the seed"
            )
            seed_everything(self.spec.seed + self.ctx.rank + ts["step"])
        run.state = TrainState.from_checkpoint(ts)
        fitted = run.state.fitted_total
        if self.spec.fit_schedule_to_time and fitted is not None and fitted < run.total:
            # a schedule shortened to the time budget stays short (and may shorten again)
            run.total = int(fitted)
            run.schedule.shorten(run.total)
        run.epoch, run.start_index = int(ts["epoch"]), int(ts["batch_index"])
        self.log(f"resumed from {path} at epoch {run.epoch} batch {run.start_index} step {run.state.step}")

    def _start(self, run: _Run, resume: bool) -> None:
        """The main process writes spec.yaml, opens history.jsonl and logs the header; the clock starts."""
        spec, state = self.spec, run.state
        if self.ctx.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            if self.full_spec is not None:
                save_spec(self.full_spec, self.out_dir / "spec.yaml")
                import yaml

                from ..spec import spec_to_dict

                self.log("resolved spec:\n" + yaml.safe_dump(spec_to_dict(self.full_spec), sort_keys=False).rstrip())
            n_all, n_train = count_parameters(run.model)
            amp = f"{spec.precision} autocast" if self.amp_dtype is not None else "fp32"
            self.log(
                f"parameters: {n_all:,} ({n_train:,} trainable); device {self.device} ({amp}); "
                f"{self.ctx.world_size} process(es); {run.total} optimizer steps"
            )
            note = precision_note(spec.precision, self.amp_dtype)
            if note:
                self.log(note)
            run.history = HistoryWriter(self.out_dir, state.history_lines, state.step if resume else None)
            if sys.stderr.isatty():
                from tqdm import tqdm

                run.bar = tqdm(total=run.total, initial=state.step, unit="step", dynamic_ncols=True, leave=False)
        run.budget = TimeBudget(
            spec.max_time_s,
            spec.fit_schedule_to_time,
            spec.val_every,
            state.step,
            run.total,
            self.ctx,
            elapsed_before_s=state.elapsed_s,
        )

    # -- validation, checkpoints, the end

    def _averaged(self):
        """Context: the model holds the weights that validation measures and files store (the EMA when on)."""
        return self.ema.swapped_in() if self.ema is not None else contextlib.nullcontext()

    def _validate(self, run: _Run) -> dict:
        """Validate (main process; the others receive the metrics), log, record, and save best.pt on a new best."""
        state, monitor = run.state, self.spec.monitor
        with self._averaged():
            metrics = self.task.validate() if self.ctx.is_main else None
        metrics = ddp.broadcast_object(metrics, self.ctx)
        if monitor not in metrics:
            raise InputError(
                f"trainer.monitor={monitor!r} is not a validation metric (the task reports {sorted(metrics)})"
            )
        state.last_val = {k: float(v) for k, v in metrics.items()}
        state.last_val_step = state.step
        value = float(metrics[monitor])
        better = state.best is None or (value < state.best if self.spec.monitor_mode == "min" else value > state.best)
        self.log(f"epoch {run.epoch} step {state.step} val " + " ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
        if run.history is not None:
            run.history.write(
                {
                    "kind": "val",
                    "epoch": run.epoch,
                    "step": state.step,
                    "metrics": state.last_val,
                    "elapsed_s": round(run.budget.elapsed_total(), 3),
                }
            )
        if better:
            state.best = value
            if self.ctx.is_main:
                extra = {"step": state.step, monitor: value}
                with self._averaged():
                    save_checkpoint(self.out_dir / "best.pt", self._with_extra(self.task.payload(), extra))
        return metrics

    def _save(self, run: _Run, batch_index: int, metric: float | None) -> None:
        """A checkpoint at ``run.state.step``; ``batch_index``: the epoch's next batch (where a resume starts)."""
        state = run.state
        state.elapsed_s = run.budget.elapsed_total()
        state.history_lines = run.history.lines if run.history is not None else None
        train_state = {
            **state.to_checkpoint(),
            "epoch": run.epoch,
            "batch_index": batch_index,
            "optimizer": run.optimizer.state_dict(),
            "schedule": run.schedule.state_dict(),
            "scaler": run.scaler.state_dict() if run.scaler is not None else None,
            "rng": ddp.gather_objects(rng_state(), self.ctx),
            "world_size": self.ctx.world_size,
            # with an EMA the payload's state_dict is the average: the weights training continues from go here
            "raw_state_dict": (
                {k: v.detach().clone() for k, v in self.task.model.state_dict().items()}
                if self.ema is not None
                else None
            ),
        }
        if self.ctx.is_main:
            with self._averaged():  # (payloads may hold the live tensors: write before swapping back)
                self.ckpt.save(state.step, {**self.task.payload(), "train_state": train_state}, metric)
        ddp.barrier(self.ctx)

    @staticmethod
    def _with_extra(payload: dict, extra: dict) -> dict:
        return {**payload, "extra": {**(payload.get("extra") or {}), **extra}}

    def _print(self, bar, line: str) -> None:
        if bar is not None:
            bar.write(line)
        else:
            self.log(line)

    def _finish(self, run: _Run) -> dict:
        state = run.state
        t = max(state.train_time_s, 1e-9)
        metrics = {
            "train_loss": state.last_loss,
            f"best_val_{self.spec.monitor}": state.best,
            "final_val": state.last_val,
            "steps": state.step,
            "epochs": run.epoch,
            "train_time_s": round(state.train_time_s, 3),
            "utterances_per_s": round(state.utterances * self.ctx.world_size / t, 3),
            "audio_s_per_s": round(state.audio_s * self.ctx.world_size / t, 3),
            "world_size": self.ctx.world_size,
            "device": str(self.device),
        }
        if self.ctx.is_main:
            with self._averaged():
                save_checkpoint(self.out_dir / "final.pt", self._with_extra(self.task.payload(), {"step": state.step}))
            atomic_write_bytes(self.out_dir / "metrics.json", lambda f: f.write(json.dumps(metrics, indent=2).encode()))
            self.log(
                f"done: {state.step} steps; best {self.spec.monitor} {state.best}; "
                f"wrote {self.out_dir / 'final.pt'}, {self.out_dir / 'best.pt'}, {self.out_dir / 'metrics.json'}"
            )
        ddp.barrier(self.ctx)
        return metrics
