"""Optimizers: AdamW (torch's) and NovoGrad (layer-wise second moments, as QuartzNet/CitriNet were trained).

NovoGrad (Ginsburg et al., 2019) keeps one second-moment scalar per parameter tensor instead of one per
element: ``v = ||g||^2`` on the first step, then ``v = b2 v + (1 - b2) ||g||^2``; the normalized gradient
``g / (sqrt(v) + eps)`` plus weight decay ``wd * w`` feeds a momentum ``m = b1 m + that`` and ``w -= lr m``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import torch


@dataclass(frozen=True)
class OptimSpec:
    lr: float  # peak learning rate (reached at the end of warmup)
    name: Literal["adamw", "novograd"] = "adamw"
    betas: tuple[float, float] = (0.9, 0.98)  # NeMo's QuartzNet/CitriNet NovoGrad recipes use [0.8, 0.5] / [0.8, 0.25]
    weight_decay: float = 1e-3  # decoupled (AdamW) or added to the normalized gradient (NovoGrad)
    eps: float = 1e-8

    def __post_init__(self):
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if not all(0.0 <= b < 1.0 for b in self.betas):
            raise ValueError(f"betas must lie in [0, 1), got {list(self.betas)}")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if not self.eps > 0:
            raise ValueError(f"eps must be > 0, got {self.eps}")


class NovoGrad(torch.optim.Optimizer):
    """NovoGrad with per-tensor second moments. ``grad_averaging`` scales the update by ``1 - beta1``."""

    def __init__(
        self,
        params: Iterable,
        lr: float = 1e-2,
        betas: tuple[float, float] = (0.95, 0.98),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        grad_averaging: bool = False,
    ):
        if not lr > 0:
            raise ValueError(f"lr must be > 0, got {lr}")
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, grad_averaging=grad_averaging)
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError("NovoGrad does not support sparse gradients")
                grad = p.grad.float()
                state = self.state[p]
                norm_sq = grad.pow(2).sum()
                if not state:
                    state["step"] = torch.zeros((), dtype=torch.float32)
                    state["exp_avg"] = torch.zeros_like(p, dtype=torch.float32, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = norm_sq.clone()
                else:
                    state["exp_avg_sq"].mul_(beta2).add_(norm_sq, alpha=1.0 - beta2)
                state["step"] += 1
                update = grad / (state["exp_avg_sq"].sqrt() + group["eps"])
                if group["weight_decay"] != 0:
                    update.add_(p.float(), alpha=group["weight_decay"])
                if group["grad_averaging"]:
                    update.mul_(1.0 - beta1)
                state["exp_avg"].mul_(beta1).add_(update)
                p.add_(state["exp_avg"].to(p.dtype), alpha=-group["lr"])
        return loss


def build_optimizer(params: Iterable, spec: OptimSpec) -> torch.optim.Optimizer:
    """The optimizer named by ``spec`` over ``params`` (only those with ``requires_grad``).

    ``params`` may also be parameter groups (dicts with ``params`` and an ``lr_scale``, e.g. layer-wise
    learning-rate decay): the schedule sets each group's rate to its ``lr_scale`` times the scheduled rate.
    """
    params = list(params)
    if params and isinstance(params[0], dict):
        params = [
            {**g, "params": [p for p in g["params"] if p.requires_grad], "lr_scale": float(g.get("lr_scale", 1.0))}
            for g in params
        ]
        params = [g for g in params if g["params"]]
    else:
        params = [p for p in params if p.requires_grad]
    if not params:
        raise ValueError("no trainable parameters (is everything frozen?)")
    if spec.name == "adamw":
        return torch.optim.AdamW(params, lr=spec.lr, betas=spec.betas, eps=spec.eps, weight_decay=spec.weight_decay)
    return NovoGrad(params, lr=spec.lr, betas=spec.betas, eps=spec.eps, weight_decay=spec.weight_decay)
