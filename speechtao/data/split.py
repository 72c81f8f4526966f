"""Deterministic held-out splits of a manifest's entries (e.g. a dev split made from train when none is given).

Usage::

    train, dev = hold_out(read_manifest("train.jsonl"), share=0.1, seed=0)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import DataError
from .manifest import ManifestEntry


def hold_out(
    entries: Sequence[ManifestEntry], share: float, seed: int = 0, min_count: int = 1
) -> tuple[list[ManifestEntry], list[ManifestEntry]]:
    """``(kept, held_out)``: ``round(share * len(entries))`` entries (at least ``min_count``) drawn by ``seed``;
    both lists keep the manifest order. The same entries, share and seed always give the same split."""
    if not 0.0 < share < 1.0:
        raise DataError(f"held-out share {share} is not in (0, 1) (e.g. 0.1 holds out a tenth)")
    n = len(entries)
    count = max(min_count, round(share * n))
    if count >= n:
        raise DataError(
            f"holding out {count} of {n} utterances leaves none to train on (give a dev manifest, or more data)"
        )
    picked = set(np.random.default_rng(seed).permutation(n)[:count].tolist())
    kept = [e for i, e in enumerate(entries) if i not in picked]
    held = [e for i, e in enumerate(entries) if i in picked]
    return kept, held


__all__ = ["hold_out"]
