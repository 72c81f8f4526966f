import io
import pickle
import tarfile

import pytest
import torch
import yaml

from speechtao.asr.checkpoint import LoadedModel, load_model, model_payload, save_model
from speechtao.asr.models import ASRModelConfig, BlockConfig, build_model
from speechtao.asr.nemo_io import export_nemo, import_nemo, read_nemo_archive
from speechtao.errors import CheckpointError
from speechtao.features import FeatureSpec
from speechtao.text.tokenizers import CharTokenizer, SentencePieceTokenizer

CONFIG = ASRModelConfig(
    preprocessor=FeatureSpec(n_mels=16, n_fft=512),
    blocks=(
        BlockConfig(24, 1, 11, stride=2, residual=False, se=True),
        BlockConfig(24, 2, 13, se=True, dropout=0.1),
        BlockConfig(32, 1, 1, separable=False, residual=False),
    ),
    family="citrinet",
)
SENTENCES = ["the cat sat on the mat", "a dog ran in the park", "speech models on small machines"]


@pytest.fixture(scope="module")
def sp_tokenizer():
    return SentencePieceTokenizer.train(SENTENCES, vocab_size=40)


def _model(vocab_size, seed=0):
    torch.manual_seed(seed)
    model = build_model(CONFIG, vocab_size)
    for m in model.modules():  # non-trivial BatchNorm statistics, so they must round-trip too
        if isinstance(m, torch.nn.BatchNorm1d):
            m.running_mean.normal_(0, 0.2)
            m.running_var.uniform_(0.5, 1.5)
    return model.eval()


def _audio():
    g = torch.Generator().manual_seed(0)
    return 0.1 * torch.randn(2, 12000, generator=g), torch.tensor([12000, 7000])


def _outputs(model):
    with torch.no_grad():
        return model(*_audio())


@pytest.mark.parametrize("kind", ["char", "sentencepiece"])
def test_save_load_round_trip_gives_identical_outputs(tmp_path, sp_tokenizer, kind):
    tok = CharTokenizer() if kind == "char" else sp_tokenizer
    model = _model(tok.vocab_size)
    payload = model_payload(model, tok, spec={"optim": {"lr": 0.001}}, extra={"wer": 0.12})
    payload["train_state"] = {"step": 7, "optimizer": {"lr": torch.tensor(0.001)}}  # trainer checkpoints add this
    path = save_model(tmp_path / "m.ckpt", payload)
    assert [p.name for p in tmp_path.iterdir()] == ["m.ckpt"]  # no temporary file left behind
    loaded = load_model(path)
    assert isinstance(loaded, LoadedModel) and loaded.config == CONFIG
    assert loaded.tokenizer == tok and loaded.spec == {"optim": {"lr": 0.001}} and loaded.extra == {"wer": 0.12}
    assert not loaded.model.training
    a, b = _outputs(model), _outputs(loaded.model)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_payload_refuses_mismatched_tokenizer():
    with pytest.raises(CheckpointError, match="change_vocabulary"):
        model_payload(_model(10), CharTokenizer())


def test_failed_save_keeps_the_previous_file(tmp_path):
    tok = CharTokenizer()
    path = save_model(tmp_path / "m.ckpt", model_payload(_model(tok.vocab_size), tok))
    before = path.read_bytes()
    with pytest.raises((AttributeError, TypeError, pickle.PicklingError)):
        save_model(path, {"format": "speechtao-asr", "bad": lambda: 0})  # lambdas cannot be pickled
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["m.ckpt"]


def test_truncated_checkpoint_raises_a_clear_error(tmp_path):
    tok = CharTokenizer()
    path = save_model(tmp_path / "m.ckpt", model_payload(_model(tok.vocab_size), tok))
    data = path.read_bytes()
    cut = tmp_path / "cut.ckpt"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(
        CheckpointError, match=r"cut\.ckpt: cannot read the checkpoint, the file is truncated or corrupt"
    ):
        load_model(cut)


@pytest.mark.parametrize(
    "content,match",
    [
        ({"state_dict": {}, "hyper_parameters": {}}, "PyTorch Lightning checkpoint"),
        ({"format": "speechtao-asr", "version": 99}, "version 99 is not supported"),
        ([1, 2, 3], "not a speechtao ASR checkpoint"),
    ],
)
def test_wrong_format_is_named(tmp_path, content, match):
    path = tmp_path / "x.ckpt"
    torch.save(content, path)
    with pytest.raises(CheckpointError, match=match):
        load_model(path)


