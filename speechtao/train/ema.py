"""An exponential moving average of a model's weights (``trainer.ema_decay``)."""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from ..errors import CheckpointError


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
