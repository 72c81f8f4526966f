"""The one training loop, shared by every task (ASR now, NLP later).

A task is any object with::

    model: nn.Module                          # the bare model (the trainer wraps it for DDP itself)
    num_batches(epoch) -> int                 # micro-batches this rank sees in ``epoch``
    train_batches(epoch, start_index)         # yields those micro-batches from ``start_index`` on
    loss(model, batch) -> Tensor              # scalar; ``model`` is what to call (the DDP wrapper under torchrun)
    validate() -> dict[str, float]            # e.g. {"wer": 0.081, "cer": 0.03}; run on rank 0 only
    payload() -> dict                         # what to save: {..., "state_dict": model weights, ...}
    batch_stats(batch) -> dict[str, float]    # optional: {"utterances": 8, "audio_s": 35.2} for throughput

Order of work per optimizer step: ``accumulate`` micro-batches forward/backward, clip, step, schedule, then
the greppable log line, validation and the checkpoint, each on its own period. A checkpoint stores model,
optimizer, schedule, AMP scaler, every rank's RNG states and the data position (epoch, next batch index),
so ``fit(resume=True)`` continues bit-for-bit where a killed run stopped.
"""

from __future__ import annotations

import contextlib
import json
import math
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import torch
from torch import nn

from ..errors import CheckpointError, DataError, InputError
from ..spec import save_spec
from . import ddp
from .checkpoint import CheckpointManager, atomic_write_bytes, load_checkpoint, save_checkpoint
from .optim import OptimSpec, build_optimizer
from .schedule import LRSchedule, ScheduleSpec


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
    model: nn.Module

    def num_batches(self, epoch: int) -> int: ...

    def train_batches(self, epoch: int, start_index: int): ...

    def loss(self, model: nn.Module, batch: Any) -> torch.Tensor: ...

    def validate(self) -> dict[str, float]: ...

    def payload(self) -> dict: ...


# ---------------------------------------------------------------------------------------------- RNG


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def rng_state() -> dict:
    """Python, NumPy, torch (and CUDA) generator states as checkpoint-safe values (no pickled objects)."""
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": [version, list(internal), gauss],
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = [s.cpu() for s in torch.cuda.get_rng_state_all()]
    return state


def set_rng_state(state: dict) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


# --------------------------------------------------------------------------------------------- helpers


def cpu_has_native_bf16(cpuinfo: str | Path = "/proc/cpuinfo") -> bool:
    """True when the CPU computes bf16 matrix products natively (avx512_bf16 or AMX): there, bf16 autocast
    trains MiniLM 1.7x faster than fp32 (``bench/train_precision.py``); without them it is slower."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return False
    flags = set()
    for line in text.splitlines():
        if line.startswith("flags"):
            flags.update(line.split(":", 1)[1].split())
            break
    return bool(flags & {"avx512_bf16", "amx_bf16"})


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


class WeightAverage:
    """An exponential moving average of a model's floating-point weights and buffers (integer buffers, such as
    BatchNorm's batch counter, are copied). ``swapped_in()`` puts the average into the model for a while."""

    def __init__(self, model: nn.Module, decay: float):
        self.model = model
        self.decay = decay
        self.shadow = {k: v.detach().clone() for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self, step: int) -> None:
        """Fold the model's current weights in after optimizer step ``step`` (1-based)."""
        d = min(self.decay, (1.0 + step) / (10.0 + step))
        for k, v in self.model.state_dict().items():
            avg = self.shadow[k]
            if avg.is_floating_point():
                avg.lerp_(v.detach().to(avg.dtype), 1.0 - d)
            else:
                avg.copy_(v)

    def load_state_dict(self, state: dict, fallback: dict) -> None:
        """The average from ``state`` (a payload's state_dict, which may omit training-only entries: those come
        from ``fallback``, the raw weights)."""
        for k, v in self.shadow.items():
            src = state.get(k, fallback.get(k))
            if src is None:
                raise CheckpointError(
                    f"the checkpoint lacks the weight {k!r}: it was written by another model "
                    "(resume with the model it was trained with)"
                )
            v.copy_(src)

    @contextlib.contextmanager
    @torch.no_grad()
    def swapped_in(self):
        """Context: the model holds the averaged weights inside, its own ones again after."""
        live = self.model.state_dict()
        saved = {k: v.detach().clone() for k, v in live.items()}
        for k, v in live.items():
            v.copy_(self.shadow[k])
        try:
            yield self.model
        finally:
            for k, v in live.items():
                v.copy_(saved[k])


