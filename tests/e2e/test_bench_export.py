"""bench/export.py end to end on the shipped tiny starter, with a pruned checkpoint for the pruned rows."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))


def test_export_bench_table_with_a_pruned_checkpoint(tmp_path, capsys):
    import export

    starter = ROOT / "models/quartznet_tiny_synth.pt"
    pruned = tmp_path / "pruned.pt"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "speechtao",
            "asr",
            "prune",
            "--model",
            str(starter),
            "--ratio",
            "0.5",
            "--out",
            str(pruned),
        ],
        check=True,
        capture_output=True,
    )
    out = tmp_path / "table"
    rc = export.main(
        [
            "--model",
            str(starter),
            "--pruned-model",
            str(pruned),
            "--seconds",
            "1",
            "--repeats",
            "1",
            "--threads",
            "1",
            "--no-nemo",
            "--no-sherpa",
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    rows = {r["variant"]: r for r in json.loads(out.with_suffix(".json").read_text())}
    assert {
        "PyTorch FP32",
        "ORT FP32",
        "ORT INT8 PTQ",
        "ORT INT8 QAT",
        "PyTorch FP32 pruned (retrained)",
        "ORT FP32 pruned (retrained)",
        "ORT INT8 PTQ pruned (retrained)",
    } <= set(rows)
    assert rows["PyTorch FP32 pruned (retrained)"]["params"] < 0.6 * rows["PyTorch FP32"]["params"]
    assert rows["ORT INT8 PTQ pruned (retrained)"]["size_mb"] < rows["ORT FP32 pruned (retrained)"]["size_mb"]
    assert all(r["rtf_1t"] > 0 for r in rows.values())
    assert "| ORT INT8 PTQ pruned (retrained) |" in capsys.readouterr().out
