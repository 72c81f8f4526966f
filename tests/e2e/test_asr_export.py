"""`speechtao asr prune` and `speechtao asr export --format onnx|onnx-int8|triton|tensorrt` through the CLI, and
the retraining paths: the fine-tune recipe from a pruned checkpoint, and QAT fine-tuning into an INT8 export."""

import importlib.util
import json
import subprocess
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from speechtao.asr.checkpoint import load_model, model_payload, save_model

SPEECH = Path(__file__).parents[1] / "fixtures" / "audio_speech_16k.wav"


@pytest.fixture
def cli(capsys):
    from speechtao.cli import main

    def call(*args):
        capsys.readouterr()
        rc = main([str(a) for a in args])
        out, err = capsys.readouterr()
        return subprocess.CompletedProcess(args, rc, out, err)

    return call


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """A small model with residual and squeeze-excitation blocks, and a manifest of the fixture's speech."""
    from speechtao.asr.models import ASRModelConfig, BlockConfig, build_model
    from speechtao.features import FeatureSpec
    from speechtao.text.tokenizers import CharTokenizer

    d = tmp_path_factory.mktemp("export")
    torch.manual_seed(0)
    config = ASRModelConfig(
        FeatureSpec(n_mels=40, window_size=0.025, dither=0.0),
        (
            BlockConfig(64, 1, 11, stride=2, residual=False),
            BlockConfig(64, 2, 11, se=True),
            BlockConfig(64, 2, 13),
            BlockConfig(96, 1, 1, residual=False, separable=False),
        ),
    )
    tok = CharTokenizer()
    ckpt = save_model(d / "small.pt", model_payload(build_model(config, tok.vocab_size).eval(), tok))
    manifest = d / "speech.jsonl"
    lines = [
        {"audio_filepath": str(SPEECH), "duration": 2.548, "text": "hello there how are you"},
        {"audio_filepath": str(SPEECH), "offset": 0.5, "duration": 1.5, "text": "there how are"},
    ]
    manifest.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return d, ckpt, manifest


def test_prune_then_export_every_format(data, cli):
    d, ckpt, manifest = data
    r = cli("asr", "prune", "--model", ckpt, "--ratio", "0.5", "--out", d / "pruned.pt")
    assert r.returncode == 0, r.stderr
    before, after = (int(x.replace(",", "")) for x in r.stdout.split("parameters ")[1].split(" (")[0].split(" -> "))
    assert after < 0.4 * before and "MACs per second of audio" in r.stdout
    pruned = load_model(d / "pruned.pt")
    assert [b.filters for b in pruned.config.blocks] == [32, 32, 32, 48]

    r = cli("asr", "export", "--model", d / "pruned.pt", "--format", "onnx", "--out", d / "onnx" / "model.onnx")
    assert r.returncode == 0, r.stderr
    assert (d / "onnx" / "model.onnx").is_file() and (d / "onnx" / "tokens.txt").is_file()

    out = d / "int8" / "model.int8.onnx"
    r = cli(
        "asr",
        "export",
        "--model",
        d / "pruned.pt",
        "--format",
        "onnx-int8",
        "--calib",
        manifest,
        "--calib-method",
        "percentile",
        "--out",
        out,
    )
    assert r.returncode == 0, r.stderr
    assert "calibrated on 2 utterances (percentile)" in r.stdout
    from speechtao.export.onnx_export import ort_session
    from speechtao.export.quantize import read_trt_cache

    assert read_trt_cache(d / "int8" / "model.int8.calib").scales
    feats = np.random.default_rng(0).standard_normal((1, 40, 120)).astype(np.float32)
    lp, n = ort_session(out).run(None, {"audio_signal": feats, "length": np.array([120])})
    assert lp.shape == (1, 60, 29) and n.tolist() == [60]

    r = cli("asr", "export", "--model", d / "pruned.pt", "--format", "onnx-int8", "--out", d / "x.onnx")
    assert r.returncode == 2 and "needs --calib MANIFEST" in r.stderr

    r = cli("asr", "export", "--model", d / "pruned.pt", "--format", "triton", "--out", d / "repo" / "asr")
    assert r.returncode == 0, r.stderr
    assert (d / "repo" / "asr" / "1" / "model.onnx").is_file()
    assert 'name: "asr"' in (d / "repo" / "asr" / "config.pbtxt").read_text()

    if importlib.util.find_spec("tensorrt") is None:
        r = cli("asr", "export", "--model", d / "pruned.pt", "--format", "tensorrt", "--out", d / "m.plan")
        assert r.returncode == 3 and "tensorrt Python package and an NVIDIA GPU" in r.stderr


def _finetune_spec(d: Path, init_from: Path, manifest: Path, out: str):
    from speechtao.asr.train import ASRFinetuneSpec
    from speechtao.spec import spec_from_dict

    return spec_from_dict(
        ASRFinetuneSpec,
        {
            "init_from": str(init_from),
            "data": {"train": [str(manifest)], "validation": [str(manifest)], "batch_size": 2},
            "optim": {"name": "adamw", "lr": 1e-3},
            "trainer": {
                "out_dir": str(d / out),
                "max_steps": 2,
                "device": "cpu",
                "log_every": 1,
                "checkpoint_every": 2,
            },
        },
    )


