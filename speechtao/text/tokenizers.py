"""Tokenizers for CTC models: NeMo's English characters and SentencePiece subwords.

Both follow NeMo's conventions, so a NeMo checkpoint's decoder rows line up with ours:

- Token ids are ``0 .. vocab_size - 1``; the CTC blank is the extra last class, ``blank_id == vocab_size``
  (the decoder has ``vocab_size + 1`` outputs).
- Characters: :data:`CHAR_VOCAB` is the 28-label list of NeMo's English QuartzNet/CitriNet char models,
  ``[" ", "a", ..., "z", "'"]``. There is no ``<unk>``; :meth:`CharTokenizer.encode` refuses characters outside
  the vocabulary (normalize first with :func:`speechtao.text.normalize.normalize_text`).
- SentencePiece: the vocabulary is the model's pieces in id order (``<unk>`` is id 0 when trained here, as with
  NeMo's ``process_asr_text_tokenizer.py``: no ``<s>``/``</s>``); unknown characters encode to ``<unk>``.
  :meth:`SentencePieceTokenizer.save` writes NeMo's tokenizer folder (``tokenizer.model``, ``tokenizer.vocab``,
  ``vocab.txt``).

``to_dict()`` gives plain data (str, list, bytes) that survives ``torch.save`` and
``torch.load(weights_only=True)``; :func:`tokenizer_from_dict` rebuilds the tokenizer from it.

Usage::

    tok = CharTokenizer()
    ids = tok.encode("hello world")          # [8, 5, 12, 12, 15, 0, 23, 15, 18, 12, 4]
    tok.decode(ids)                          # "hello world"
    tok.word_boundaries(ids)                 # [(0, 5), (6, 11)]  half-open token index spans

    sp = SentencePieceTokenizer.train(sentences, vocab_size=128)
    sp.save("tokenizer_dir")                 # NeMo layout
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from pathlib import Path

from ..errors import CheckpointError, InputError

__all__ = [
    "CHAR_VOCAB",
    "CharTokenizer",
    "SentencePieceTokenizer",
    "Tokenizer",
    "tokenizer_from_dict",
]

CHAR_VOCAB: list[str] = [" "] + [chr(c) for c in range(ord("a"), ord("z") + 1)] + ["'"]
"""NeMo's English character labels; index 28 (``len(CHAR_VOCAB)``) is the CTC blank."""

WORD_START = "\u2581"  # SentencePiece's word-start marker "▁"


def _check_ids(ids: Sequence[int], vocab_size: int, name: str) -> list[int]:
    out = [int(i) for i in ids]
    for pos, i in enumerate(out):
        if not 0 <= i < vocab_size:
            hint = (
                "it is the CTC blank; collapse repeats and drop blanks before decoding"
                if i == vocab_size
                else f"valid ids are 0..{vocab_size - 1}; was the model trained with another vocabulary?"
            )
            raise InputError(f"{name}.decode: token id {i} at position {pos} is out of range ({hint})")
    return out


class CharTokenizer:
    """One token per character of ``vocab`` (default: NeMo's 28 English labels)."""

    def __init__(self, vocab: Sequence[str] = CHAR_VOCAB):
        vocab = list(vocab)
        if not vocab:
            raise InputError("CharTokenizer: empty vocabulary (pass a list of single characters, e.g. CHAR_VOCAB)")
        for i, label in enumerate(vocab):
            if not isinstance(label, str) or len(label) != 1:
                raise InputError(f"CharTokenizer: vocabulary entry {i} is {label!r}; every label must be one character")
        if len(set(vocab)) != len(vocab):
            dupes = sorted({c for c in vocab if vocab.count(c) > 1})
            raise InputError(f"CharTokenizer: duplicate labels {dupes} in the vocabulary (labels must be unique)")
        self._vocab = vocab
        self._index = {c: i for i, c in enumerate(vocab)}
        self._space = self._index.get(" ")

    @property
    def vocab(self) -> list[str]:
        return list(self._vocab)

    @property
    def vocab_size(self) -> int:
        return len(self._vocab)

    @property
    def blank_id(self) -> int:
        return len(self._vocab)

    def encode(self, text: str) -> list[int]:
        """Text -> ids, one per character. Raises :class:`InputError` on a character outside the vocabulary."""
        try:
            return [self._index[c] for c in text]
        except KeyError:
            pos, ch = next((i, c) for i, c in enumerate(text) if c not in self._index)
            raise InputError(
                f"character {ch!r} (U+{ord(ch):04X}) at position {pos} of {text!r} is not in the "
                f"{self.vocab_size}-label vocabulary (normalize text first with "
                f"speechtao.text.normalize.normalize_text)"
            ) from None

    def decode(self, ids: Sequence[int]) -> str:
        """Ids (blank-free) -> text."""
        return "".join(self._vocab[i] for i in _check_ids(ids, self.vocab_size, "CharTokenizer"))

    def word_boundaries(self, ids: Sequence[int]) -> list[tuple[int, int]]:
        """Half-open token index spans ``(start, end)`` of the words in ``ids``; spaces separate words."""
        spans: list[tuple[int, int]] = []
        start = None
        for pos, i in enumerate(ids):
            if int(i) == self._space:
                if start is not None:
                    spans.append((start, pos))
                    start = None
            elif start is None:
                start = pos
        if start is not None:
            spans.append((start, len(ids)))
        return spans

    def to_dict(self) -> dict:
        return {"type": "char", "vocab": list(self._vocab)}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CharTokenizer) and other._vocab == self._vocab

    def __hash__(self) -> int:
        return hash(tuple(self._vocab))

    def __repr__(self) -> str:
        return f"CharTokenizer(vocab_size={self.vocab_size})"


