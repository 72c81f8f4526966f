"""Every model shipped in models/ has a card beside it (models/NAME.md) that names the file, reports its WER on
real speech and is linked from models/README.md."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

MODELS = Path(__file__).resolve().parents[2] / "models"
SHIPPED = sorted(MODELS.glob("*.pt"))


def test_models_folder_ships_checkpoints():
    assert SHIPPED, f"no .pt in {MODELS}"


@pytest.mark.parametrize("model", SHIPPED, ids=lambda p: p.name)
def test_each_shipped_model_has_a_card(model: Path):
    card = model.with_suffix(".md")
    assert card.is_file(), f"{model.name} ships without a model card: write {card.relative_to(MODELS.parent)}"
    text = card.read_text(encoding="utf-8")
    assert text.startswith(f"# {model.name}\n"), f"{card.name}: the first line must be '# {model.name}'"
    assert re.search(r"real\s+speech", text, re.I), f"{card.name}: give the model's WER on real speech"
    assert re.search(r"WER", text) and re.search(r"\d+\.\d+%", text), f"{card.name}: no WER figure"
    assert re.search(r"licen[cs]e|Apache|MIT", text), f"{card.name}: name the license of its weights"
    assert f"({card.name})" in (MODELS / "README.md").read_text(encoding="utf-8"), (
        f"models/README.md does not link {card.name}"
    )
