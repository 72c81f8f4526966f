"""Named entity recognition: one IOB tag per word over a pretrained encoder.

Data: NeMo's two-file format, one sentence per line in each file of a folder::

    text.txt     Maria Lopez flew to Lisbon on 3 May 2004 .
    labels.txt   B-PER I-PER O O B-LOC O B-DATE I-DATE I-DATE O

Tags are IOB2 (``B-`` starts an entity, ``I-`` continues it, ``O`` is outside). :func:`convert_conll` reads
CoNLL column files (word first, tag last; ``-DOCSTART-`` lines skipped, blank lines end sentences) and turns
IOB1 into IOB2. :mod:`speechtao.corpora.ner_gen` generates such data from templates and real names. Scores
are entity-level (exact span and type): precision, recall, F1 per type and micro averaged (what seqeval and
NeMo report).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from ..errors import DataError, ManifestError
from ..spec import spec_to_dict
from ..train.loop import TrainerSpec
from ..train.optim import OptimSpec
from ..train.schedule import ScheduleSpec
from .heads import TokenTaggingNet
from .model_io import ModelSpec, NLPModel, load_model, require_task, start_model
from .prune import PruneSpec, prune_task
from .tagging import collate_tagged, encode_tagged, head_probabilities, predict_tags, tagging_loss
from .training import EncoderDataSpec, EncoderTask, train_and_save

TASK = "ner"
TEXT_FILE, LABELS_FILE = "text.txt", "labels.txt"
ENTITY_TYPES = ("PER", "LOC", "ORG", "DATE")
_TAG_RE = re.compile(r"^(O|[BI]-[A-Za-z][A-Za-z0-9_]*)$")


# ------------------------------------------------------------------------------------------------- data


@dataclass
class NerExample:
    words: list[str]
    tags: list[str]  # IOB2


def write_dataset(folder: str | Path, examples: Sequence[NerExample]) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / TEXT_FILE).write_text("".join(" ".join(e.words) + "\n" for e in examples), encoding="utf-8")
    (folder / LABELS_FILE).write_text("".join(" ".join(e.tags) + "\n" for e in examples), encoding="utf-8")
    return folder


def read_dataset(folder: str | Path, limit: int | None = None) -> list[NerExample]:
    """Read ``text.txt`` + ``labels.txt``; every defect is reported as ``FILE:LINE: problem (fix)``."""
    folder = Path(folder)
    text_path, labels_path = folder / TEXT_FILE, folder / LABELS_FILE
    for p in (text_path, labels_path):
        if not p.is_file():
            raise DataError(
                f"{p}: not found (an NER dataset is a folder with {TEXT_FILE} and {LABELS_FILE}; "
                "`speechtao ner make-data` or `speechtao ner convert-conll` writes them)"
            )
    texts = text_path.read_text(encoding="utf-8").splitlines()
    labels = labels_path.read_text(encoding="utf-8").splitlines()
    defects = []
    if len(texts) != len(labels):
        defects.append(
            f"{labels_path}: {len(labels)} lines but {text_path} has {len(texts)} (one tag line per text line)"
        )
    out = []
    for i, (t, lab) in enumerate(zip(texts, labels), start=1):
        words, tags = t.split(), lab.split()
        if not words:
            defects.append(f"{text_path}:{i}: empty line (remove it)")
        elif len(words) != len(tags):
            defects.append(f"{labels_path}:{i}: {len(tags)} tags for {len(words)} words (one tag per word)")
        elif any(not _TAG_RE.match(x) for x in tags):
            bad = next(x for x in tags if not _TAG_RE.match(x))
            defects.append(f"{labels_path}:{i}: tag {bad!r} is not O, B-TYPE or I-TYPE (IOB2, e.g. B-PER)")
        else:
            out.append(NerExample(words, tags))
        if limit is not None and len(out) >= limit and not defects:
            break
    if defects:
        raise ManifestError(defects[:50], f"{folder}: {len(defects)} defect(s) in the NER dataset")
    if not out:
        raise DataError(f"{folder}: no examples")
    return out


def iob1_to_iob2(tags: Sequence[str]) -> list[str]:
    """``I-X`` that does not continue an ``X`` entity becomes ``B-X`` (IOB2 input is unchanged)."""
    out = []
    prev = "O"
    for t in tags:
        if t.startswith("I-") and (prev == "O" or prev[2:] != t[2:]):
            t = "B-" + t[2:]
        out.append(t)
        prev = t
    return out


def convert_conll(path: str | Path, tag_column: int = -1) -> list[NerExample]:
    """Sentences of a CoNLL column file (whitespace-separated; word first, tag in ``tag_column``)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: CoNLL file not found")
    examples, words, tags, defects = [], [], [], []
    lines = path.read_text(encoding="utf-8").splitlines() + [""]
    for i, line in enumerate(lines, start=1):
        cols = line.split()
        if not cols:
            if words:
                examples.append(NerExample(words, iob1_to_iob2(tags)))
            words, tags = [], []
            continue
        if cols[0] == "-DOCSTART-":
            continue
        if len(cols) < 2:
            defects.append(f"{path}:{i}: one column {line.strip()!r} (need the word and a tag column)")
            continue
        try:
            tag = cols[tag_column]
        except IndexError:
            defects.append(f"{path}:{i}: no column {tag_column} in {len(cols)} columns (set --tag-column)")
            continue
        if not _TAG_RE.match(tag):
            defects.append(f"{path}:{i}: tag {tag!r} is not O, B-TYPE or I-TYPE (is --tag-column right?)")
            continue
        words.append(cols[0])
        tags.append(tag)
    if defects:
        raise ManifestError(defects[:50], f"{path}: {len(defects)} defect(s) in the CoNLL file")
    if not examples:
        raise DataError(f"{path}: no sentences")
    return examples


