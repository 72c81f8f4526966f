"""Word and character error rates with their alignments (substitutions, deletions, insertions).

Both sides are normalized by :func:`speechtao.text.normalize.normalize_text` (the same normalizer that
prepares training labels), so ``"Hello, World!"`` scores as ``"hello world"``. Pass ``normalize=False`` to
score the strings as given.

Rates: an utterance's rate is ``errors / reference length``; a corpus rate sums errors and reference lengths
over utterances (it is not a mean of utterance rates). Empty references: with no reference tokens the
denominator is taken as 1, so an empty reference with an empty hypothesis scores 0.0 and one with ``n``
hypothesis words scores ``n`` (each word an insertion), as jiwer 4 does. A corpus whose other utterances have
words is unaffected beyond the inserted words it adds to the numerator.

Usage::

    >>> wer(["the cat sat"], ["the cat sat down"])
    0.3333333333333333
    >>> utterance_report("the cat", "a cat")["ops"]
    [{'op': 'sub', 'ref': 'the', 'hyp': 'a'}, {'op': 'ok', 'ref': 'cat', 'hyp': 'cat'}]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import DataError
from ..text.normalize import normalize_text

OK, SUB, DEL, INS = "ok", "sub", "del", "ins"


@dataclass(frozen=True)
class EditOp:
    op: str  # "ok" (match), "sub", "del" (reference token missing), "ins" (extra hypothesis token)
    ref: str | None  # the reference token (None for an insertion)
    hyp: str | None  # the hypothesis token (None for a deletion)

    def to_dict(self) -> dict:
        return {"op": self.op, "ref": self.ref, "hyp": self.hyp}


@dataclass(frozen=True)
class EditOps:
    """A minimum-cost alignment of a reference with a hypothesis and its counts."""

    ops: tuple[EditOp, ...]  # in reference/hypothesis order
    ref_len: int  # tokens in the reference
    hyp_len: int  # tokens in the hypothesis
    hits: int
    substitutions: int
    deletions: int
    insertions: int

    @property
    def errors(self) -> int:
        """The edit distance: substitutions + deletions + insertions."""
        return self.substitutions + self.deletions + self.insertions

    @property
    def rate(self) -> float:
        """``errors / ref_len`` (``ref_len`` taken as 1 for an empty reference)."""
        return self.errors / max(self.ref_len, 1)

    def counts(self) -> dict:
        return {
            "ref_len": self.ref_len,
            "hits": self.hits,
            "substitutions": self.substitutions,
            "deletions": self.deletions,
            "insertions": self.insertions,
            "errors": self.errors,
        }


def edit_ops(ref: Sequence[str], hyp: Sequence[str]) -> EditOps:
    """Levenshtein alignment of two token sequences (unit costs).

    Ties between alignments of equal cost prefer a match or substitution, then a deletion, then an
    insertion; the total ``errors`` is the same for every minimum-cost alignment.
    """
    n, m = len(ref), len(hyp)
    ids: dict[str, int] = {}
    r = np.array([ids.setdefault(t, len(ids)) for t in ref], dtype=np.int64)
    h = np.array([ids.setdefault(t, len(ids)) for t in hyp], dtype=np.int64)
    # dist[i, j]: edit distance between ref[:i] and hyp[:j]. Rows are filled with numpy: the diagonal and
    # vertical moves are elementwise; the horizontal (insertion) chain is a running minimum of d[k] - k.
    dist = np.empty((n + 1, m + 1), dtype=np.int64)
    cols = np.arange(m + 1, dtype=np.int64)
    dist[0] = cols
    for i in range(1, n + 1):
        prev = dist[i - 1]
        row = np.empty(m + 1, dtype=np.int64)
        row[0] = i
        row[1:] = np.minimum(prev[1:] + 1, prev[:-1] + (h != r[i - 1]))
        dist[i] = np.minimum.accumulate(row - cols) + cols
    ops: list[EditOp] = []
    i, j = n, m
    while i > 0 or j > 0:
        if i > 0 and j > 0 and dist[i, j] == dist[i - 1, j - 1] + (ref[i - 1] != hyp[j - 1]):
            ops.append(EditOp(OK if ref[i - 1] == hyp[j - 1] else SUB, ref[i - 1], hyp[j - 1]))
            i, j = i - 1, j - 1
        elif i > 0 and dist[i, j] == dist[i - 1, j] + 1:
            ops.append(EditOp(DEL, ref[i - 1], None))
            i -= 1
        else:
            ops.append(EditOp(INS, None, hyp[j - 1]))
            j -= 1
    ops.reverse()
    count = {k: 0 for k in (OK, SUB, DEL, INS)}
    for op in ops:
        count[op.op] += 1
    return EditOps(tuple(ops), n, m, count[OK], count[SUB], count[DEL], count[INS])


def _words(text: str, normalize: bool) -> list[str]:
    return (normalize_text(text) if normalize else text).split()


def _chars(text: str, normalize: bool) -> list[str]:
    # Characters of the words joined by single spaces: spaces count, runs of whitespace do not.
    return list(" ".join(_words(text, normalize)))


def align_words(ref: str, hyp: str, normalize: bool = True) -> EditOps:
    """Word alignment of one reference/hypothesis pair."""
    return edit_ops(_words(ref, normalize), _words(hyp, normalize))


def align_chars(ref: str, hyp: str, normalize: bool = True) -> EditOps:
    """Character alignment (spaces between words included) of one pair."""
    return edit_ops(_chars(ref, normalize), _chars(hyp, normalize))


def _pairs(refs: Sequence[str] | str, hyps: Sequence[str] | str) -> list[tuple[str, str]]:
    if isinstance(refs, str):
        refs = [refs]
    if isinstance(hyps, str):
        hyps = [hyps]
    if len(refs) != len(hyps):
        raise DataError(
            f"wer/cer: {len(refs)} references but {len(hyps)} hypotheses "
            "(pass one hypothesis per reference, in the same order)"
        )
    return list(zip(refs, hyps))


def _corpus_rate(alignments: list[EditOps]) -> float:
    return sum(a.errors for a in alignments) / max(sum(a.ref_len for a in alignments), 1)


def wer(refs: Sequence[str] | str, hyps: Sequence[str] | str, normalize: bool = True) -> float:
    """Corpus word error rate: total word errors / total reference words (a fraction, not percent)."""
    return _corpus_rate([align_words(r, h, normalize) for r, h in _pairs(refs, hyps)])


def cer(refs: Sequence[str] | str, hyps: Sequence[str] | str, normalize: bool = True) -> float:
    """Corpus character error rate (spaces between words count as characters)."""
    return _corpus_rate([align_chars(r, h, normalize) for r, h in _pairs(refs, hyps)])


def utterance_report(ref: str, hyp: str, normalize: bool = True) -> dict:
    """One utterance scored: ``{"ref", "hyp", "wer", "cer", "errors", "ref_words", "counts", "ops",
    "char_errors", "ref_chars"}``; ``ref``/``hyp`` are the normalized texts that were aligned, ``ops`` the
    word alignment as dicts ``{"op", "ref", "hyp"}``."""
    ref_n = normalize_text(ref) if normalize else ref
    hyp_n = normalize_text(hyp) if normalize else hyp
    words = align_words(ref_n, hyp_n, normalize=False)
    chars = align_chars(ref_n, hyp_n, normalize=False)
    return {
        "ref": " ".join(ref_n.split()),
        "hyp": " ".join(hyp_n.split()),
        "wer": words.rate,
        "cer": chars.rate,
        "errors": words.errors,
        "ref_words": words.ref_len,
        "counts": words.counts(),
        "char_errors": chars.errors,
        "ref_chars": chars.ref_len,
        "ops": [op.to_dict() for op in words.ops],
    }
