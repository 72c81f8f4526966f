"""NLP models behind the Riva NLP RPCs: which library class serves which task, and the calls the server makes.

Every task module of :mod:`speechtao.nlp` has a serving class with ``load(path)``:

==========  ==========================  =========================================  ===========================
task        class                       call                                       RPCs
==========  ==========================  =========================================  ===========================
punct       punct.PunctCapModel         ``punctuate(texts) -> [str]``              PunctuateText, TransformText,
                                                                                   automatic punctuation of ASR
qa          qa.QAModel                  ``answer(question, context, top_n)``       NaturalQuery
ner         ner.NERModel                ``classify_tokens(texts, top_n)``          ClassifyTokens, AnalyzeEntities
textcls     textcls.TextClassModel      ``classify(texts, top_n)``                 ClassifyText
==========  ==========================  =========================================  ===========================

:func:`load_nlp_model` reads the task from the folder's ``speechtao.json`` and loads it with that class; the
result is a :class:`ServedNLPModel` whose methods return plain tuples the gRPC layer turns into messages.
"""

from __future__ import annotations

import importlib
import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import CheckpointError, MissingDependencyError

SERVING_CLASSES = {"punct": ("speechtao.nlp.punct", "PunctCapModel"), "qa": ("speechtao.nlp.qa", "QAModel"),
                   "ner": ("speechtao.nlp.ner", "NERModel"), "textcls": ("speechtao.nlp.textcls", "TextClassModel")}


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
                out.append((str(getattr(a, "text")), float(getattr(a, "score"))))
        return out

    def classify_tokens(self, texts: list[str], top_n: int) -> list[list[tuple]]:
        """Per text, per token: (token, [(label, score), ...], start_char, end_char)."""
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
        raise CheckpointError(f"{summary}: cannot read the model summary ({exc}); give a folder written by "
                              "`speechtao <task> finetune` or `export`") from None
    if task not in SERVING_CLASSES:
        raise CheckpointError(f"{folder}: task {task!r} cannot be served (served tasks: "
                              f"{', '.join(SERVING_CLASSES)})")
    return task


def load_nlp_model(folder: str | Path) -> ServedNLPModel:
    folder = Path(folder)
    task = folder_task(folder)
    module_name, class_name = SERVING_CLASSES[task]
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as exc:
        raise MissingDependencyError(f"{folder}: serving a {task} model needs {module_name}.{class_name}, which this "
                                     f"speechtao does not provide ({exc})") from None
    return ServedNLPModel(task, folder.name, str(folder), cls.load(folder))