def test_pruned_checkpoint_fine_tunes_with_the_recipe(data):
    from speechtao.asr.train import run

    d, ckpt, manifest = data
    from speechtao.asr.prune import PruneOptions, prune_model

    loaded = load_model(ckpt)
    res = prune_model(loaded.model, PruneOptions(ratio=0.5))
    pruned = save_model(d / "pruned_ft.pt", model_payload(res.model, loaded.tokenizer))
    run(_finetune_spec(d, pruned, manifest, "ft"))
    final = load_model(d / "ft" / "final.pt")
    assert [b.filters for b in final.config.blocks] == res.widths_after
    changed = any(
        not torch.equal(a, b)
        for a, b in zip(final.model.state_dict().values(), res.model.state_dict().values())
        if a.is_floating_point()
    )
    assert changed  # it trained


def test_qat_finetune_through_the_cli_and_its_ranges_reach_the_int8_export(data, cli):
    import yaml
    from onnx import numpy_helper

    from speechtao.export.qat import checkpoint_ranges

    d, ckpt, manifest = data
    recipe = d / "qat.yaml"
    recipe.write_text(
        yaml.safe_dump(
            {
                "init_from": str(ckpt),
                "data": {"train": [str(manifest)], "validation": [str(manifest)], "batch_size": 2},
                "optim": {"name": "adamw", "lr": 1e-3},
                "schedule": {"name": "constant", "warmup_steps": 0},
                "trainer": {
                    "out_dir": str(d / "qat"),
                    "max_steps": 2,
                    "device": "cpu",
                    "log_every": 1,
                    "checkpoint_every": 2,
                },
            }
        )
    )
    r = cli("asr", "finetune", "--spec", recipe, "qat.enabled=true", "qat.momentum=0.5")
    assert r.returncode == 0, r.stderr
    convs = [n for n, m in load_model(ckpt).model.named_modules() if isinstance(m, torch.nn.Conv1d)]
    assert f"qat: INT8 fake quantization in {len(convs) - 2} convs" in r.stdout
    final = load_model(d / "qat" / "final.pt")
    ranges = checkpoint_ranges(final.extra)
    assert sorted(ranges) == sorted(convs[1:-1]) and all(lo < hi for lo, hi in ranges.values())
    assert final.spec["qat"] == {"enabled": True, "momentum": 0.5}

    out = d / "qat_int8" / "model.onnx"
    r = cli(
        "asr", "export", "--model", d / "qat" / "final.pt", "--format", "onnx-int8", "--calib", manifest, "--out", out
    )
    assert r.returncode == 0, r.stderr
    n = int(r.stdout.split(" ranges from QAT")[0].rsplit(" ", 1)[1])
    assert n >= len(convs) - 4  # convs reading one tensor (a block's first conv and its residual) share a range
    g = onnx.load(str(out)).graph
    inits = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    scales = {node.input[0]: float(inits[node.input[1]]) for node in g.node if node.op_type == "QuantizeLinear"}
    qat_scales = sorted((max(hi, 0.0) - min(lo, 0.0)) / 255 for lo, hi in ranges.values())
    matched = [s for s in scales.values() if any(abs(s - q) <= 1e-6 * q for q in qat_scales)]
    assert len(matched) >= n  # the QAT ranges are the quantization grids of the exported conv inputs

    # resuming restores the ranges from the checkpoint: 2 + 1 steps end where 3 uninterrupted steps do
    # (the recipe's constant learning rate does not depend on max_steps)
    r = cli(
        "asr", "finetune", "--spec", recipe, "qat.enabled=true", "qat.momentum=0.5", "trainer.max_steps=3", "--resume"
    )
    assert r.returncode == 0, r.stderr
    r = cli(
        "asr",
        "finetune",
        "--spec",
        recipe,
        "qat.enabled=true",
        "qat.momentum=0.5",
        "trainer.max_steps=3",
        f"trainer.out_dir={d / 'qat3'}",
    )
    assert r.returncode == 0, r.stderr
    resumed, straight = (checkpoint_ranges(load_model(d / x / "final.pt").extra) for x in ("qat", "qat3"))
    assert resumed == straight and resumed != ranges

    r = cli("asr", "finetune", "--spec", recipe, "qat.momentum=0")
    assert r.returncode == 2 and "qat: momentum must be in (0, 1], got 0.0" in r.stderr


def test_export_library_call_takes_typed_options(data, tmp_path):
    """speechtao.export.asr.export_model: an ExportOptions dataclass, no argparse namespace; errors are raised."""
    from speechtao.errors import InputError
    from speechtao.export.asr import ExportOptions, export_model

    d, ckpt, manifest = data
    loaded = load_model(ckpt)
    with pytest.raises(InputError, match="needs --calib MANIFEST"):
        export_model(loaded, "onnx-int8", tmp_path / "m.int8.onnx", ExportOptions())
    with pytest.raises(InputError, match="export format 'onnx-fp8' is unknown"):
        export_model(loaded, "onnx-fp8", tmp_path / "m.onnx")
    with pytest.raises(InputError, match="calib_utterances must be >= 1"):
        ExportOptions(calib=manifest, calib_utterances=0)
    r = export_model(loaded, "onnx-int8", tmp_path / "m.int8.onnx", ExportOptions(calib=manifest, calib_utterances=1))
    assert r.format == "onnx-int8" and r.path == tmp_path / "m.int8.onnx" and r.path.is_file()
    assert r.quant.utterances == 1 and r.quant.overridden == [] and (tmp_path / "tokens.txt").is_file()
