"""Greedy CTC decoding with token frames, confidences and word times.

A CTC model emits, for every output frame, log-probabilities over the vocabulary plus a blank (last id, as
NeMo). Greedy decoding takes the best symbol per frame, merges runs of the same symbol and drops blanks, so
``a a _ a b b _`` reads ``a a b``: a blank between two runs of one symbol keeps both.

Each emitted token keeps the first and last frame of its run and a confidence, the mean over its run of the
per-frame probability of the chosen symbol. A word's confidence is the lowest of its tokens' (a word is as
sure as its least sure piece); an utterance's is the mean chosen-symbol probability over all its frames,
blanks included. Times are frames x ``frame_shift_s``, where ``frame_shift_s`` is the feature stride times
the model's subsampling factor (10 ms x 2 = 20 ms for QuartzNet, 10 ms x 8 = 80 ms for CitriNet).

Usage::

    log_probs, lengths = model(audio, audio_lengths)          # (B, T', V+1), (B,)
    hyps = greedy_decode(log_probs, lengths, blank_id=tokenizer.blank_id)
    words = word_times(hyps[0], tokenizer, frame_shift_s=0.02)  # [Word("hello", 120, 460, 0.93), ...]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..errors import DataError


@dataclass(frozen=True)
class CTCHypothesis:
    """One utterance decoded greedily. Frames index the model's output frames."""

    token_ids: tuple[int, ...]  # emitted tokens, blanks and repeats removed
    token_frames: tuple[int, ...]  # first frame of each token's run
    token_end_frames: tuple[int, ...]  # last frame (inclusive) of each token's run
    token_confidences: tuple[float, ...]  # mean probability of the token over its run, in [0, 1]
    confidence: float  # mean probability of the chosen symbol over all frames (blanks included)
    num_frames: int  # valid output frames (the length passed in)


@dataclass(frozen=True)
class Word:
    word: str
    start_ms: int  # start of the first token's run
    end_ms: int  # end of the last token's run (exclusive), > start_ms
    confidence: float  # lowest token confidence within the word

    def to_dict(self) -> dict:
        return {
            "word": self.word,
            "start_ms": self.start_ms,
            "end_ms": self.end_ms,
            "confidence": round(self.confidence, 4),
        }


def decode_best_path(best: np.ndarray, prob: np.ndarray, blank_id: int) -> CTCHypothesis:
    """Greedy decoding of one utterance from its per-frame choices: ``best`` (T,) int chosen symbols, ``prob``
    (T,) their probabilities, T already cut to the length (the serving recognizer keeps only these per frame)."""
    n = len(best)
    if n == 0:
        return CTCHypothesis((), (), (), (), 0.0, 0)
    change = np.ones(n, dtype=bool)
    change[1:] = best[1:] != best[:-1]
    starts = np.flatnonzero(change)  # first frame of every run
    ends = np.append(starts[1:] - 1, n - 1)  # last frame of every run
    run_conf = np.add.reduceat(prob, starts) / (ends - starts + 1)
    keep = best[starts] != blank_id
    return CTCHypothesis(
        token_ids=tuple(int(x) for x in best[starts][keep]),
        token_frames=tuple(int(x) for x in starts[keep]),
        token_end_frames=tuple(int(x) for x in ends[keep]),
        token_confidences=tuple(float(x) for x in run_conf[keep]),
        confidence=float(prob.mean()),
        num_frames=n,
    )


def greedy_decode(log_probs: torch.Tensor, lengths: torch.Tensor | None, blank_id: int) -> list[CTCHypothesis]:
    """Best path decoding of a batch.

    Args:
        log_probs: (B, T, V+1) log-softmax outputs (probabilities are ``exp`` of these).
        lengths: (B,) valid frames per utterance; frames beyond are padding and ignored. None: all T.
        blank_id: the blank's id (``tokenizer.blank_id``, the last one for NeMo models).
    Returns:
        one :class:`CTCHypothesis` per batch item.
    """
    if log_probs.dim() != 3:
        raise DataError(
            f"greedy_decode: log_probs must be (batch, frames, vocab+1), got shape "
            f"{tuple(log_probs.shape)} (add a batch dimension with unsqueeze(0))"
        )
    batch, frames, vocab = log_probs.shape
    if not 0 <= blank_id < vocab:
        raise DataError(
            f"greedy_decode: blank_id {blank_id} outside the {vocab} output symbols "
            "(pass tokenizer.blank_id of the tokenizer the model was trained with)"
        )
    if lengths is None:
        lengths = torch.full((batch,), frames, dtype=torch.long)
    lens = [int(x) for x in lengths.detach().cpu().reshape(-1)]
    if len(lens) != batch or any(not 0 <= x <= frames for x in lens):
        raise DataError(f"greedy_decode: lengths {lens} do not fit a batch of {batch} x {frames} frames")
    best_lp, best = log_probs.detach().float().max(dim=-1)  # (B, T) each
    best_np = best.cpu().numpy()
    prob_np = best_lp.exp().cpu().numpy().astype(np.float64)
    return [decode_best_path(best_np[b, : lens[b]], prob_np[b, : lens[b]], blank_id) for b in range(batch)]


def word_spans(token_ids: list[int] | tuple[int, ...], tokenizer) -> list[tuple[int, int]]:
    """``[(first, last_exclusive), ...]``: token index ranges of each word, from ``tokenizer.word_boundaries``."""
    return [(int(a), int(b)) for a, b in tokenizer.word_boundaries(list(token_ids))]


def word_times(hyp: CTCHypothesis, tokenizer, frame_shift_s: float) -> list[Word]:
    """Words of a hypothesis with start/end times in integer milliseconds (increasing, non-overlapping).

    Args:
        hyp: from :func:`greedy_decode`.
        tokenizer: the model's tokenizer (CharTokenizer: words between spaces; SentencePiece: '▁' starts one).
        frame_shift_s: seconds per output frame = feature stride x subsampling factor.
    """
    if frame_shift_s <= 0:
        raise DataError(
            f"word_times: frame_shift_s must be > 0, got {frame_shift_s} "
            "(feature window_stride x model.subsampling_factor)"
        )
    words = []
    for first, last in word_spans(hyp.token_ids, tokenizer):
        if last <= first:
            continue
        text = tokenizer.decode(list(hyp.token_ids[first:last])).strip()
        if not text:
            continue
        start = int(round(hyp.token_frames[first] * frame_shift_s * 1000))
        end = int(round((hyp.token_end_frames[last - 1] + 1) * frame_shift_s * 1000))
        words.append(Word(text, start, max(end, start + 1), min(hyp.token_confidences[first:last])))
    return words


def decode_texts(log_probs: torch.Tensor, lengths: torch.Tensor | None, tokenizer) -> list[str]:
    """Greedy transcripts of a batch: ``log_probs`` (B, T, V+1), ``lengths`` (B,)."""
    return [tokenizer.decode(list(h.token_ids)) for h in greedy_decode(log_probs, lengths, tokenizer.blank_id)]
