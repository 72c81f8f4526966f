"""`speechtao asr info / export --format nemo / import-nemo` through the CLI.

One test runs the installed entry point in a subprocess; the others call ``speechtao.cli.main`` in-process
(same parser, same error-to-exit-code mapping) to avoid paying torch's import per command.
"""

import json
import subprocess
import sys

from speechtao.cli import main


def cli(capsys, *args):
    rc = main(list(args))
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_info_quartznet_15x5_reports_published_size():
    r = subprocess.run(
        [sys.executable, "-m", "speechtao", "asr", "info", "--model", "quartznet_15x5"], capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr
    assert "18.9M = 18,924,381" in r.stdout and "2x" in r.stdout and "64 log-mel" in r.stdout


def test_info_citrinet_256_json(capsys):
    rc, out, _ = cli(capsys, "asr", "info", "--model", "citrinet_256", "--json")
    info = json.loads(out)
    assert rc == 0 and abs(info["parameters"]["total"] - 10_259_729) <= 0.01 * 10_259_729
    assert info["subsampling_factor"] == 8 and info["output_frame_ms"] == 80.0
    assert info["vocabulary"] == {"type": "sentencepiece", "size": 1024, "trained": False}
    assert (
        info["features"]["n_mels"] == 80 and info["macs_per_second"]["total"] > info["macs_per_second"]["decoder"] > 0
    )


def test_export_import_info_round_trip(tmp_path, capsys):
    nemo, ckpt = str(tmp_path / "qs.nemo"), str(tmp_path / "qs.ckpt")
    rc, out, err = cli(capsys, "asr", "export", "--model", "quartznet_small", "--format", "nemo", "--out", nemo)
    assert rc == 0, err
    rc, out, err = cli(capsys, "asr", "import-nemo", nemo, "--out", ckpt)
    assert rc == 0, err
    assert "2,569,821 parameters, 28-token char vocabulary" in out
    rc, out, err = cli(capsys, "asr", "info", "--model", ckpt, "--json")
    info = json.loads(out)
    assert info["parameters"]["total"] == 2_569_821 and info["source"] == "checkpoint"
    assert info["vocabulary"] == {"type": "char", "size": 28, "trained": True}


def test_bad_model_exits_2_with_the_fix(tmp_path, capsys):
    (tmp_path / "junk.ckpt").write_bytes(b"PK\x03\x04 not really a zip")
    rc, _, err = cli(capsys, "asr", "info", "--model", str(tmp_path / "junk.ckpt"))
    assert rc == 2 and "junk.ckpt: cannot read the checkpoint, the file is truncated or corrupt" in err
    rc, _, err = cli(capsys, "asr", "info", "--model", str(tmp_path / "junk.ckpt"), "--vocab-size", "9")
    assert rc == 2 and "--vocab-size applies to presets only" in err


def test_info_on_whisper_starter_reports_transformer_layers(capsys):
    from speechtao.cli import main

    assert main(["asr", "info", "--model", "models/whisper_tiny_en_ctc_synth.pt"]) == 0
    out = capsys.readouterr().out
    assert "whisper, 4 encoder transformer layers" in out and "7,645,085" in out
    assert "not counted for transformer encoders" in out