# ---------------------------------------------------------------------------------------------- trainer


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
        self.amp_dtype = self._amp_dtype()  # decided once: the CPU check reads /proc/cpuinfo
        self.out_dir = Path(spec.out_dir)
        self.ckpt = CheckpointManager(self.out_dir / "checkpoints", spec.keep_last, spec.keep_best, spec.monitor_mode)
        self.ema: WeightAverage | None = None  # built in fit() once the model sits on its device

    def _averaged(self):
        """Context: the model holds the weights that validation measures and files store (the EMA when on)."""
        return self.ema.swapped_in() if self.ema is not None else _null()

    # -- setup

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

    def _amp_dtype(self) -> torch.dtype | None:
        """The autocast dtype of this run on its device; None: fp32."""
        precision = self.spec.precision
        if precision == "fp32":
            return None
        if self.device.type == "cuda":
            return torch.bfloat16 if precision == "bf16" else torch.float16
        return torch.bfloat16 if precision == "bf16" and cpu_has_native_bf16() else None

    def _autocast(self):
        if self.amp_dtype is None:
            return torch.autocast("cpu", enabled=False)
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def _precision_note(self) -> str | None:
        """A log line when the requested precision is not what runs on this device."""
        if self.spec.precision == "fp32" or self.amp_dtype is not None:
            return None
        why = (
            "fp16 autocast is CUDA-only"
            if self.spec.precision == "fp16"
            else "this CPU has no native bf16 (avx512_bf16 or amx_bf16), where bf16 would be slower than fp32"
        )
        return f"precision {self.spec.precision} requested: training in fp32 on CPU ({why})"

    def latest_checkpoint(self) -> Path | None:
        return self.ckpt.latest()

    # -- state

    def _train_state(self, optimizer, schedule, scaler, epoch: int, batch_index: int, state: dict) -> dict:
        rngs = ddp.gather_objects(rng_state(), self.ctx)
        return {
            "step": state["step"],
            "epoch": epoch,
            "batch_index": batch_index,
            "optimizer": optimizer.state_dict(),
            "schedule": schedule.state_dict(),
            "scaler": scaler.state_dict() if scaler is not None else None,
            "rng": rngs,
            "world_size": self.ctx.world_size,
            "best": state["best"],
            "last_val": state["last_val"],
            "train_time_s": state["train_time_s"],
            "utterances": state["utterances"],
            "audio_s": state["audio_s"],
            "last_loss": state["last_loss"],
            "window": list(state["window"]),
            "fitted_total": state["fitted_total"],  # the schedule's length when fit_schedule_to_time shortened it
            # with an EMA the payload's state_dict is the average: the weights training continues from go here
            "raw_state_dict": (
                {k: v.detach().clone() for k, v in self.task.model.state_dict().items()}
                if self.ema is not None
                else None
            ),
        }

    def _save(self, optimizer, schedule, scaler, epoch, batch_index, state, metric) -> None:
        train_state = self._train_state(optimizer, schedule, scaler, epoch, batch_index, state)
        if self.ctx.is_main:
            with self._averaged():  # (payloads may hold the live tensors: write before swapping back)
                self.ckpt.save(state["step"], {**self.task.payload(), "train_state": train_state}, metric)
        ddp.barrier(self.ctx)

    def _validate(self, epoch: int, state: dict) -> dict:
        with self._averaged():
            metrics = self.task.validate() if self.ctx.is_main else None
        metrics = ddp.broadcast_object(metrics, self.ctx)
        if self.spec.monitor not in metrics:
            raise InputError(
                f"trainer.monitor={self.spec.monitor!r} is not a validation metric (the task reports {sorted(metrics)})"
            )
        state["last_val"] = {k: float(v) for k, v in metrics.items()}
        state["last_val_step"] = state["step"]
        value = float(metrics[self.spec.monitor])
        best = state["best"]
        better = best is None or (value < best if self.spec.monitor_mode == "min" else value > best)
        self.log(f"epoch {epoch} step {state['step']} val " + " ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
        if better:
            state["best"] = value
            if self.ctx.is_main:
                extra = {"step": state["step"], self.spec.monitor: value}
                with self._averaged():
                    save_checkpoint(self.out_dir / "best.pt", self._with_extra(self.task.payload(), extra))
        return metrics

    @staticmethod
    def _with_extra(payload: dict, extra: dict) -> dict:
        return {**payload, "extra": {**(payload.get("extra") or {}), **extra}}

    # -- the loop

    def fit(self, resume: bool = False) -> dict:
        spec, ctx, task = self.spec, self.ctx, self.task
        model = task.model.to(self.device)
        if ctx.enabled:
            model = ddp.convert_sync_batchnorm(model, self.device)
            task.model = model
        groups = task.param_groups(self.optim_spec.lr) if hasattr(task, "param_groups") else None
        optimizer = build_optimizer(groups or model.parameters(), self.optim_spec)
        total = self.total_steps()
        schedule = LRSchedule(optimizer, self.schedule_spec, self.optim_spec.lr, total)
        scaler = torch.amp.GradScaler("cuda") if (self.device.type == "cuda" and spec.precision == "fp16") else None
        state = {
            "step": 0,
            "best": None,
            "last_val": None,
            "last_val_step": -1,
            "train_time_s": 0.0,
            "utterances": 0.0,
            "audio_s": 0.0,
            "last_loss": None,
            "window": [0.0, 0],
            "fitted_total": None,
        }
        epoch, start_index = 0, 0
        self.ema = WeightAverage(model, spec.ema_decay) if spec.ema_decay > 0 else None
        run_model: nn.Module = model
        if ctx.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            run_model = nn.parallel.DistributedDataParallel(model, device_ids=ids)

        if resume:
            path = self.latest_checkpoint()
            if path is None:
                raise CheckpointError(
                    f"{self.out_dir / 'checkpoints'}: no checkpoint to resume from "
                    "(run without --resume to start training)"
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
            model.load_state_dict(raw if raw is not None else ckpt["state_dict"])
            if self.ema is not None:
                self.ema.load_state_dict(ckpt["state_dict"], raw)
            optimizer.load_state_dict(ts["optimizer"])
            schedule.load_state_dict(ts["schedule"])
            if scaler is not None and ts.get("scaler"):
                scaler.load_state_dict(ts["scaler"])
            rngs = ts["rng"]
            if len(rngs) == ctx.world_size:
                set_rng_state(rngs[ctx.rank])
            else:
                self.log(
                    f"note: checkpoint was written by {len(rngs)} process(es), this run has "
                    f"{ctx.world_size}: random streams restart from the seed"
                )
                seed_everything(spec.seed + ctx.rank + ts["step"])
            for k in state:
                if k in ts:
                    state[k] = ts[k]
            fitted = state["fitted_total"]
            if spec.fit_schedule_to_time and fitted is not None and fitted < total:
                total = int(fitted)  # a schedule shortened to the time budget stays short (and may shorten again)
                schedule.max_steps = total
            epoch, start_index = int(ts["epoch"]), int(ts["batch_index"])
            self.log(f"resumed from {path} at epoch {epoch} batch {start_index} step {state['step']}")
        else:
            if self.ctx.is_main and self.latest_checkpoint() is not None:
                raise InputError(
                    f"{self.out_dir}: already holds checkpoints of a run; pass --resume to continue "
                    "it, or choose another trainer.out_dir"
                )
            seed_everything(spec.seed + ctx.rank)

        if ctx.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            if self.full_spec is not None:
                save_spec(self.full_spec, self.out_dir / "spec.yaml")
                import yaml

                from ..spec import spec_to_dict

                self.log("resolved spec:\n" + yaml.safe_dump(spec_to_dict(self.full_spec), sort_keys=False).rstrip())
            n_all, n_train = count_parameters(model)
            amp = f"{spec.precision} autocast" if self.amp_dtype is not None else "fp32"
            self.log(
                f"parameters: {n_all:,} ({n_train:,} trainable); device {self.device} ({amp}); "
                f"{ctx.world_size} process(es); {total} optimizer steps"
            )
            note = self._precision_note()
            if note:
                self.log(note)

        bar = None
        if ctx.is_main and sys.stderr.isatty():
            from tqdm import tqdm

            bar = tqdm(total=total, initial=state["step"], unit="step", dynamic_ncols=True, leave=False)

        acc = spec.accumulate
        window_loss, window_n = float(state["window"][0]), int(state["window"][1])  # loss since the last log line
        bad_steps = 0
        done = state["step"] >= total
        run_start = time.perf_counter()
        timing = {"start_step": state["step"], "val_s": 0.0, "vals": 0, "fitted": not spec.fit_schedule_to_time}
        probe = max(5, min(50, total // 50))  # steps timed before the first fit
        run_model.train()
        while not done and epoch < spec.max_epochs:
            n = task.num_batches(epoch)
            t0 = time.perf_counter()
            optimizer.zero_grad(set_to_none=True)
            micro_loss = 0.0
            for bi, batch in enumerate(task.train_batches(epoch, start_index), start=start_index):
                stats = task.batch_stats(batch) if hasattr(task, "batch_stats") else {}
                batch = to_device(batch, self.device)
                boundary = (bi + 1) % acc == 0 or bi == n - 1
                sync = ctx.enabled and not boundary
                with run_model.no_sync() if sync else _null(), self._autocast():
                    loss = task.loss(run_model, batch)
                    scaled = loss / acc
                if scaler is not None:
                    scaler.scale(scaled).backward()
                else:
                    scaled.backward()
                micro_loss += float(loss.detach()) / acc
                state["utterances"] += stats.get("utterances", 0.0)
                state["audio_s"] += stats.get("audio_s", 0.0)
                if not boundary:
                    continue
                finite = math.isfinite(ddp.all_reduce_mean(micro_loss, ctx))
                if finite:
                    if scaler is not None:
                        scaler.unscale_(optimizer)
                    if spec.grad_clip > 0:
                        torch.nn.utils.clip_grad_norm_(model.parameters(), spec.grad_clip)
                    if scaler is not None:
                        scaler.step(optimizer)
                        scaler.update()
                    else:
                        optimizer.step()
                    bad_steps = 0
                    window_loss += micro_loss
                    window_n += 1
                else:
                    bad_steps += 1
                    self.log(f"epoch {epoch} step {state['step']} loss is not finite: step skipped")
                    if bad_steps >= spec.max_bad_steps:
                        raise DataError(
                            f"training diverged: {bad_steps} consecutive non-finite losses at step {state['step']} "
                            "(lower optim.lr, raise schedule warmup, set trainer.grad_clip, or check the labels)"
                        )
                optimizer.zero_grad(set_to_none=True)
                micro_loss = 0.0
                lr_used = schedule.lr
                state["step"] += 1
                if self.ema is not None and finite:
                    self.ema.update(state["step"])
                schedule.step()
                if bar is not None:
                    bar.update(1)
                step = state["step"]
                if step % spec.log_every == 0 and window_n:
                    state["last_loss"] = window_loss / window_n
                    metric = state["last_val"][spec.monitor] if state["last_val"] else None
                    self._print(
                        bar,
                        format_log(
                            epoch,
                            step,
                            state["last_loss"],
                            lr_used,
                            spec.monitor if metric is not None else None,
                            metric,
                        ),
                    )
                    window_loss, window_n = 0.0, 0
                last = step >= total or self._out_of_time(run_start)
                metric = None
                if spec.val_every and step % spec.val_every == 0 or (last and state["last_val_step"] != step):
                    state["train_time_s"] += time.perf_counter() - t0
                    v0 = time.perf_counter()
                    metric = float(self._validate(epoch, state)[spec.monitor])
                    timing["val_s"] += time.perf_counter() - v0
                    timing["vals"] += 1
                    run_model.train()
                    t0 = time.perf_counter()
                    if spec.fit_schedule_to_time and not last:
                        timing["fitted"] = False  # refit with the validation's cost known
                if not last and not timing["fitted"] and step - timing["start_step"] >= probe:
                    timing["fitted"] = True
                    fit = self._steps_that_fit(run_start, step, timing)
                    if fit < total:
                        total = state["fitted_total"] = fit
                        schedule.max_steps = fit
                        self.log(
                            f"max_time_s {spec.max_time_s:g}: about {fit} optimizer steps fit in the budget; "
                            f"the schedule now ends at step {fit}"
                        )
                        if bar is not None:
                            bar.total = fit
                if step % spec.checkpoint_every == 0 or last:
                    state["train_time_s"] += time.perf_counter() - t0
                    state["window"] = [window_loss, window_n]
                    self._save(optimizer, schedule, scaler, epoch, bi + 1, state, metric)
                    t0 = time.perf_counter()
                if last:
                    done = True
                    break
            state["train_time_s"] += time.perf_counter() - t0
            if not done and spec.val_every == 0:
                self._validate(epoch, state)
                run_model.train()
            epoch += 1
            start_index = 0
        if bar is not None:
            bar.close()
        if window_n:
            state["last_loss"] = window_loss / window_n
        return self._finish(state, epoch)

    def _steps_that_fit(self, run_start: float, step: int, timing: dict) -> int:
        """The schedule length that ends this run inside ``max_time_s``: the time left, less one validation (the
        last step's) and a 5% margin, over the measured seconds per step plus each step's share of the
        validations to come (the main process decides, so all processes agree)."""
        fit = None
        if self.ctx.is_main:
            elapsed = time.perf_counter() - run_start
            steps = step - timing["start_step"]
            val = timing["val_s"] / timing["vals"] if timing["vals"] else 0.0
            per_step = max(1e-6, (elapsed - timing["val_s"]) / max(1, steps))
            if self.spec.val_every:
                per_step += val / self.spec.val_every
            left = 0.95 * self.spec.max_time_s - elapsed - val
            fit = step + max(1, int(left / per_step))
        return int(ddp.broadcast_object(fit, self.ctx))

    def _out_of_time(self, run_start: float) -> bool:
        """True once this run has used ``max_time_s`` (the main process decides, so all processes stop together)."""
        if self.spec.max_time_s is None:
            return False
        over = float(time.perf_counter() - run_start >= self.spec.max_time_s) if self.ctx.is_main else 0.0
        if ddp.all_reduce_mean(over, self.ctx) > 0:
            self.log(f"max_time_s {self.spec.max_time_s:g} reached: this step is the last (the schedule is cut short)")
            return True
        return False

    def _print(self, bar, line: str) -> None:
        if bar is not None:
            bar.write(line)
        else:
            self.log(line)

    def _finish(self, state: dict, epoch: int) -> dict:
        t = max(state["train_time_s"], 1e-9)
        metrics = {
            "train_loss": state["last_loss"],
            f"best_val_{self.spec.monitor}": state["best"],
            "final_val": state["last_val"],
            "steps": state["step"],
            "epochs": epoch,
            "train_time_s": round(state["train_time_s"], 3),
            "utterances_per_s": round(state["utterances"] * self.ctx.world_size / t, 3),
            "audio_s_per_s": round(state["audio_s"] * self.ctx.world_size / t, 3),
            "world_size": self.ctx.world_size,
            "device": str(self.device),
        }
        if self.ctx.is_main:
            with self._averaged():
                save_checkpoint(
                    self.out_dir / "final.pt", self._with_extra(self.task.payload(), {"step": state["step"]})
                )
            atomic_write_bytes(self.out_dir / "metrics.json", lambda f: f.write(json.dumps(metrics, indent=2).encode()))
            self.log(
                f"done: {state['step']} steps; best {self.spec.monitor} {state['best']}; "
                f"wrote {self.out_dir / 'final.pt'}, {self.out_dir / 'best.pt'}, {self.out_dir / 'metrics.json'}"
            )
        ddp.barrier(self.ctx)
        return metrics


class _null:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False
