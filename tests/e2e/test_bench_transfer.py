"""bench/transfer.py end to end on a tiny domain corpus: both runs train, both are scored, the ratio is written."""

import json
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

pytestmark = pytest.mark.skipif(
    shutil.which("espeak-ng") is None or shutil.which("sox") is None,
    reason="espeak-ng and sox are needed for the domain corpus",
)


def test_transfer_bench_runs_both_arms(tmp_path, capsys):
    import transfer

    from speechtao.corpora.domain import DomainSpec, make_domain_corpus

    make_domain_corpus(tmp_path / "domain", DomainSpec(n_train=6, n_test=3), log=lambda _: None)
    out = tmp_path / "bench"
    rc = transfer.main(
        [
            "--starter",
            str(ROOT / "models/quartznet_tiny_synth.pt"),
            "--domain",
            str(tmp_path / "domain"),
            "--steps",
            "2",
            "--lr",
            "5e-4",
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    result = json.loads((out / "transfer.json").read_text())
    assert result["finetune"]["steps"] == 2 and result["scratch"]["steps"] == 2
    assert result["finetune"]["lr"] == 5e-4 and result["scratch"]["lr"] == 3e-3
    assert result["scratch_over_finetune_wer"] == pytest.approx(
        result["scratch"]["wer"] / max(result["finetune"]["wer"], 1e-9)
    )
    assert "from-scratch WER / fine-tuned WER" in capsys.readouterr().out
