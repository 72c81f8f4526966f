"""The wall-clock side of a run: ``trainer.max_time_s`` (the step past the budget is the last) and
``trainer.fit_schedule_to_time`` (measure the time per step early, then shorten the schedule to the steps that
fit, so the learning rate decays by the deadline instead of being cut off at its middle). Also the elapsed time
and ETA of the log lines. The main process measures and decides; every process follows it."""

from __future__ import annotations

import time

from . import ddp


class TimeBudget:
    def __init__(
        self,
        max_time_s: float | None,
        fit_schedule: bool,
        val_every: int,
        start_step: int,
        total: int,
        ctx: ddp.DistContext,
        elapsed_before_s: float = 0.0,
    ):
        """``start_step``: the step this run starts at (a resumed run's); ``total``: the schedule's length now;
        ``elapsed_before_s``: wall-clock seconds of the runs before a resume (for the logs only: max_time_s is
        the budget of this run)."""
        self.max_time_s = max_time_s
        self.val_every = val_every
        self.start_step = start_step
        self.ctx = ctx
        self.elapsed_before_s = elapsed_before_s
        self.start = time.perf_counter()
        self.val_s = 0.0  # seconds spent validating in this run, and how many validations
        self.vals = 0
        self.fitted = not fit_schedule  # True: no (re)fit pending
        self.fit_schedule = fit_schedule
        self.probe = max(5, min(50, total // 50))  # steps timed before the first fit

    def elapsed(self) -> float:
        """Seconds since this run started."""
        return time.perf_counter() - self.start

    def elapsed_total(self) -> float:
        """Seconds since the first run started (this one plus those before the resume)."""
        return self.elapsed_before_s + self.elapsed()

    def eta(self, step: int, total: int) -> float:
        """Seconds left to step ``total`` at the pace of this run so far (validations included), or to the end of
        ``max_time_s`` when that comes first."""
        done = step - self.start_step
        left = self.elapsed() / done * max(0, total - step) if done > 0 else 0.0
        if self.max_time_s is not None:
            left = min(left, max(0.0, self.max_time_s - self.elapsed()))
        return left

    def out_of_time(self) -> bool:
        """True once this run has used ``max_time_s`` (all processes agree)."""
        if self.max_time_s is None:
            return False
        over = float(self.elapsed() >= self.max_time_s) if self.ctx.is_main else 0.0
        return ddp.all_reduce_mean(over, self.ctx) > 0

    def validated(self, seconds: float, last: bool) -> None:
        """Count a validation that took ``seconds``; with fit_schedule_to_time the schedule is refitted with its
        cost known (unless it was the last step's)."""
        self.val_s += seconds
        self.vals += 1
        if self.fit_schedule and not last:
            self.fitted = False

    def refit(self, step: int) -> int | None:
        """After optimizer step ``step``: the schedule length that ends the run inside ``max_time_s`` when a fit is
        due (once ``probe`` steps are timed, and again after each validation), else None. The estimate: the time
        left, less one validation (the last step's) and a 5% margin, over the measured seconds per step plus each
        step's share of the validations to come."""
        if self.fitted or step - self.start_step < self.probe:
            return None
        self.fitted = True
        fit = None
        if self.ctx.is_main:
            elapsed = self.elapsed()
            val = self.val_s / self.vals if self.vals else 0.0
            per_step = max(1e-6, (elapsed - self.val_s) / max(1, step - self.start_step))
            if self.val_every:
                per_step += val / self.val_every
            left = 0.95 * self.max_time_s - elapsed - val
            fit = step + max(1, int(left / per_step))
        return int(ddp.broadcast_object(fit, self.ctx))


def format_duration(seconds: float) -> str:
    """``45s``, ``1m02s``, ``2h05m09s``."""
    s = max(0, int(round(seconds)))
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    if h:
        return f"{h}h{m:02d}m{s:02d}s"
    return f"{m}m{s:02d}s" if m else f"{s}s"


class Lap:
    """A stopwatch: ``lap()`` returns the seconds since the previous lap (or creation) and starts the next."""

    def __init__(self):
        self.t0 = time.perf_counter()

    def lap(self) -> float:
        now = time.perf_counter()
        seconds, self.t0 = now - self.t0, now
        return seconds
