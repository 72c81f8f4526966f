"""NLP models behind the Riva NLP RPCs: which library class serves which task, and the calls the server makes.

Every task module of :mod:`speechtao.nlp` has a serving class with ``load(path)`` (:func:`serving_class`):

==========  ==========================  =========================================  ===========================
task        class                       call                                       RPCs
==========  ==========================  =========================================  ===========================
punct       punct.PunctCapModel         ``punctuate(texts) -> [str]``              PunctuateText, TransformText,
                                                                                   automatic punctuation of ASR
qa          qa.QAModel                  ``answer(question, context, top_n)``       NaturalQuery
ner         ner.NERServing              ``classify_tokens(texts, top_n)``          ClassifyTokens, AnalyzeEntities
textcls     textcls.TextClassServing    ``classify(texts, top_n)``                 ClassifyText
==========  ==========================  =========================================  ===========================

:func:`load_nlp_model` reads the task from the folder's ``speechtao.json`` and loads it with that class; the
result is a :class:`ServedNLPModel` whose methods return plain tuples the gRPC layer turns into messages.

NER answers as Riva's NER does: one entry per entity (``O`` words are left out; ``B-``/``I-`` words merged by
:func:`speechtao.nlp.ner.entities`), its text as written in the input and its character span ``[start, end)``
(the gRPC layer writes Riva's inclusive end). Words are the whitespace-separated runs of the text, as the
``ner`` CLI splits them.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import CheckpointError

SERVED_TASKS = ("punct", "qa", "ner", "textcls")


def serving_class(task: str) -> type:
    """The library class that serves ``task`` (each has ``load(path)``); imported on first use, so that the
    server loads only the tasks it serves."""
    if task == "punct":
        from ..nlp.punct import PunctCapModel

        return PunctCapModel
    if task == "qa":
        from ..nlp.qa import QAModel

        return QAModel
    if task == "ner":
        from ..nlp.ner import NERServing

        return NERServing
    if task == "textcls":
        from ..nlp.textcls import TextClassServing

        return TextClassServing
    raise CheckpointError(f"task {task!r} cannot be served (served tasks: {', '.join(SERVED_TASKS)})")


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
    if task not in SERVED_TASKS:
        raise CheckpointError(f"{folder}: task {task!r} cannot be served (served tasks: {', '.join(SERVED_TASKS)})")
    return task


def load_nlp_model(folder: str | Path) -> ServedNLPModel:
    folder = Path(folder)
    task = folder_task(folder)
    return ServedNLPModel(task, folder.name, str(folder), serving_class(task).load(folder))
