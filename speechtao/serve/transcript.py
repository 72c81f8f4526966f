"""What a final transcript goes through before it is sent: inverse text normalization, profanity masking,
punctuation. Riva's RecognitionConfig fields choose them:

- ``verbatim_transcripts=false`` (Riva's default, and protobuf's): spoken numbers, ordinals, times, dates,
  money and measures are written as a reader expects ("twenty five dollars" -> "$25", "the twenty first of
  may" -> "the 21st of may"). The grammars are NeMo's (``nemo_text_processing``, Apache-2.0, built on pynini;
  ``pip install speechtao[itn]``), compiled once into a cache folder (about 35 s on a 2-core CPU) and loaded from
  it afterwards. ``true`` leaves the model's words.
- ``profanity_filter=true``: words of a word list are masked as Riva masks them, first letter kept
  ("f***"). The list is ``profanity.txt`` in the model repository (one word a line, ``#`` comments), else the
  default shipped beside this module.
- ``enable_automatic_punctuation=true``: the repository's punctuation model, last (on the written form).

Word times stay on the spoken words: a written token made of several spoken words ("$25" of "twenty five
dollars") spans from the first one's start to the last one's end; :func:`align_words` does the bookkeeping.

Usage::

    post = TranscriptPipeline(itn=InverseNormalizer.load(), profanity=load_profanity(None))
    text, words = post.final(words, verbatim=False, profanity_filter=True, punctuate=None)
"""

from __future__ import annotations

import difflib
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..asr.ctc import Word
from ..cache import cache_root
from ..errors import InputError, MissingDependencyError

log = logging.getLogger("speechtao.serve")

DEFAULT_PROFANITY = Path(__file__).with_name("profanity_en.txt")
_EDGE = ",.;:!?\"'()"


def default_cache_dir() -> Path:
    """``$SPEECHTAO_CACHE/itn`` or ``~/.cache/speechtao/itn``: where the compiled ITN grammars are kept."""
    return cache_root() / "itn"


class InverseNormalizer:
    """NeMo's English inverse text normalization (spoken -> written form), compiled once and cached.

    One call at a time (the grammars are shared); a call takes ~30-600 ms on a 2-core CPU, so the server
    applies it to final transcripts only."""

    _instances: dict[str, InverseNormalizer] = {}
    _load_lock = threading.Lock()

    def __init__(self, impl):
        self._impl = impl
        self._lock = threading.Lock()

    @classmethod
    def load(cls, cache_dir: str | Path | None = None) -> InverseNormalizer:
        """The normalizer of ``cache_dir`` (loaded once per process). Raises :class:`MissingDependencyError`
        without ``nemo_text_processing``."""
        cache = Path(cache_dir) if cache_dir else default_cache_dir()
        with cls._load_lock:
            if str(cache) not in cls._instances:
                try:
                    from nemo_text_processing.inverse_text_normalization.inverse_normalize import (
                        InverseNormalizer as NemoITN,
                    )
                except ImportError as exc:
                    raise MissingDependencyError(
                        f"inverse text normalization needs nemo_text_processing ({exc}); pip install "
                        "'speechtao[itn]' (or send verbatim_transcripts=true)"
                    ) from None
                try:
                    cache.mkdir(parents=True, exist_ok=True)
                    cache_dir = str(cache)
                except OSError as exc:  # a read-only home: compile at every start instead (~35 s)
                    log.warning("ITN cache %s cannot be created (%s): grammars compiled without a cache", cache, exc)
                    cache_dir = None
                logging.getLogger("NeMo-text-processing").setLevel(logging.WARNING)
                log.info("inverse text normalization: loading the grammars (cache %s)", cache_dir)
                cls._instances[str(cache)] = cls(NemoITN(lang="en", cache_dir=cache_dir))
            return cls._instances[str(cache)]

    @classmethod
    def maybe_load(cls, cache_dir: str | Path | None = None) -> InverseNormalizer | None:
        """:meth:`load`, or None (logged) when nemo_text_processing is not installed."""
        try:
            return cls.load(cache_dir)
        except MissingDependencyError as exc:
            log.warning("%s: verbatim_transcripts=false serves the model's words", exc)
            return None

    def __call__(self, text: str) -> str:
        """Spoken-form text (lower case words) -> written form; "" stays ""."""
        if not text.strip():
            return text
        with self._lock:
            return " ".join(self._impl.inverse_normalize(text, verbose=False).split())


