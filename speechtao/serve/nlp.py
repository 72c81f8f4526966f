"""NLP models behind the Riva NLP RPCs: which library class serves which task, and the calls the server makes.

Every task module of :mod:`speechtao.nlp` has a serving class with ``load(path)``:

==========  ==========================  =========================================  ===========================
task        class                       call                                       RPCs
==========  ==========================  =========================================  ===========================
punct       punct.PunctCapModel         ``punctuate(texts) -> [str]``              PunctuateText, TransformText,
                                                                                   automatic punctuation of ASR
qa          qa.QAModel                  ``answer(question, context, top_n)``       NaturalQuery
ner         serve.nlp.NERServing        ``classify_tokens(texts, top_n)``          ClassifyTokens, AnalyzeEntities
textcls     serve.nlp.TextClassServing  ``classify(texts, top_n)``                 ClassifyText
==========  ==========================  =========================================  ===========================

:func:`load_nlp_model` reads the task from the folder's ``speechtao.json`` and loads it with that class; the
result is a :class:`ServedNLPModel` whose methods return plain tuples the gRPC layer turns into messages.

NER answers as Riva's NER does: one entry per entity (``O`` words are left out; ``B-``/``I-`` words merged by
:func:`speechtao.nlp.ner.entities`), its text as written in the input and its character span ``[start, end)``
(the gRPC layer writes Riva's inclusive end). Words are the whitespace-separated runs of the text, as the
``ner`` CLI splits them.
"""

from __future__ import annotations

import importlib
import json
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import CheckpointError, InputError, MissingDependencyError

SERVING_CLASSES = {
    "punct": ("speechtao.nlp.punct", "PunctCapModel"),
    "qa": ("speechtao.nlp.qa", "QAModel"),
    "ner": ("speechtao.serve.nlp", "NERServing"),
    "textcls": ("speechtao.serve.nlp", "TextClassServing"),
}
_WORD = re.compile(r"\S+")


def _check_task(model: Any, task: str) -> Any:
    if model.task != task:
        raise InputError(
            f"{model.source}: is a {model.task!r} model, not {task!r} (put it where a {model.task} model is expected)"
        )
    return model


def word_probabilities(model: Any, lines: list[list[str]], batch_size: int = 32) -> list[Any]:
    """Per line, a ``(words, labels)`` tensor: the softmax of the first head at each word's first piece (see
    :func:`speechtao.nlp.tagging.head_probabilities`)."""
    from ..nlp.tagging import head_probabilities

    return [heads[0] for heads in head_probabilities(model, lines, batch_size)]


class NERServing:
    """A ``speechtao ner`` model (model folder, export folder or ``.onnx``) answering as Riva's NER."""

    def __init__(self, model: Any):
        self.model = _check_task(model, "ner")
        self.names = list(model.labels["ner"])
        types = sorted({n[2:] for n in self.names if n != "O"})
        self.columns = {t: [self.names.index(f"{x}-{t}") for x in "BI" if f"{x}-{t}" in self.names] for t in types}

    @classmethod
    def load(cls, path: str | Path) -> NERServing:
        from ..nlp.ner import load

        return cls(load(path))

    def classify_tokens(
        self, texts: list[str], top_n: int = 1
    ) -> list[list[tuple[str, list[tuple[str, float]], int, int]]]:
        """Per text, per entity: ``(text, [(type, score), ...], start_char, end_char)`` with ``end`` exclusive.
        The entity's own type comes first, then up to ``top_n - 1`` other types by score; a type's score is the
        mean over the entity's words of P(B-type) + P(I-type)."""
        from ..nlp.ner import entities

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


class TextClassServing:
    """A ``speechtao textcls`` model answering ClassifyText: the ``top_n`` most probable labels of each text."""

    def __init__(self, model: Any):
        self.model = _check_task(model, "textcls")

    @classmethod
    def load(cls, path: str | Path) -> TextClassServing:
        from ..nlp.model_io import load_model

        return cls(load_model(path, "textcls"))

    def classify(self, texts: list[str], top_n: int = 1) -> list[list[tuple[str, float]]]:
        """Per text: ``[(label, probability), ...]``, most probable first (``top_n`` capped at the label count)."""
        from ..nlp.textcls import predict_proba

        names = self.model.labels["label"]
        probs, index = predict_proba(self.model, texts).topk(min(max(top_n, 1), len(names)), -1)
        return [
            [(names[i], float(q)) for i, q in zip(row_i.tolist(), row_p.tolist())] for row_p, row_i in zip(probs, index)
        ]


@dataclass
class ServedNLPModel:
    task: str
    name: str
    source: str
    impl: Any  # the library's serving object
    lock: threading.Lock = field(default_factory=threading.Lock)  # one call at a time (ASR finals and NLP RPCs)

    def punctuate(self, texts: list[str]) -> list[str]:
        with self.lock:
            return list(self.impl.punctuate(list(texts)))

    def answer(self, question: str, context: str, top_n: int) -> list[tuple[str, float]]:
        """[(answer text, score), ...], best first."""
        out = []
        with self.lock:
            answers = self.impl.answer(question, context, top_n)
        for a in answers:
            if isinstance(a, tuple):
                out.append((str(a[0]), float(a[1])))
            else:
                out.append((str(a.text), float(a.score)))
        return out

    def classify_tokens(self, texts: list[str], top_n: int) -> list[list[tuple]]:
        """Per text, per entity: (text, [(label, score), ...], start_char, end_char), ``end`` exclusive."""
        with self.lock:
            return [list(seq) for seq in self.impl.classify_tokens(list(texts), top_n)]

    def classify(self, texts: list[str], top_n: int) -> list[list[tuple[str, float]]]:
        """Per text: [(label, score), ...], best first."""
        with self.lock:
            results = self.impl.classify(list(texts), top_n)
        return [[(str(label), float(score)) for label, score in labels] for labels in results]


def folder_task(folder: Path) -> str:
    """The task a model folder holds, from its ``speechtao.json`` (or the ONNX file's metadata)."""
    summary = folder / "speechtao.json"
    try:
        task = json.loads(summary.read_text()).get("task")
    except (OSError, ValueError) as exc:
        raise CheckpointError(
            f"{summary}: cannot read the model summary ({exc}); give a folder written by "
            "`speechtao <task> finetune` or `export`"
        ) from None
    if task not in SERVING_CLASSES:
        raise CheckpointError(f"{folder}: task {task!r} cannot be served (served tasks: {', '.join(SERVING_CLASSES)})")
    return task


def load_nlp_model(folder: str | Path) -> ServedNLPModel:
    folder = Path(folder)
    task = folder_task(folder)
    module_name, class_name = SERVING_CLASSES[task]
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as exc:
        raise MissingDependencyError(
            f"{folder}: serving a {task} model needs {module_name}.{class_name}, which this "
            f"speechtao does not provide ({exc})"
        ) from None
    return ServedNLPModel(task, folder.name, str(folder), cls.load(folder))
