"""Punctuation and capitalization data from real punctuated English (:mod:`speechtao.corpora.textsrc`, and with
``real_text`` the Wikipedia and news text of :mod:`speechtao.corpora.realtext`): lines
of one to a few consecutive sentences, lowercased and stripped, labelled in :mod:`speechtao.nlp.punct`'s format
(``; :`` count as commas and ``!`` as a period, as NeMo's default label set does)."""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..nlp.punct import label_text, write_dataset
from .textsrc import source_documents


@dataclass(frozen=True)
class MakeDataOptions:
    sources: tuple[str, ...] = ("wordnet", "bible", "fortunes", "pydocs")
    lines_per_source: int = 8000  # training lines per source (fewer when a source runs out)
    eval_fraction: float = 0.05  # share of documents for dev and for test (each)
    max_sentences: int = 3  # sentences joined per line (1..max, seeded), as an ASR segment spans several
    max_words: int = 40  # words per line at most
    doc_sentences: int = 20  # consecutive sentences that form one "document", the unit of the split
    question_lines: int = 3000  # extra training lines per source that hold a '?' (from train documents only)
    question_copies: int = 3  # times each training line that holds a '?' is written (1: once)
    extra_lines: int = 0  # more training lines per source, from training documents no other stream used
    # Real cased text (speechtao.corpora.realtext: the gensim wheel or its unzipped folder), split by document on
    # its own, every line of it in spoken form (numbers as words); its test lines are also written to test_real/.
    real_text: str | None = None
    real_sources: tuple[str, ...] = ("wiki", "news")
    real_eval_fraction: float = 0.1  # share of real documents for dev and for test (each)
    real_copies: int = 1  # times each real training line is written
    seed: int = 0

    def __post_init__(self):
        if self.extra_lines < 0:
            raise ValueError(f"extra_lines must be >= 0, got {self.extra_lines}")
        if self.question_lines < 0:
            raise ValueError(f"question_lines must be >= 0, got {self.question_lines}")
        if self.question_copies < 1:
            raise ValueError(f"question_copies must be >= 1, got {self.question_copies}")
        if self.real_copies < 1:
            raise ValueError(f"real_copies must be >= 1, got {self.real_copies}")
        if not 0 < self.real_eval_fraction < 0.5:
            raise ValueError(f"real_eval_fraction must be between 0 and 0.5, got {self.real_eval_fraction}")