def align_words(spoken: Sequence[Word], written: str) -> tuple[Word, ...]:
    """Written tokens with the times of the spoken words they come from.

    Tokens equal to a spoken word keep its times; a run of spoken words rewritten as a run of written tokens
    (``twenty five dollars`` -> ``$25``) shares the run's span: one token takes all of it, several split the
    words in order. Confidence: the lowest of the words a token comes from."""
    tokens = written.split()
    out: list[Word] = []
    matcher = difflib.SequenceMatcher(a=[w.word.lower() for w in spoken], b=[t.lower() for t in tokens], autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            out.extend(Word(tokens[j1 + k], w.start_ms, w.end_ms, w.confidence) for k, w in enumerate(spoken[i1:i2]))
            continue
        if j1 == j2:  # spoken words that left no written token (none in NeMo's English grammars so far)
            continue
        src = list(spoken[i1:i2])
        if not src:  # written tokens inserted between spoken words take the previous word's span
            if not spoken:
                continue
            src = [spoken[max(i1 - 1, 0)]]
        m = j2 - j1
        for k in range(m):
            a = k * len(src) // m
            b = max((k + 1) * len(src) // m, a + 1)
            part = src[a:b]
            out.append(Word(tokens[j1 + k], part[0].start_ms, part[-1].end_ms, min(w.confidence for w in part)))
    return tuple(out)


def load_profanity(path: str | Path | None) -> frozenset[str]:
    """The lower-cased words of a list (one a line, ``#`` comments); ``None``: the default list."""
    p = Path(path) if path else DEFAULT_PROFANITY
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{p}: cannot read the profanity word list ({exc}); one word a line, UTF-8") from None
    return frozenset(w.strip().lower() for w in lines if w.strip() and not w.lstrip().startswith("#"))


def mask_word(token: str, words: frozenset[str]) -> str:
    """``token`` with its letters after the first masked when its bare form is listed: "Damn," -> "D***,"."""
    core = token.strip(_EDGE)
    if not core or core.lower() not in words:
        return token
    start = token.index(core)
    return token[:start] + core[0] + "*" * (len(core) - 1) + token[start + len(core) :]


def mask_text(text: str, words: frozenset[str]) -> str:
    return " ".join(mask_word(t, words) for t in text.split())


@dataclass
class TranscriptPipeline:
    """The steps of :mod:`speechtao.serve.transcript` a server applies; ``itn`` None: ITN not installed."""

    itn: InverseNormalizer | None
    profanity: frozenset[str]

    def final(
        self,
        words: Sequence[Word],
        text: str,
        *,
        verbatim: bool,
        profanity_filter: bool,
        punctuate: Callable[[str], str] | None = None,
    ) -> tuple[str, tuple[Word, ...]]:
        """A final result's (text, words) as sent: ITN unless ``verbatim``, masking, then punctuation."""
        out_words = tuple(words)
        if not verbatim and self.itn is not None and text:
            text = self.itn(text)
            out_words = align_words(words, text)
        if profanity_filter:
            text = mask_text(text, self.profanity)
            out_words = tuple(
                Word(mask_word(w.word, self.profanity), w.start_ms, w.end_ms, w.confidence) for w in out_words
            )
        if punctuate is not None and text:
            text = punctuate(text)
        return text, out_words

    def interim(self, text: str, *, profanity_filter: bool) -> str:
        """An interim transcript as sent: masked when asked (no ITN: it would cost every interim ~0.1 s)."""
        return mask_text(text, self.profanity) if profanity_filter else text
