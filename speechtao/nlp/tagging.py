"""Word-level tagging (punctuation, capitalization, NER): word pieces aligned with words, long lines cut at
word boundaries, the per-head loss at each word's first piece, and per-word predictions."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import DataError
from .heads import INPUT_IDS, net_inputs, pad_batch
from .model_io import NLPModel

IGNORE_INDEX = -100  # label of positions the loss skips (special tokens, non-first word pieces, padding)


def word_pieces(tokenizer: Any, lines: Sequence[Sequence[str]]) -> list[list[list[int]]]:
    """Word-piece ids of every word of every line: ``out[line][word] -> [ids]`` (never empty: ``[UNK]``)."""
    if not lines:
        return []
    enc = tokenizer([list(w) for w in lines], is_split_into_words=True, add_special_tokens=False, truncation=False)
    unk = tokenizer.unk_token_id
    out = []
    for i, words in enumerate(lines):
        pieces: list[list[int]] = [[] for _ in words]
        for tok, w in zip(enc["input_ids"][i], enc.word_ids(i)):
            if w is not None:
                pieces[w].append(tok)
        out.append([p if p else [unk] for p in pieces])
    return out


def chunk_words(pieces: Sequence[Sequence[int]], max_pieces: int) -> list[tuple[int, int]]:
    """Split a line into ``[(start_word, end_word), ...]`` spans of at most ``max_pieces`` word pieces.

    A single word longer than ``max_pieces`` gets its own span (its pieces are cut when encoded).
    """
    spans, start, used = [], 0, 0
    for i, p in enumerate(pieces):
        n = len(p)
        if used and used + n > max_pieces:
            spans.append((start, i))
            start, used = i, 0
        used += n
    if start < len(pieces) or not pieces:
        spans.append((start, len(pieces)))
    return spans


@dataclass
class WordEncoding:
    """One encoded sequence: ``[CLS] pieces... [SEP]`` and where each word starts."""

    ids: list[int]
    starts: list[int]  # token position of the first piece of each word


def encode_pieces(tokenizer: Any, pieces: Sequence[Sequence[int]], max_length: int) -> WordEncoding:
    """``[CLS] + pieces + [SEP]``, cut to ``max_length`` tokens (words that do not fit are dropped)."""
    ids = [tokenizer.cls_token_id]
    starts = []
    for p in pieces:
        if len(ids) + 1 >= max_length:
            break
        starts.append(len(ids))
        ids.extend(list(p)[: max_length - 1 - len(ids)])
    ids.append(tokenizer.sep_token_id)
    return WordEncoding(ids, starts)


@dataclass
class TaggedItem:
    """One encoded training sequence of a word-tagging task."""

    ids: list[int]
    starts: list[int]  # token position of each word's first piece
    labels: dict[str, list[int]]  # per head: a label index per word

    def __len__(self) -> int:
        return len(self.ids)


def encode_tagged(
    tokenizer: Any, lines: Sequence[Sequence[str]], labels: Sequence[dict[str, Sequence[int]]], max_length: int
) -> list[TaggedItem]:
    """Tokenize word lines with their per-head word labels; lines longer than ``max_length`` pieces are cut
    into several sequences at word boundaries."""
    items = []
    for words_pieces, lab in zip(word_pieces(tokenizer, lines), labels):
        for a, b in chunk_words(words_pieces, max_length - 2):
            enc = encode_pieces(tokenizer, words_pieces[a:b], max_length)
            n = len(enc.starts)
            items.append(TaggedItem(enc.ids, enc.starts, {k: list(v[a : a + n]) for k, v in lab.items()}))
    return items


def collate_tagged(items: Sequence[TaggedItem], pad_id: int) -> dict[str, torch.Tensor]:
    """Padded inputs plus one ``(B, T)`` label tensor per head (``IGNORE_INDEX`` off word starts)."""
    batch = pad_batch([it.ids for it in items], pad_id)
    t = batch[INPUT_IDS].shape[1]
    for head in items[0].labels:
        lab = torch.full((len(items), t), IGNORE_INDEX, dtype=torch.long)
        for i, it in enumerate(items):
            lab[i, torch.tensor(it.starts, dtype=torch.long)] = torch.tensor(it.labels[head], dtype=torch.long)
        batch[head] = lab
    return batch


def tagging_loss(
    net: nn.Module,
    batch: dict,
    weights: dict[str, float] | None = None,
    class_weights: dict[str, torch.Tensor] | None = None,
) -> torch.Tensor:
    """Sum over heads of ``weight * cross-entropy`` at word starts (heads in ``net.head_sizes`` order).

    ``class_weights[head]`` (a ``(C,)`` tensor) weights that head's classes; the head's loss is then the
    weighted mean (divided by the summed weights of its labelled words, as ``cross_entropy`` does)."""
    outs = net(*net_inputs(batch))  # each (B, T, C)
    total = torch.zeros(())
    for name, logits in zip(net.head_sizes, outs):
        w = 1.0 if weights is None else weights.get(name, 1.0)
        cw = None if class_weights is None else class_weights.get(name)
        total = total + w * nn.functional.cross_entropy(
            logits.flatten(0, 1), batch[name].flatten(), weight=cw, ignore_index=IGNORE_INDEX
        )
    return total


def inverse_sqrt_weights(labels: Iterable[int], classes: int) -> torch.Tensor:
    """Class weights ``1 / sqrt(frequency)``, scaled so that their frequency-weighted mean is 1 (a class
    that never occurs gets the largest weight of the others)."""
    counts = np.bincount(np.fromiter(labels, dtype=np.int64), minlength=classes)[:classes].astype(np.float64)
    if counts.sum() == 0:
        raise DataError("no labelled words to compute class weights from (is the training set empty?)")
    freq = counts / counts.sum()
    w = np.zeros(classes)
    seen = freq > 0
    w[seen] = 1.0 / np.sqrt(freq[seen])
    w[~seen] = w[seen].max()
    w /= float((freq * w).sum())
    return torch.tensor(w, dtype=torch.float32)


def head_probabilities(
    model: NLPModel, lines: Sequence[Sequence[str]], batch_size: int = 32
) -> list[list[torch.Tensor]]:
    """``out[line][head]``: a ``(words, labels)`` tensor, the softmax of each head at each word's first piece
    (lines longer than the model's ``max_length`` are cut into windows at word boundaries)."""
    tok = model.tokenizer
    sizes = list(model.net_config["heads"].values())
    seqs = []  # (line, first word, encoding)
    for li, pieces in enumerate(word_pieces(tok, lines)):
        for a, b in chunk_words(pieces, model.max_length - 2):
            seqs.append((li, a, encode_pieces(tok, pieces[a:b], model.max_length)))
    out = [[torch.zeros(len(w), n) for n in sizes] for w in lines]
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i][2].ids))
    with torch.no_grad():
        for s in range(0, len(order), batch_size):
            chunk = [seqs[i] for i in order[s : s + batch_size]]
            batch = pad_batch([c[2].ids for c in chunk], tok.pad_token_id)
            probs = [torch.softmax(o.float(), -1) for o in model.net(*net_inputs(batch))]  # each (B, T, C)
            for row, (li, a, enc) in enumerate(chunk):
                pos = torch.tensor(enc.starts, dtype=torch.long)
                for h, p in enumerate(probs):
                    out[li][h][a : a + len(enc.starts)] = p[row, pos]
    return out


def predict_tags(model: NLPModel, lines: Sequence[Sequence[str]], batch_size: int = 32) -> list[list[list[int]]]:
    """Label indices ``out[line][head][word]``: the most probable label of each head at each word (see
    :func:`head_probabilities`)."""
    return [[p.argmax(-1).tolist() for p in heads] for heads in head_probabilities(model, lines, batch_size)]
