"""Text classification data whose label is the source a sentence came from (``wordnet``, ``bible``,
``fortunes``, ``pydocs``; see :mod:`speechtao.corpora.textsrc`), in :mod:`speechtao.nlp.textcls`'s TSV format."""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass
from pathlib import Path

from ..nlp.textcls import TextExample, write_tsv
from ..text.normalize import normalize_text
from .textsrc import source_documents


@dataclass(frozen=True)
class TextclsDataOptions:
    sources: tuple[str, ...] = ("wordnet", "bible", "fortunes", "pydocs")
    train_per_source: int = 2000
    eval_per_source: int = 250  # dev and test each
    doc_sentences: int = 20
    seed: int = 0


def make_data(out_dir: str | Path, options: TextclsDataOptions = TextclsDataOptions()) -> dict:
    """Write ``train.tsv``, ``dev.tsv``, ``test.tsv`` and ``stats.json`` (see the module docstring)."""
    out = Path(out_dir)
    splits: dict[str, list[TextExample]] = {"train": [], "dev": [], "test": []}
    frac = 0.1
    for source in options.sources:
        docs = source_documents(source, options.doc_sentences, min_words=4, max_words=30)
        order = list(range(len(docs)))
        random.Random(f"{options.seed}:{source}").shuffle(order)
        want = {"train": options.train_per_source, "dev": options.eval_per_source, "test": options.eval_per_source}
        for d in order:
            h = int(hashlib.sha1(f"{options.seed}:{source}:{d}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
            split = "test" if h < frac else "dev" if h < 2 * frac else "train"
            for s in docs[d]:
                if want[split] <= 0:
                    break
                splits[split].append(TextExample(s, source))
                want[split] -= 1
            if all(v <= 0 for v in want.values()):
                break
    held = {normalize_text(e.text) for k in ("dev", "test") for e in splits[k]}
    before = len(splits["train"])
    splits["train"] = [e for e in splits["train"] if normalize_text(e.text) not in held]
    rng = random.Random(options.seed)
    counts = {}
    for name, exs in splits.items():
        rng.shuffle(exs)
        write_tsv(out / f"{name}.tsv", exs)
        counts[name] = {src: sum(e.label == src for e in exs) for src in options.sources}
    result = {
        "counts": counts,
        "train_dropped_as_overlap": before - len(splits["train"]),
        "options": {**options.__dict__, "sources": list(options.sources)},
    }
    (out / "stats.json").write_text(json.dumps(result, indent=2) + "\n")
    return result
