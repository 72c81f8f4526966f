"""A pure-Python n-gram language model writer: interpolated modified Kneser-Ney, written as ARPA.

This is the fallback of ``speechtao lm build`` when KenLM's ``lmplz`` is not installed (``make lm-tools``), so
that tests and CI need no native build. It follows the same estimate as ``lmplz``:

- Sentences are padded ``<s> w1 .. wn </s>``; the highest order counts n-grams as seen, every lower order
  counts *continuations* (how many distinct words precede the n-gram), except n-grams that start with
  ``<s>``, which keep their raw counts (nothing can precede the sentence start).
- Three discounts per order, from the counts of counts ``t1..t4`` of that order:
  ``Y = t1 / (t1 + 2 t2)``, ``D1 = 1 - 2Y t2/t1``, ``D2 = 2 - 3Y t3/t2``, ``D3+ = 3 - 4Y t4/t3``.
- ``p(w | h) = (a(hw) - D(a(hw))) / a(h.) + gamma(h) p(w | h')`` with ``gamma(h) = (D1 N1(h.) + D2 N2(h.) +
  D3+ N3+(h.)) / a(h.)``; unigrams interpolate with the uniform distribution over the vocabulary plus
  ``<unk>``, which gets only that uniform share. ``gamma(h)`` is the ARPA back-off weight of ``h``.

Memory grows with the number of distinct n-grams (a few hundred bytes each): fine for domain text and a few
hundred thousand sentences, not for web-scale corpora (use ``lmplz`` there).

Usage::

    counts = write_arpa(["turn on the light", "turn off the light"], "lm.arpa", order=3)
    # {1: 7, 2: 8, 3: 7}  (n-grams per order, <s> </s> <unk> included)
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable
from pathlib import Path

from ..errors import InputError

BOS, EOS, UNK = "<s>", "</s>", "<unk>"
_NEG_INF_LOG10 = -99.0  # what ARPA files give the unreachable <s> unigram


def _discounts(counts: Counter, order: int) -> tuple[float, float, float]:
    """Modified Kneser-Ney discounts ``(D1, D2, D3+)`` from the counts of counts of one order."""
    t = Counter(min(c, 4) for c in counts.values())
    t1, t2, t3, t4 = (t.get(k, 0) for k in (1, 2, 3, 4))
    if min(t1, t2, t3, t4) == 0:
        # Too little text for the estimate (lmplz refuses such text); fall back to the usual mid values.
        return 0.5, 1.0, 1.5
    y = t1 / (t1 + 2 * t2)
    d = (1 - 2 * y * t2 / t1, 2 - 3 * y * t3 / t2, 3 - 4 * y * t4 / t3)
    # Keep each discount inside (0, its count]: a discount outside makes a probability negative.
    return tuple(min(max(x, 1e-3), k) for x, k in zip(d, (1.0, 2.0, 3.0)))  # type: ignore[return-value]


def count_ngrams(sentences: Iterable[str], order: int) -> list[Counter]:
    """Adjusted counts per order (index 0 = unigrams): raw at the top order and for ``<s>`` n-grams,
    continuation counts below."""
    if order < 1:
        raise InputError(f"n-gram order {order}: must be at least 1 (3 to 5 suits most text)")
    top: Counter = Counter()
    for sentence in sentences:
        words = sentence.split()
        if not words:
            continue
        tokens = [BOS, *words, EOS]
        for i in range(1, len(tokens)):
            top[tuple(tokens[max(0, i - order + 1) : i + 1])] += 1
    adjusted = [Counter() for _ in range(order)]
    for gram, c in top.items():
        adjusted[len(gram) - 1][gram] += c  # full-order n-grams, and sentence-start ones cut short
    for n in range(order - 1, 0, -1):  # continuation counts of order n from the n-grams of order n + 1
        lower = adjusted[n - 1]
        for gram in adjusted[n]:
            suffix = gram[1:]
            if suffix[0] != BOS:
                lower[suffix] += 1
    return adjusted


def _probabilities(adjusted: list[Counter]) -> tuple[list[dict], list[dict]]:
    """log10 interpolated probabilities and back-off weights of every n-gram, per order."""
    order = len(adjusted)
    vocab = {g[0] for g in adjusted[0]} | {UNK}
    vocab.discard(BOS)
    probs: list[dict] = []
    gammas: list[dict] = []  # per order n: context (n-1 words) -> gamma
    for n in range(1, order + 1):
        counts = adjusted[n - 1]
        d1, d2, d3 = _discounts(counts, n)
        total: dict = defaultdict(int)
        nk: dict = defaultdict(lambda: [0, 0, 0])
        for gram, c in counts.items():
            ctx = gram[:-1]
            total[ctx] += c
            nk[ctx][min(c, 3) - 1] += 1
        gamma = {ctx: (d1 * k[0] + d2 * k[1] + d3 * k[2]) / total[ctx] for ctx, k in nk.items()}
        gammas.append(gamma)
        p: dict = {}
        for gram, c in counts.items():
            ctx = gram[:-1]
            disc = (d1, d2, d3)[min(c, 3) - 1]
            own = (c - disc) / total[ctx]
            if n == 1:
                lower = 1.0 / len(vocab)
            else:
                lower = _lookup(probs, gammas, gram[1:])
            p[gram] = own + gamma[ctx] * lower
        if n == 1:
            p[(UNK,)] = gamma[()] / len(vocab)
        probs.append(p)
    return probs, gammas


def _lookup(probs: list[dict], gammas: list[dict], gram: tuple) -> float:
    """p(gram[-1] | gram[:-1]) by backing off through the shorter histories already estimated."""
    weight = 1.0
    while True:
        p = probs[len(gram) - 1].get(gram)
        if p is not None:
            return weight * p
        if len(gram) == 1:
            return weight * probs[0][(UNK,)]
        weight *= gammas[len(gram) - 1].get(gram[:-1], 1.0)
        gram = gram[1:]


def write_arpa(sentences: Iterable[str], path: str | Path, order: int) -> dict[int, int]:
    """Estimate an ``order``-gram model from whitespace-tokenized ``sentences`` and write it as ARPA.

    Returns the number of n-grams per order. Raises :class:`InputError` when there are no words.
    """
    adjusted = count_ngrams(sentences, order)
    if not adjusted[0]:
        raise InputError("language model text: no words after normalization (pass text files with sentences)")
    probs, gammas = _probabilities(adjusted)
    probs[0][(BOS,)] = 0.0  # placeholder: <s> is never predicted
    counts = {n + 1: len(p) for n, p in enumerate(probs)}
    dest = Path(path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with open(dest, "w", encoding="utf-8") as f:
        f.write("\\data\\\n")
        for n in range(1, order + 1):
            f.write(f"ngram {n}={counts[n]}\n")
        for n in range(1, order + 1):
            f.write(f"\n\\{n}-grams:\n")
            context_gamma = gammas[n] if n < order else {}
            for gram in sorted(probs[n - 1]):
                lp = _NEG_INF_LOG10 if gram == (BOS,) else math.log10(probs[n - 1][gram])
                line = f"{lp:.6f}\t{' '.join(gram)}"
                if gram in context_gamma:
                    line += f"\t{math.log10(context_gamma[gram]):.6f}"
                elif n < order:
                    line += "\t0"
                f.write(line + "\n")
        f.write("\n\\end\\\n")
    return counts