def label_set(examples: Sequence[NerExample]) -> list[str]:
    """``O`` then ``B-``/``I-`` of every entity type found, types sorted."""
    types = sorted({t[2:] for e in examples for t in e.tags if t != "O"})
    return ["O"] + [f"{p}-{t}" for t in types for p in "BI"]


def entities(tags: Sequence[str]) -> set[tuple[int, int, str]]:
    """``{(start, end, type)}`` spans of IOB2 tags (an ``I-`` without its ``B-`` starts an entity too)."""
    spans, start, kind = set(), None, None
    for i, t in enumerate(list(tags) + ["O"]):
        if start is not None and (t == "O" or t.startswith("B-") or t[2:] != kind):
            spans.add((start, i, kind))
            start = None
        if t != "O" and start is None:
            start, kind = i, t[2:]
    return spans


def entity_report(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> dict:
    """Entity-level exact-match precision/recall/F1 per type and micro averaged over all entities."""
    counts: dict[str, list[int]] = {}  # type -> [tp, n_pred, n_gold]
    for g, p in zip(gold, pred):
        ge, pe = entities(g), entities(p)
        for e in ge | pe:
            c = counts.setdefault(e[2], [0, 0, 0])
            c[0] += e in ge and e in pe
            c[1] += e in pe
            c[2] += e in ge

    def prf(tp: int, n_pred: int, n_gold: int) -> dict:
        pr = tp / n_pred if n_pred else 0.0
        rc = tp / n_gold if n_gold else 0.0
        return {"precision": pr, "recall": rc, "f1": 2 * pr * rc / (pr + rc) if pr + rc else 0.0, "support": n_gold}

    per = {k: prf(*counts[k]) for k in sorted(counts)}
    total = [sum(c[i] for c in counts.values()) for i in range(3)]
    micro = prf(*total)
    present = [v for v in per.values() if v["support"]]
    macro = {k: sum(v[k] for v in present) / len(present) if present else 0.0 for k in ("precision", "recall", "f1")}
    return {"per_class": per, "micro": micro, "macro": macro, "f1": micro["f1"]}


def format_entity_report(report: dict) -> str:
    lines = [f"{'entity':<10}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>10}"]
    for name, v in list(report["per_class"].items()) + [("micro avg", report["micro"])]:
        lines.append(f"{name:<10}{v['precision']:>10.4f}{v['recall']:>10.4f}{v['f1']:>10.4f}{v['support']:>10d}")
    m = report["macro"]
    lines.append(f"{'macro avg':<10}{m['precision']:>10.4f}{m['recall']:>10.4f}{m['f1']:>10.4f}")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ model


def make_net(encoder: nn.Module, spec: ModelSpec, n_labels: int) -> TokenTaggingNet:
    return TokenTaggingNet(encoder, {"ner": n_labels}, spec.head_layers, spec.dropout)


def predict(model: NLPModel, lines: Sequence[Sequence[str]], batch_size: int = 32) -> list[list[str]]:
    """IOB2 tags for every word of every line."""
    names = model.labels["ner"]
    return [[names[i] for i in t[0]] for t in predict_tags(model, lines, batch_size)]


def evaluate(model: NLPModel, examples: Sequence[NerExample], batch_size: int = 32) -> dict:
    """Entity-level report (``f1`` is the micro-averaged entity F1) plus word-level tag accuracy."""
    pred = predict(model, [e.words for e in examples], batch_size)
    report = entity_report([e.tags for e in examples], pred)
    words = sum(len(e.tags) for e in examples)
    report["tag_accuracy"] = sum(g == p for e, pr in zip(examples, pred) for g, p in zip(e.tags, pr)) / max(words, 1)
    report["sentences"] = len(examples)
    return report


@dataclass(frozen=True)
class NerDataSpec(EncoderDataSpec):
    """``train``/``validation``: folders with text.txt and labels.txt (IOB)."""


@dataclass(frozen=True)
class NerFinetuneSpec:
    data: NerDataSpec
    trainer: TrainerSpec
    optim: OptimSpec
    model: ModelSpec = field(default_factory=ModelSpec)
    schedule: ScheduleSpec = field(default_factory=ScheduleSpec)


def training_task(
    model: NLPModel,
    train: Path,
    validation: Path,
    batch_size: int,
    seed: int,
    max_train: int | None = None,
    max_val: int | None = None,
) -> EncoderTask:
    """The Trainer task; validation reports ``f1`` (entity micro F1)."""
    names = model.labels["ner"]
    train_ex = read_dataset(train, max_train)
    val_ex = read_dataset(validation, max_val)
    unknown = sorted({t for e in train_ex + val_ex for t in e.tags} - set(names))
    if unknown:
        raise DataError(
            f"{train}: tags {unknown} are not among the model's labels {names} (fine-tune from the "
            "encoder instead of model.init_from, or map the tags)"
        )
    index = {n: i for i, n in enumerate(names)}
    items = encode_tagged(
        model.tokenizer,
        [e.words for e in train_ex],
        [{"ner": [index[t] for t in e.tags]} for e in train_ex],
        model.max_length,
    )
    pad = model.tokenizer.pad_token_id

    def validate() -> dict:
        r = evaluate(model, val_ex)
        return {"f1": r["f1"], "precision": r["micro"]["precision"], "recall": r["micro"]["recall"]}

    return EncoderTask(
        model.net,
        items,
        lambda b: collate_tagged(b, pad),
        tagging_loss,
        validate,
        lambda: model.payload(),
        batch_size,
        seed,
    )


def finetune(spec: NerFinetuneSpec, resume: bool = False) -> dict:
    labels = {"ner": label_set(read_dataset(spec.data.train, spec.data.max_train_samples))}
    model = start_model(
        spec.model, TASK, labels, lambda enc: make_net(enc, spec.model, len(labels["ner"])), spec.trainer.seed
    )
    model.spec = spec_to_dict(spec)
    task = training_task(
        model,
        spec.data.train,
        spec.data.validation,
        spec.data.batch_size,
        spec.trainer.seed,
        spec.data.max_train_samples,
        spec.data.max_val_samples,
    )
    return train_and_save(task, model, spec, spec.trainer.out_dir, resume)


def load(path: str | Path) -> NLPModel:
    return load_model(path, TASK)


def prune(spec: PruneSpec) -> dict:
    """Prune a ner model and retrain it (see :class:`speechtao.nlp.prune.PruneSpec`); the best retrained
    weights by validation ``f1``. Returns the report written as ``prune_report.json``."""
    return prune_task(spec, TASK, training_task, "f1")


# ---------------------------------------------------------------------------------------------- serving

_WORD = re.compile(r"\S+")


def word_probabilities(model: Any, lines: list[list[str]], batch_size: int = 32) -> list[Any]:
    """Per line, a ``(words, labels)`` tensor: the softmax of the first head at each word's first piece (see
    :func:`speechtao.nlp.tagging.head_probabilities`)."""
    return [heads[0] for heads in head_probabilities(model, lines, batch_size)]


class NERServing:
    """A ``speechtao ner`` model (model folder, export folder or ``.onnx``) answering as Riva's NER."""

    def __init__(self, model: Any):
        self.model = require_task(model, "ner")
        self.names = list(model.labels["ner"])
        types = sorted({n[2:] for n in self.names if n != "O"})
        self.columns = {t: [self.names.index(f"{x}-{t}") for x in "BI" if f"{x}-{t}" in self.names] for t in types}

    @classmethod
    def load(cls, path: str | Path) -> NERServing:
        return cls(load(path))

    def classify_tokens(
        self, texts: list[str], top_n: int = 1
    ) -> list[list[tuple[str, list[tuple[str, float]], int, int]]]:
        """Per text, per entity: ``(text, [(type, score), ...], start_char, end_char)`` with ``end`` exclusive.
        The entity's own type comes first, then up to ``top_n - 1`` other types by score; a type's score is the
        mean over the entity's words of P(B-type) + P(I-type)."""
        matches = [list(_WORD.finditer(t)) for t in texts]
        keep = [i for i, ms in enumerate(matches) if ms]  # a text without words has no entities
        probs = word_probabilities(self.model, [[m.group() for m in matches[i]] for i in keep])
        out: list[list] = [[] for _ in texts]
        for i, p in zip(keep, probs):
            text, ms = texts[i], matches[i]
            tags = [self.names[k] for k in p.argmax(-1).tolist()]
            for a, b, kind in sorted(entities(tags)):
                mass = {t: float(p[a:b, cols].sum(-1).mean()) for t, cols in self.columns.items()}
                others = sorted((t for t in mass if t != kind), key=lambda t: -mass[t])
                labels = [(t, mass[t]) for t in [kind] + others[: max(top_n, 1) - 1]]
                start, end = ms[a].start(), ms[b - 1].end()
                out[i].append((text[start:end], labels, start, end))
        return out
