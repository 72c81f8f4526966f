"""The decode step of the serving recognizer: an utterance's log-probabilities in, a hypothesis out.

:class:`speechtao.serve.recognizer.Recognizer` calls ``decoder.decode(log_probs)`` for every final pass (one
model pass over an utterance, and every offline request). Streaming interims and finals of utterances longer
than ``max_final_pass_s`` come from the per-frame best symbols the recognizer keeps (greedy), whatever the
decoder. A decoder with a language model, word boosting or N-best lists is another class with the same method::

    rec = Recognizer(backend, options, decoder=MyBeamDecoder(...))

A decoder must be safe to call from two threads at once (the batcher's two lanes).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

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


@dataclass(frozen=True)
class RequestDecoding:
    """What one request asks of the decode step: Riva's ``speech_contexts`` and ``max_alternatives``."""

    boosts: tuple = ()  # speechtao.lm.decode.Boost phrases
    alternatives: int = 1  # up to this many transcripts per final (Riva's max_alternatives; 0 counts as 1)


@runtime_checkable
class SearchDecoder(Protocol):
    """A decoder that also boosts words and lists alternatives (:class:`speechtao.lm.decode.LMDecoder`)."""

    def decode(self, log_probs: np.ndarray) -> CTCHypothesis: ...

    def search(self, log_probs: np.ndarray, *, boosts: Sequence = (), alternatives: int | None = None) -> list: ...


def decode_alternatives(
    decoder: FrameDecoder, log_probs: np.ndarray, request: RequestDecoding | None
) -> list[CTCHypothesis]:
    """Best first: one hypothesis, or with a :class:`SearchDecoder` the request's boosts and up to its number of
    alternatives (greedy decoding has one path: boosts and alternatives need an LM, ``speechtao lm build``)."""
    if request is None or not isinstance(decoder, SearchDecoder):
        return [decoder.decode(log_probs)]
    if not request.boosts and request.alternatives <= 1:
        return [decoder.decode(log_probs)]
    found = decoder.search(log_probs, boosts=request.boosts, alternatives=max(request.alternatives, 1))
    return [r.hypothesis for r in found]
