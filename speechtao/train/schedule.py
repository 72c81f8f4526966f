"""Learning-rate schedules with NeMo's meaning of ``warmup_steps`` / ``warmup_ratio`` / ``min_lr``.

Optimizer step ``s`` (0-based) gets, for a peak ``lr`` and ``W`` warmup steps out of ``S``:
- warmup, ``s <= W`` (when ``W > 0``): ``lr * (s + 1) / (W + 1)``, so the peak is reached at ``s == W``;
- cosine, ``W < s <= S``: ``min_lr + (lr - min_lr) * 0.5 * (1 + cos(pi * (s - W) / (S - W)))``;
- after ``S``: ``min_lr``.
``constant`` keeps ``lr`` after the warmup. ``warmup_ratio`` r means ``W = int(r * S)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch


@dataclass(frozen=True)
class ScheduleSpec:
    name: Literal["cosine", "constant"] = "cosine"
    warmup_steps: int | None = None  # give this or warmup_ratio (or neither: no warmup)
    warmup_ratio: float | None = None  # fraction of all optimizer steps spent warming up
    min_lr: float = 0.0  # the floor the cosine decays to

    def __post_init__(self):
        if self.warmup_steps is not None and self.warmup_ratio is not None:
            raise ValueError("give schedule.warmup_steps or schedule.warmup_ratio, not both")
        if self.warmup_steps is not None and self.warmup_steps < 0:
            raise ValueError(f"warmup_steps must be >= 0, got {self.warmup_steps}")
        if self.warmup_ratio is not None and not 0.0 <= self.warmup_ratio < 1.0:
            raise ValueError(f"warmup_ratio must lie in [0, 1), got {self.warmup_ratio}")
        if self.min_lr < 0:
            raise ValueError(f"min_lr must be >= 0, got {self.min_lr}")

    def warmup_for(self, max_steps: int) -> int:
        if self.warmup_steps is not None:
            return self.warmup_steps
        if self.warmup_ratio is not None:
            return int(self.warmup_ratio * max_steps)
        return 0


def lr_at(
    step: int, peak_lr: float, max_steps: int, warmup_steps: int = 0, min_lr: float = 0.0, name: str = "cosine"
) -> float:
    """The learning rate of optimizer step ``step`` (see the module docstring)."""
    if warmup_steps > 0 and step <= warmup_steps:
        return peak_lr * (step + 1) / (warmup_steps + 1)
    if name == "constant":
        return peak_lr
    if step > max_steps:
        return min_lr
    span = max(1, max_steps - warmup_steps)
    return min_lr + (peak_lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * (step - warmup_steps) / span))


class LRSchedule:
    """Sets ``lr`` on every param group of ``optimizer`` before each optimizer step.

    ``step()`` is called after ``optimizer.step()``; ``state_dict()`` holds the step count for resume.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, spec: ScheduleSpec, peak_lr: float, max_steps: int):
        self.optimizer = optimizer
        self.spec = spec
        self.peak_lr = peak_lr
        self.max_steps = max_steps
        self.warmup_steps = spec.warmup_for(max_steps)
        self.step_count = 0
        self._apply()

    @property
    def lr(self) -> float:
        return lr_at(self.step_count, self.peak_lr, self.max_steps, self.warmup_steps, self.spec.min_lr, self.spec.name)

    def _apply(self) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr * group.get("lr_scale", 1.0)

    def step(self) -> None:
        self.step_count += 1
        self._apply()

    def shorten(self, max_steps: int) -> None:
        """End the schedule at ``max_steps`` (trainer.fit_schedule_to_time); a ``warmup_ratio`` warmup shrinks with
        it, so a budget that fits fewer steps than the warmup still reaches the peak and decays."""
        self.max_steps = max_steps
        self.warmup_steps = self.spec.warmup_for(max_steps)
        self._apply()

    def state_dict(self) -> dict:
        return {"step_count": self.step_count, "max_steps": self.max_steps, "warmup_steps": self.warmup_steps}

    def load_state_dict(self, state: dict) -> None:
        self.step_count = int(state["step_count"])
        self._apply()
