"""Every recipe under recipes/ loads strictly against the spec of the command its header names; the ASR training
recipes carry NeMo's settings, and overrides reach the nested fields."""

import re
from pathlib import Path

import pytest

from speechtao.asr.federate import FederatedSpec
from speechtao.asr.train import ASRFinetuneSpec, ASRTrainSpec
from speechtao.asr.whisper_train import WhisperSeqFinetuneSpec, load_finetune_spec
from speechtao.asr.whisper_upper import WhisperUpperSpec
from speechtao.errors import SpecError
from speechtao.flow import FlowSpec
from speechtao.nlp.ner import NerFinetuneSpec
from speechtao.nlp.punct import PunctFinetuneSpec
from speechtao.nlp.qa import QAFinetuneSpec
from speechtao.nlp.textcls import TextclsFinetuneSpec
from speechtao.spec import load_spec

RECIPES = Path(__file__).resolve().parents[2] / "recipes"

# The spec class each `speechtao GROUP ACTION --spec RECIPE` command loads. A recipe whose header names a command
# missing here fails below: add the command with its spec class.
COMMAND_SPECS = {
    ("asr", "train"): ASRTrainSpec,
    ("asr", "finetune"): ASRFinetuneSpec,
    ("asr", "flow"): FlowSpec,
    ("asr", "federate"): FederatedSpec,
    ("asr", "train-cached"): WhisperUpperSpec,
    ("ner", "finetune"): NerFinetuneSpec,
    ("punct", "finetune"): PunctFinetuneSpec,
    ("qa", "finetune"): QAFinetuneSpec,
    ("textcls", "finetune"): TextclsFinetuneSpec,
}
HEADER_COMMAND = re.compile(r"speechtao (\S+) (\S+) --spec recipes/(\S+\.ya?ml)")


def _header_command(path: Path) -> tuple[str, str, str] | None:
    """(group, action, recipe file) of the first command in the recipe's leading comment block."""
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        m = HEADER_COMMAND.search(line)
        if m:
            return m.group(1), m.group(2), m.group(3)
    return None


ALL_RECIPES = sorted(p for p in RECIPES.rglob("*") if p.suffix in (".yaml", ".yml"))


def test_recipes_are_found():
    assert len(ALL_RECIPES) >= 14, ALL_RECIPES


@pytest.mark.parametrize("path", ALL_RECIPES, ids=lambda p: str(p.relative_to(RECIPES)))
def test_every_recipe_loads_against_the_spec_its_header_names(path):
    command = _header_command(path)
    assert command is not None, (
        f"{path}: the leading comment names no command; start the recipe with "
        f"'# speechtao GROUP ACTION --spec recipes/{path.relative_to(RECIPES)} [key.sub=value ...]'"
    )
    group, action, named = command
    assert named == str(path.relative_to(RECIPES)), f"{path}: its header runs recipes/{named}, not this file"
    spec_cls = COMMAND_SPECS.get((group, action))
    assert spec_cls is not None, (
        f"{path}: `speechtao {group} {action}` has no spec class in COMMAND_SPECS of {Path(__file__).name}; add it"
    )
    if (group, action) == ("asr", "finetune"):  # CTC or Whisper encoder-decoder, by init_from
        spec = load_finetune_spec(path)
        assert isinstance(spec, (ASRFinetuneSpec, WhisperSeqFinetuneSpec))
        return
    spec = load_spec(spec_cls, path)
    assert isinstance(spec, spec_cls)


def test_a_recipe_with_an_unknown_key_fails_to_load(tmp_path):
    """The loop above can fail: a recipe with a misspelt key is refused, naming the key."""
    bad = tmp_path / "asr_quartznet_train.yaml"
    bad.write_text((RECIPES / "asr_quartznet_train.yaml").read_text() + "\nepochz: 3\n")
    with pytest.raises(SpecError, match="epochz: unknown key"):
        load_spec(ASRTrainSpec, bad)


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
