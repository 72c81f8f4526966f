"""Every ASR training recipe loads strictly against its spec, and overrides reach the nested fields."""

from pathlib import Path

import pytest

from speechtao.asr.train import ASRFinetuneSpec, ASRTrainSpec
from speechtao.spec import load_spec

RECIPES = Path(__file__).resolve().parents[2] / "recipes"


@pytest.mark.parametrize(
    "name, cls",
    [
        ("asr_quartznet_train.yaml", ASRTrainSpec),
        ("asr_quartznet_finetune.yaml", ASRFinetuneSpec),
        ("asr_citrinet_finetune.yaml", ASRFinetuneSpec),
    ],
)
def test_recipe_loads(name, cls):
    spec = load_spec(cls, RECIPES / name)
    assert spec.optim.weight_decay == 0.001  # NeMo's default
    assert spec.schedule.warmup_ratio or spec.schedule.warmup_steps
    if cls is ASRFinetuneSpec:
        assert spec.optim.lr <= 1e-3  # 10x-100x below pretraining rates: small data diverges easily
    changed = load_spec(cls, RECIPES / name, ["optim.lr=2e-4", "trainer.max_steps=10", "data.augment.gain_prob=0.5"])
    assert changed.optim.lr == 2e-4 and changed.trainer.max_steps == 10 and changed.data.augment.gain_prob == 0.5
