"""The starter recipes load strictly, the flow recipe points at real files, and the shipped starter is what its
recipe describes (architecture, vocabulary) and loads offline within the size budget."""

from pathlib import Path

import pytest

from speechtao.asr.train import ASRFinetuneSpec, ASRTrainSpec, _model_config
from speechtao.flow import FlowSpec
from speechtao.spec import load_spec

ROOT = Path(__file__).resolve().parents[2]
RECIPES = ROOT / "recipes"
STARTER = ROOT / "models" / "quartznet_tiny_synth.pt"


@pytest.mark.parametrize(
    "name, cls",
    [
        ("asr_quartznet_pretrain.yaml", ASRTrainSpec),
        ("asr_citrinet_pretrain.yaml", ASRTrainSpec),
        ("asr_domain_finetune.yaml", ASRFinetuneSpec),
    ],
)
def test_starter_recipes_load(name, cls):
    spec = load_spec(cls, RECIPES / name)
    if cls is ASRTrainSpec:
        assert spec.data.augment.enabled and spec.data.augment.babble_prob > 0 and spec.data.augment.reverb_prob > 0
        assert [str(p) for p in spec.data.train] == ["data/pretrain/train.jsonl"]
    else:
        assert spec.optim.lr < 3e-3 and spec.tokenizer.kind == "pretrained"  # below the pretraining rate


def test_gpu_pretrain_recipe_loads():
    spec = load_spec(ASRTrainSpec, RECIPES / "asr_quartznet_pretrain_gpu.yaml")
    assert spec.model.preset == "quartznet_small" and spec.trainer.device == "cuda" and spec.trainer.precision == "bf16"
    assert spec.trainer.max_time_s and spec.data.max_batch_seconds and spec.data.augment.babble_prob > 0
    assert [str(p) for p in spec.data.train] == ["data/pretrain_gpu/train.jsonl"]


def test_pretrain_model_config():
    config = _model_config(load_spec(ASRTrainSpec, RECIPES / "asr_quartznet_pretrain.yaml").model)
    assert config.subsampling_factor == 4 and config.preprocessor.n_mels == 64
    from speechtao.asr.models import build_model

    n = sum(p.numel() for p in build_model(config, 28).parameters())
    assert 600_000 < n < 800_000


def test_flow_recipe_points_at_existing_recipes():
    spec = load_spec(FlowSpec, RECIPES / "asr_flow.yaml")
    assert (ROOT / spec.finetune.recipe).is_file() and (ROOT / spec.retrain.recipe).is_file()
    assert spec.starter == "models/quartznet_small_synth.pt" and (ROOT / spec.starter).is_file()
    family = spec.retrain.family_overrides["quartznet"]  # the starters' family, applied before the overrides
    retrain = load_spec(ASRFinetuneSpec, ROOT / spec.retrain.recipe, [*family, *spec.retrain.overrides])
    tuned = load_spec(ASRFinetuneSpec, ROOT / spec.finetune.recipe, spec.finetune.overrides)
    assert retrain.trainer.max_steps < tuned.trainer.max_steps and spec.retrain.distill_from_finetuned


def test_gpu_starter_matches_its_recipe():
    from speechtao.asr.checkpoint import load_model
    from speechtao.asr.models import PRESETS

    path = ROOT / "models" / "quartznet_small_synth.pt"
    assert path.stat().st_size <= 25e6
    loaded = load_model(str(path))
    preset = load_spec(ASRTrainSpec, RECIPES / "asr_quartznet_pretrain_gpu.yaml").model.preset
    assert loaded.config == PRESETS[preset] and loaded.tokenizer.vocab_size == 28


def test_shipped_starter_matches_its_recipe():
    if not STARTER.is_file():
        pytest.skip(f"{STARTER} is not present (pretrain it: see models/quartznet_tiny_synth.md)")
    from speechtao.asr.checkpoint import load_model
    from speechtao.text.tokenizers import CharTokenizer

    assert STARTER.stat().st_size <= 25e6
    loaded = load_model(str(STARTER))
    recipe = _model_config(load_spec(ASRTrainSpec, RECIPES / "asr_quartznet_pretrain.yaml").model)
    assert loaded.config == recipe
    assert isinstance(loaded.tokenizer, CharTokenizer) and loaded.tokenizer.vocab_size == 28