def _split_of(source: str, doc: int, frac: float, seed: int) -> str:
    h = int(hashlib.sha1(f"{seed}:{source}:{doc}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "test" if h < frac else "dev" if h < 2 * frac else "train"


def _groups(sents: Sequence[str], rng: random.Random, max_sentences: int, max_words: int) -> Iterator[list[str]]:
    """``sents`` cut into consecutive groups of 1..``max_sentences`` sentences, each shortened to at most
    ``max_words`` words unless it is a single sentence. Lazy: one draw from ``rng`` per group taken."""
    i = 0
    while i < len(sents):
        k = rng.randint(1, max_sentences)
        group = list(sents[i : i + k])
        while len(group) > 1 and sum(len(s.split()) for s in group) > max_words:
            group = group[:-1]
        i += len(group)
        yield group


def _real_lines(options: MakeDataOptions, lines: dict[str, list[tuple[list[str], str]]], stats: dict) -> list:
    """Add the lines of ``options.real_text`` (every document whole, in spoken form) to ``lines`` by split; returns
    its test lines."""
    from ..text.normalize import normalize_text
    from .realtext import read_documents, split_documents, spoken_form

    docs = split_documents(
        read_documents(options.real_text, options.real_sources), options.real_eval_fraction, options.seed
    )
    rng = random.Random(f"{options.seed}:real")
    test: list[tuple[list[str], str]] = []
    for split, split_docs in docs.items():
        copies = options.real_copies if split == "train" else 1
        for doc in split_docs:
            sents = [spoken_form(s) for s in doc.sentences]
            for group in _groups(sents, rng, options.max_sentences, options.max_words):
                lines[split].extend([([normalize_text(s) for s in group], " ".join(group))] * copies)
                stats[split][doc.source] = stats[split].get(doc.source, 0) + copies
                if split == "test":
                    test.append(lines[split][-1])
    return test


def make_data(out_dir: str | Path, options: MakeDataOptions = MakeDataOptions()) -> dict:
    """Write ``train/``, ``dev/`` and ``test/`` punctuation datasets under ``out_dir`` (see the module docstring).

    Documents (runs of consecutive sentences) are assigned to one split by a seeded hash, so no document
    spans two splits; a sentence whose normalized text also occurs in dev or test is dropped from train.
    ``?`` is rare in running text (~0.4% of words), so training can see more of it: ``options.question_lines``
    adds, per source, up to that many training lines holding a question, taken from the training documents
    left over once the source's line budget is spent, and ``options.question_copies`` writes every training
    line that holds a question that many times. ``options.extra_lines`` adds, per source, up to that many more
    training lines from training documents that neither the main stream nor the question stream touched (the
    line budget keeps a large source such as WordNet from crowding out the others; this lets training see
    more distinct text without changing the held-out splits). With ``options.real_text`` the real documents
    (:mod:`speechtao.corpora.realtext`) are split by document on their own, every line of them in spoken form,
    and dev and test hold only them. All three extras use their own random streams
    and are merged after the split's shuffle, so dev and test are byte-identical with or without them.
    Returns counts per split and source (also written to ``out_dir/stats.json``).
    """
    from ..text.normalize import normalize_text

    out = Path(out_dir)
    rng = random.Random(options.seed)
    lines: dict[str, list[tuple[list[str], str]]] = {"train": [], "dev": [], "test": []}  # (sentence keys, text)
    stats: dict[str, dict[str, int]] = {k: {} for k in lines}
    questions: list[tuple[list[str], str]] = []  # extra training lines with a question
    qrng = random.Random(f"{options.seed}:questions")
    extras: list[tuple[list[str], str]] = []  # extra training lines from documents no other stream used
    xrng = random.Random(f"{options.seed}:extra")
    for source in options.sources:
        docs = source_documents(source, options.doc_sentences)
        order = list(range(len(docs)))
        random.Random(f"{options.seed}:{source}").shuffle(order)
        held = max(1, int(options.lines_per_source * options.eval_fraction))
        budget = {"train": options.lines_per_source, "dev": held, "test": held}
        extra = options.question_lines
        more = options.extra_lines
        for d in order:
            split = _split_of(source, d, options.eval_fraction, options.seed)
            if budget[split] <= 0:
                if split == "train" and extra > 0:  # the question stream's grouping; other groups may be extras
                    for group in _groups(docs[d], qrng, options.max_sentences, options.max_words):
                        if any("?" in s for s in group):
                            questions.append(([normalize_text(s) for s in group], " ".join(group)))
                            stats["train"][source] = stats["train"].get(source, 0) + 1
                            extra -= 1
                            if extra <= 0:
                                break
                        elif more > 0:
                            extras.append(([normalize_text(s) for s in group], " ".join(group)))
                            stats["train"][source] = stats["train"].get(source, 0) + 1
                            more -= 1
                elif split == "train" and more > 0:
                    for group in _groups(docs[d], xrng, options.max_sentences, options.max_words):
                        extras.append(([normalize_text(s) for s in group], " ".join(group)))
                        stats["train"][source] = stats["train"].get(source, 0) + 1
                        more -= 1
                        if more <= 0:
                            break
                continue
            for group in _groups(docs[d], rng, options.max_sentences, options.max_words):
                lines[split].append(([normalize_text(s) for s in group], " ".join(group)))
                stats[split][source] = stats[split].get(source, 0) + 1
                budget[split] -= 1
                if budget[split] <= 0:
                    break
            if all(v <= 0 for v in budget.values()) and extra <= 0 and more <= 0:
                break
    real_test = _real_lines(options, lines, stats) if options.real_text else []
    held_out = {k for split in ("dev", "test") for keys, _ in lines[split] for k in keys}
    before = len(lines["train"]) + len(questions)
    lines["train"] = [(keys, t) for keys, t in lines["train"] if not held_out.intersection(keys)]
    questions = [(keys, t) for keys, t in questions if not held_out.intersection(keys)]
    before_extras = len(extras)
    extras = [(keys, t) for keys, t in extras if not held_out.intersection(keys)]
    extra_lines = len(questions)
    dropped = before - len(lines["train"]) - extra_lines + before_extras - len(extras)
    questions += [line for line in lines["train"] + questions if "?" in line[1]] * (options.question_copies - 1)
    counts = {}
    for split, items in lines.items():
        rng.shuffle(items)
        if split == "train":
            for q in questions:  # random positions from the question stream: the main stream stays as it was
                items.insert(qrng.randint(0, len(items)), q)
            for x in extras:
                items.insert(xrng.randint(0, len(items)), x)
        examples = [label_text(t) for _, t in items]
        examples = [e for e in examples if e.words]
        write_dataset(out / split, examples)
        counts[split] = {"lines": len(examples), "words": sum(len(e.words) for e in examples)}
    if real_test:
        examples = [e for e in (label_text(t) for _, t in real_test) if e.words]
        write_dataset(out / "test_real", examples)
        counts["test_real"] = {"lines": len(examples), "words": sum(len(e.words) for e in examples)}
    result = {
        "counts": counts,
        "per_source": stats,
        "question_lines": extra_lines,
        "question_copies_added": len(questions) - extra_lines,
        "extra_lines": len(extras),
        "train_lines_dropped_as_overlap": dropped,
        "options": {**options.__dict__, "sources": list(options.sources), "real_sources": list(options.real_sources)},
    }
    (out / "stats.json").write_text(json.dumps(result, indent=2) + "\n")
    return result
