"""Endpointing on CTC output frames, with the fields of Riva's ``EndpointingConfig``.

A frame is *blank* when the CTC blank is its most likely symbol (the model hears no new token there: silence,
noise, or the tail of a sound already emitted). Over the frames of the current utterance:

- speech **starts** when, in the last ``start_history`` ms, the share of non-blank frames reaches
  ``start_threshold``;
- after the start, the utterance **ends** (a final result) when, in the last ``stop_history`` ms, the share of
  blank frames reaches ``stop_threshold``;
- ``stop_history_eou``/``stop_threshold_eou`` (optional, 0 = off) is an earlier, softer end-of-utterance
  test: when it fires the recognizer sends the utterance's transcript once as an interim result of stability
  1.0, before the final one.

Usage::

    cfg = EndpointConfig(stop_history=800, stop_threshold=0.98)
    ep = Endpointer(cfg, frame_ms=20)
    for blank in frames_are_blank:       # one bool per output frame, in order
        event = ep.push(blank)          # None | "start" | "eou" | "end"
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True)
class EndpointConfig:
    """Riva's EndpointingConfig fields; the defaults are what an unset field means here."""

    start_history: int = 300  # ms window for detecting the start of speech
    start_threshold: float = 0.2  # share of non-blank frames in that window that starts an utterance
    stop_history: int = 800  # ms window for detecting the end of speech
    stop_threshold: float = 0.98  # share of blank frames in that window that ends the utterance
    stop_history_eou: int = 0  # ms window of the early end-of-utterance test (0: off)
    stop_threshold_eou: float = 0.98  # share of blank frames in that window for early EOU

    def __post_init__(self) -> None:
        for name in ("start_history", "stop_history", "stop_history_eou"):
            v = getattr(self, name)
            if not 0 <= v <= 60_000:
                raise ValueError(f"{name} must be in [0, 60000] ms, got {v}")
        for name in ("start_threshold", "stop_threshold", "stop_threshold_eou"):
            v = getattr(self, name)
            if not 0.0 < v <= 1.0:
                raise ValueError(f"{name} must be in (0, 1], got {v}")
        if self.stop_history == 0:
            raise ValueError("stop_history must be > 0 ms (it is the silence that ends an utterance)")

    @classmethod
    def from_proto(cls, msg, base: EndpointConfig | None = None) -> EndpointConfig:
        """Fields set in a ``riva_asr_pb2.EndpointingConfig`` override ``base`` (or the defaults).

        A field holding 0 counts as unset, as in Riva's clients, which send 0 for options the user left out.
        """
        base = base or cls()
        values = {}
        for name in (
            "start_history",
            "start_threshold",
            "stop_history",
            "stop_threshold",
            "stop_history_eou",
            "stop_threshold_eou",
        ):
            v = getattr(msg, name)
            values[name] = v if (msg.HasField(name) and v > 0) else getattr(base, name)
        return cls(**values)


class Endpointer:
    """Feeds on one bool per output frame; reports start of speech, early EOU and end of utterance."""

    def __init__(self, cfg: EndpointConfig, frame_ms: float):
        if frame_ms <= 0:
            raise ValueError(f"frame_ms must be > 0, got {frame_ms}")
        self.cfg = cfg
        self.n_start = max(1, round(cfg.start_history / frame_ms))
        self.n_stop = max(1, round(cfg.stop_history / frame_ms))
        self.n_eou = round(cfg.stop_history_eou / frame_ms) if cfg.stop_history_eou else 0
        self.reset()

    def reset(self) -> None:
        """Forget the utterance: the next frames are tested for a new start."""
        self.started = False
        self.eou_sent = False
        self._recent: deque[bool] = deque(maxlen=max(self.n_start, self.n_stop, self.n_eou))

    def _share_blank(self, n: int) -> float:
        window = list(self._recent)[-n:]
        return sum(window) / n if len(window) >= n else 0.0

    def push(self, blank: bool) -> str | None:
        """Add one frame. Returns "start", "eou", "end" or None."""
        self._recent.append(bool(blank))
        if not self.started:
            window = list(self._recent)[-self.n_start :]
            nonblank = sum(not b for b in window) / self.n_start
            if nonblank >= self.cfg.start_threshold:
                self.started = True
                return "start"
            return None
        if self._share_blank(self.n_stop) >= self.cfg.stop_threshold:
            return "end"
        if self.n_eou and not self.eou_sent and self._share_blank(self.n_eou) >= self.cfg.stop_threshold_eou:
            self.eou_sent = True
            return "eou"
        return None