def test_missing_model_lists_presets(tmp_path):
    with pytest.raises(CheckpointError, match="model not found.*quartznet_15x5"):
        load_model(tmp_path / "nope.ckpt")


def test_preset_name_gives_random_char_model():
    loaded = load_model("quartznet_small")
    assert loaded.tokenizer == CharTokenizer() and loaded.model.vocab_size == 28 and not loaded.model.training


# ------------------------------------------------------------------------------------------------------------
# .nemo archives without NeMo


def test_nemo_export_import_round_trip(tmp_path, sp_tokenizer):
    model = _model(sp_tokenizer.vocab_size)
    loaded = LoadedModel(model=model, tokenizer=sp_tokenizer, config=CONFIG)
    path = export_nemo(loaded, tmp_path / "m.nemo")
    with tarfile.open(path) as tar:
        names = sorted(tar.getnames())
    assert names == [
        "./model_config.yaml",
        "./model_weights.ckpt",
        "./tokenizer.model",
        "./tokenizer.vocab",
        "./vocab.txt",
    ]
    again = import_nemo(path)
    assert again.config == CONFIG and again.tokenizer == sp_tokenizer
    a, b = _outputs(model), _outputs(again.model)
    assert torch.equal(a[0], b[0])


def _write_tar(path, members):
    with tarfile.open(path, "w:") as tar:
        for name, data, kind in members:
            info = tarfile.TarInfo(name)
            if kind == "sym":
                info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))


@pytest.mark.parametrize(
    "name,kind,match",
    [
        ("../evil.txt", "file", r"'\.\./evil\.txt' has an absolute or parent"),
        ("/etc/evil", "file", r"'/etc/evil' has an absolute or parent"),
        ("./tokenizer.model", "sym", r"'\./tokenizer\.model' is a link"),
    ],
)
def test_unsafe_archive_members_are_refused(tmp_path, name, kind, match):
    path = tmp_path / "bad.nemo"
    _write_tar(path, [("./model_config.yaml", b"encoder: {}\n", "file"), (name, b"x", kind)])
    with pytest.raises(CheckpointError, match=match):
        read_nemo_archive(path)
    assert not (tmp_path.parent / "evil.txt").exists()


def test_truncated_and_incomplete_archives(tmp_path):
    tok = CharTokenizer()
    path = export_nemo(LoadedModel(_model(tok.vocab_size), tok, CONFIG), tmp_path / "m.nemo")
    cut = tmp_path / "cut.nemo"
    cut.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(CheckpointError, match=r"cut\.nemo: .*truncated"):
        import_nemo(cut)
    partial = tmp_path / "partial.nemo"
    _write_tar(partial, [("./model_config.yaml", b"encoder: {}\n", "file")])
    with pytest.raises(CheckpointError, match="has no model_weights.ckpt"):
        import_nemo(partial)


@pytest.mark.parametrize(
    "edit,match",
    [
        (lambda c: c["encoder"]["jasper"][1].update(groups=2), r"encoder\.jasper\[1\]\.groups: 2 is not supported"),
        (lambda c: c["encoder"]["jasper"][0].update(se_context_size=128), r"encoder\.jasper\[0\]\.se_context_size"),
        (lambda c: c["encoder"].update(conv_mask=False), r"encoder\.conv_mask: False is not supported"),
        (lambda c: c["encoder"]["jasper"][0].update(fancy=1), r"encoder\.jasper\[0\]\.fancy: unknown block option"),
        (lambda c: c["decoder"].update(_target_="x.Other"), r"decoder\._target_: 'x\.Other' is not supported"),
    ],
)
def test_unsupported_nemo_features_name_the_key(tmp_path, edit, match):
    tok = CharTokenizer()
    src = export_nemo(LoadedModel(_model(tok.vocab_size), tok, CONFIG), tmp_path / "m.nemo")
    with tarfile.open(src) as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}
    cfg = yaml.safe_load(members["./model_config.yaml"])
    edit(cfg)
    members["./model_config.yaml"] = yaml.safe_dump(cfg).encode()
    _write_tar(tmp_path / "edited.nemo", [(k, v, "file") for k, v in members.items()])
    with pytest.raises(CheckpointError, match=match):
        import_nemo(tmp_path / "edited.nemo")