class SentencePieceTokenizer:
    """A SentencePiece model held in memory (its serialized ``ModelProto`` bytes)."""

    def __init__(self, model_bytes: bytes, source: str = "<bytes>"):
        import sentencepiece as spm

        if not isinstance(model_bytes, (bytes, bytearray)) or not model_bytes:
            raise InputError(f"{source}: empty or non-bytes SentencePiece model (pass a tokenizer.model's bytes)")
        processor = spm.SentencePieceProcessor()
        try:
            processor.LoadFromSerializedProto(bytes(model_bytes))
        except (RuntimeError, OSError) as exc:
            raise InputError(
                f"{source}: not a SentencePiece model ({exc}); pass the tokenizer.model of a NeMo tokenizer folder"
            ) from None
        self._bytes = bytes(model_bytes)
        self._sp = processor
        self._vocab = [processor.id_to_piece(i) for i in range(processor.get_piece_size())]
        self._special = {
            i
            for i in range(len(self._vocab))
            if processor.is_unknown(i) or processor.is_control(i) or processor.is_unused(i)
        }

    # --- construction ---------------------------------------------------------------------------------------

    @classmethod
    def from_model_bytes(cls, model_bytes: bytes) -> SentencePieceTokenizer:
        return cls(model_bytes)

    @classmethod
    def from_file(cls, path: str | Path) -> SentencePieceTokenizer:
        """Load ``tokenizer.model`` (or a NeMo tokenizer folder holding one)."""
        p = Path(path)
        if p.is_dir():
            p = p / "tokenizer.model"
        if not p.is_file():
            raise InputError(f"{p}: SentencePiece model not found (pass a tokenizer.model file or its folder)")
        return cls(p.read_bytes(), source=str(p))

    @classmethod
    def train(
        cls,
        texts: Iterable[str],
        vocab_size: int,
        model_type: str = "unigram",
        character_coverage: float = 1.0,
        required_chars: str = "abcdefghijklmnopqrstuvwxyz'",
        max_piece_length: int = 16,
    ) -> SentencePieceTokenizer:
        """Train in memory on ``texts`` (normalized sentences), deterministically.

        Options follow NeMo's ``process_asr_text_tokenizer.py``: ``<unk>`` is id 0, no ``<s>``/``</s>``/``<pad>``,
        ``hard_vocab_limit=false`` (a small corpus may give fewer pieces than ``vocab_size``). Every character of
        ``required_chars`` gets a piece even when the corpus lacks it, so no English letter maps to ``<unk>``.
        """
        import sentencepiece as spm

        if model_type not in ("unigram", "bpe"):
            raise InputError(f"SentencePiece model_type {model_type!r}: expected 'unigram' or 'bpe'")
        texts = [t for t in texts if t.strip()]
        if not texts:
            raise InputError("SentencePiece training: no non-empty sentences given (pass the training transcripts)")
        min_size = len(set(required_chars) | {WORD_START}) + 1
        if vocab_size < min_size:
            raise InputError(
                f"SentencePiece vocab_size {vocab_size} is too small: <unk>, '▁' and the {len(set(required_chars))} "
                f"required characters need at least {min_size}"
            )
        model = io.BytesIO()
        try:
            spm.SentencePieceTrainer.train(
                sentence_iterator=iter(texts),
                model_writer=model,
                vocab_size=vocab_size,
                model_type=model_type,
                character_coverage=character_coverage,
                required_chars=required_chars,
                max_sentencepiece_length=max_piece_length,
                unk_id=0,
                bos_id=-1,
                eos_id=-1,
                pad_id=-1,
                hard_vocab_limit=False,
                shuffle_input_sentence=False,
                input_sentence_size=0,
                num_threads=1,
                minloglevel=2,
            )
        except RuntimeError as exc:
            raise InputError(f"SentencePiece training failed: {exc}") from None
        return cls(model.getvalue(), source="<trained>")

    # --- the tokenizer interface ----------------------------------------------------------------------------

    @property
    def vocab(self) -> list[str]:
        return list(self._vocab)

    @property
    def vocab_size(self) -> int:
        return len(self._vocab)

    @property
    def blank_id(self) -> int:
        return len(self._vocab)

    @property
    def unk_id(self) -> int:
        return self._sp.unk_id()

    @property
    def model_bytes(self) -> bytes:
        return self._bytes

    def encode(self, text: str) -> list[int]:
        """Text -> piece ids. Characters the model does not know become ``<unk>`` (as in NeMo)."""
        return list(self._sp.encode(text, out_type=int))

    def decode(self, ids: Sequence[int]) -> str:
        """Ids (blank-free) -> text."""
        return self._sp.decode(_check_ids(ids, self.vocab_size, "SentencePieceTokenizer"))

    def word_boundaries(self, ids: Sequence[int]) -> list[tuple[int, int]]:
        """Half-open token index spans of words: a piece starting with '▁' begins a word.

        A lone '▁' piece begins the word its following pieces spell; a span holding only '▁' (a trailing
        marker) is not a word.
        """
        spans: list[tuple[int, int]] = []
        start = None
        for pos, i in enumerate(ids):
            piece = self._vocab[int(i)]
            if start is None or piece.startswith(WORD_START):
                if start is not None:
                    spans.append((start, pos))
                start = pos
        if start is not None:
            spans.append((start, len(ids)))
        return [(s, e) for s, e in spans if not (e - s == 1 and self._vocab[int(ids[s])] == WORD_START)]

    def to_dict(self) -> dict:
        return {"type": "sentencepiece", "model": self._bytes}

    def save(self, directory: str | Path) -> Path:
        """Write NeMo's tokenizer folder: ``tokenizer.model``, ``tokenizer.vocab`` (piece<TAB>score) and
        ``vocab.txt`` (special pieces left out; word-start pieces without '▁', the others prefixed ``##``)."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        (d / "tokenizer.model").write_bytes(self._bytes)
        with open(d / "tokenizer.vocab", "w", encoding="utf-8") as f:
            for i, piece in enumerate(self._vocab):
                f.write(f"{piece}\t{self._sp.get_score(i):g}\n")
        with open(d / "vocab.txt", "w", encoding="utf-8") as f:
            for i, piece in enumerate(self._vocab):
                if i in self._special:
                    continue
                token = piece[1:] if piece.startswith(WORD_START) else f"##{piece}"
                f.write(f"{token or piece}\n")
        return d

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SentencePieceTokenizer) and other._bytes == self._bytes

    def __hash__(self) -> int:
        return hash(self._bytes)

    def __repr__(self) -> str:
        return f"SentencePieceTokenizer(vocab_size={self.vocab_size})"


Tokenizer = CharTokenizer | SentencePieceTokenizer


def tokenizer_from_dict(d: dict) -> Tokenizer:
    """Inverse of ``to_dict()``. A malformed entry raises :class:`CheckpointError`."""
    if not isinstance(d, dict) or "type" not in d:
        raise CheckpointError(
            f"tokenizer entry {d!r:.80}: expected a mapping with a 'type' key (was the checkpoint written by "
            "speechtao? re-save it with speechtao)"
        )
    kind = d["type"]
    if kind == "char":
        if not isinstance(d.get("vocab"), (list, tuple)):
            raise CheckpointError("tokenizer entry of type 'char' has no 'vocab' list (the checkpoint is damaged)")
        return CharTokenizer(d["vocab"])
    if kind == "sentencepiece":
        model = d.get("model")
        if not isinstance(model, (bytes, bytearray)):
            raise CheckpointError(
                "tokenizer entry of type 'sentencepiece' has no 'model' bytes (the checkpoint is damaged)"
            )
        try:
            return SentencePieceTokenizer(bytes(model), source="checkpoint tokenizer")
        except InputError as exc:
            raise CheckpointError(str(exc)) from None
    raise CheckpointError(
        f"tokenizer type {kind!r} is unknown (expected 'char' or 'sentencepiece'; upgrade speechtao to read it)"
    )
