"""Task nets over a pretrained encoder and the inputs they take.

Every task net is ``forward(input_ids (B, T), attention_mask (B, T), token_type_ids (B, T)) -> tuple of
logits`` with ``net.encoder`` (the Hugging Face encoder), ``net.output_names`` and ``net.config()`` (a plain
dict that :func:`build_net` turns back into the same module):

* :class:`TokenTaggingNet`: one classifier per named head over every token state, ``(B, T, C_head)`` each
  (punctuation + capitalization, NER, extractive QA with a 2-class ``start/end`` head);
* :class:`SequenceClassifierNet`: mean- or CLS-pooled states -> ``(B, C)`` (text classification).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Sequence

import torch
from torch import nn

from ..errors import CheckpointError

INPUT_IDS = "input_ids"

ATTENTION_MASK = "attention_mask"

TOKEN_TYPE_IDS = "token_type_ids"

INPUT_NAMES = (INPUT_IDS, ATTENTION_MASK, TOKEN_TYPE_IDS)


class ClassifierHead(nn.Module):
    """``dropout -> [Linear(h, h) -> GELU -> dropout] * (layers - 1) -> Linear(h, classes)`` over the last axis."""

    def __init__(self, hidden: int, classes: int, layers: int = 2, dropout: float = 0.1):
        super().__init__()
        mods: list[nn.Module] = [nn.Dropout(dropout)]
        for _ in range(layers - 1):
            mods += [nn.Linear(hidden, hidden), nn.GELU(), nn.Dropout(dropout)]
        mods.append(nn.Linear(hidden, classes))
        self.net = nn.Sequential(*mods)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (..., hidden) -> (..., classes)."""
        return self.net(x)


@functools.cache
def _takes_token_types(encoder_class: type) -> bool:
    return "token_type_ids" in inspect.signature(encoder_class.forward).parameters


def encode(
    encoder: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor
) -> torch.Tensor:
    """The encoder's last hidden states (B, T, H); ``token_type_ids`` go only to encoders that take them (BERT,
    not MPNet; an exported MPNet net then has no token_type_ids input)."""
    if _takes_token_types(type(encoder)):
        return encoder(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
        ).last_hidden_state
    return encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state


class TokenTaggingNet(nn.Module):
    """Encoder + one :class:`ClassifierHead` per name in ``heads`` ({name: classes}) over every token.

    ``forward(input_ids (B, T), attention_mask (B, T), token_type_ids (B, T)) -> tuple of (B, T, classes)``
    in the order of ``heads``; output names ``<name>_logits``.
    """

    kind = "token"

    def __init__(self, encoder: nn.Module, heads: dict[str, int], head_layers: int = 2, dropout: float = 0.1):
        super().__init__()
        self.encoder = encoder
        self.head_sizes = dict(heads)
        self.head_layers, self.dropout = head_layers, dropout
        hidden = encoder.config.hidden_size
        self.heads = nn.ModuleDict({k: ClassifierHead(hidden, n, head_layers, dropout) for k, n in heads.items()})
        self.output_names = tuple(f"{k}_logits" for k in heads)

    def config(self) -> dict:
        return {
            "kind": self.kind,
            "heads": dict(self.head_sizes),
            "head_layers": self.head_layers,
            "dropout": self.dropout,
        }

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor
    ) -> tuple[torch.Tensor, ...]:
        states = encode(self.encoder, input_ids, attention_mask, token_type_ids)  # (B, T, H)
        return tuple(head(states) for head in self.heads.values())


class SequenceClassifierNet(nn.Module):
    """Encoder + pooling (``mean`` over valid tokens, or the ``cls`` token) + :class:`ClassifierHead`.

    ``forward(input_ids (B, T), attention_mask (B, T), token_type_ids (B, T)) -> ((B, classes),)``.
    """

    kind = "sequence"

    def __init__(
        self, encoder: nn.Module, classes: int, pooling: str = "mean", head_layers: int = 2, dropout: float = 0.1
    ):
        super().__init__()
        if pooling not in ("mean", "cls"):
            raise ValueError(f"pooling must be 'mean' or 'cls', got {pooling!r}")
        self.encoder = encoder
        self.classes, self.pooling = classes, pooling
        self.head_layers, self.dropout = head_layers, dropout
        self.head = ClassifierHead(encoder.config.hidden_size, classes, head_layers, dropout)
        self.output_names = ("logits",)

    def config(self) -> dict:
        return {
            "kind": self.kind,
            "classes": self.classes,
            "pooling": self.pooling,
            "head_layers": self.head_layers,
            "dropout": self.dropout,
        }

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor
    ) -> tuple[torch.Tensor]:
        states = encode(self.encoder, input_ids, attention_mask, token_type_ids)  # (B, T, H)
        if self.pooling == "cls":
            pooled = states[:, 0]
        else:
            m = attention_mask.unsqueeze(-1).to(states.dtype)  # (B, T, 1)
            pooled = (states * m).sum(1) / m.sum(1).clamp(min=1.0)  # (B, H)
        return (self.head(pooled),)


def build_net(encoder: nn.Module, config: dict) -> nn.Module:
    """The net described by ``config`` (a ``net.config()`` dict) over ``encoder``."""
    kind = config.get("kind")
    if kind == "token":
        return TokenTaggingNet(encoder, config["heads"], config["head_layers"], config["dropout"])
    if kind == "sequence":
        return SequenceClassifierNet(
            encoder, config["classes"], config["pooling"], config["head_layers"], config["dropout"]
        )
    raise CheckpointError(
        f"net kind {kind!r} is unknown (expected 'token' or 'sequence'; written by a newer speechtao?)"
    )


def pad_batch(seqs: Sequence[Sequence[int]], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded ``input_ids``, ``attention_mask``, ``token_type_ids`` (all ``(B, T)`` int64)."""
    t = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), t), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), t), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.tensor(s, dtype=torch.long)
        mask[i, : len(s)] = 1
    return {INPUT_IDS: ids, ATTENTION_MASK: mask, TOKEN_TYPE_IDS: torch.zeros_like(ids)}


def net_inputs(batch: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return batch[INPUT_IDS], batch[ATTENTION_MASK], batch[TOKEN_TYPE_IDS]
