"""What a run has done so far: the counters a checkpoint carries (besides model, optimizer, schedule, RNG
states and data position) so that ``--resume`` continues them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class TrainState:
    step: int = 0  # optimizer steps taken
    best: float | None = None  # best value of trainer.monitor so far
    last_val: dict[str, float] | None = None  # the latest validation's metrics
    last_val_step: int = -1  # the step the latest validation of THIS process ran at (not saved)
    train_time_s: float = 0.0  # seconds in training steps (validations and checkpoints excluded): throughput
    elapsed_s: float = 0.0  # wall-clock seconds of the run up to the latest checkpoint, earlier runs included
    utterances: float = 0.0  # throughput counters from the task's batch_stats
    audio_s: float = 0.0
    last_loss: float | None = None  # mean loss of the latest log window
    window_loss: float = 0.0  # loss summed since the latest log line, and its number of steps
    window_n: int = 0
    fitted_total: int | None = None  # the schedule's length when fit_schedule_to_time shortened it
    history_lines: int | None = None  # lines in history.jsonl when the checkpoint was written (main process)

    def to_checkpoint(self) -> dict:
        """The counters as a checkpoint's train_state entries (the window as ``[loss, steps]``)."""
        return {
            "step": self.step,
            "best": self.best,
            "last_val": self.last_val,
            "train_time_s": self.train_time_s,
            "elapsed_s": self.elapsed_s,
            "utterances": self.utterances,
            "audio_s": self.audio_s,
            "last_loss": self.last_loss,
            "window": [self.window_loss, self.window_n],
            "fitted_total": self.fitted_total,
            "history_lines": self.history_lines,
        }

    @classmethod
    def from_checkpoint(cls, ts: dict) -> TrainState:
        """The counters of a checkpoint's train_state; entries that older checkpoints lack keep their defaults."""
        window_loss, window_n = ts.get("window", [0.0, 0])
        state = cls(window_loss=float(window_loss), window_n=int(window_n))
        for name in (
            "step",
            "best",
            "last_val",
            "train_time_s",
            "elapsed_s",
            "utterances",
            "audio_s",
            "last_loss",
            "fitted_total",
            "history_lines",
        ):
            if name in ts:
                setattr(state, name, ts[name])
        return state

    def take_window(self) -> float | None:
        """Close the log window: ``last_loss`` becomes its mean loss (returned), the window starts empty."""
        if not self.window_n:
            return None
        self.last_loss = self.window_loss / self.window_n
        self.window_loss, self.window_n = 0.0, 0
        return self.last_loss
