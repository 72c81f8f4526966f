"""The decode step of the serving recognizer: an utterance's log-probabilities in, a hypothesis out.

:class:`speechtao.serve.recognizer.Recognizer` calls ``decoder.decode(log_probs)`` for every final pass (one
model pass over an utterance, and every offline request). Streaming interims and finals of utterances longer
than ``max_final_pass_s`` come from the per-frame best symbols the recognizer keeps (greedy), whatever the
decoder. A decoder with a language model, word boosting or N-best lists is another class with the same method::

    rec = Recognizer(backend, options, decoder=MyBeamDecoder(...))

A decoder must be safe to call from two threads at once (the batcher's two lanes).
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from ..asr.ctc import CTCHypothesis, decode_best_path


class FrameDecoder(Protocol):
    def decode(self, log_probs: np.ndarray) -> CTCHypothesis:
        """log_probs (T', V+1) of one utterance (padding already cut) -> its best hypothesis."""
        ...


class GreedyDecoder:
    """Best path: the most probable symbol per frame, runs merged, blanks dropped (:mod:`speechtao.asr.ctc`)."""

    def __init__(self, blank_id: int):
        self.blank_id = blank_id

    def decode(self, log_probs: np.ndarray) -> CTCHypothesis:
        best = log_probs.argmax(-1)  # (T',)
        prob = np.exp(np.take_along_axis(log_probs, best[:, None], -1)[:, 0].astype(np.float64))
        return decode_best_path(best.astype(np.int64), prob, self.blank_id)
