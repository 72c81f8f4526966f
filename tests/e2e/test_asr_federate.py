"""`speechtao asr federate` through the real CLI on NVIDIA FLARE's simulator: two sites of a few espeak-ng
utterances each (different sentences), a tiny model, 2 rounds of 3 local steps. The global model is exactly the
step-weighted average of the sites' last local models (FedAvg), only weights travel, the FLARE job folder is
written, and the baselines (each site alone, pooled) are scored on both sites' test splits."""

import json
import os
import shutil
import subprocess
import sys

import pytest
import soundfile as sf
import torch
import yaml

pytest.importorskip("nvflare", reason="the federated extra (nvflare) is not installed: pip install '.[federated]'")
if shutil.which("espeak-ng") is None:
    if os.environ.get("SPEECHTAO_REQUIRE_TOOLS"):
        raise RuntimeError("espeak-ng is required (apt-get install espeak-ng)")
    pytest.skip("espeak-ng is not installed (apt-get install espeak-ng)", allow_module_level=True)

SITES = {
    "home": ["turn on the light", "open the door", "close the window"],
    "news": ["rain falls in the north", "the market closed higher", "a new bridge opened today"],
}
TINY = {
    "preprocessor": {"n_mels": 40, "window_size": 0.025, "window_stride": 0.01},
    "blocks": [
        {"filters": 32, "repeat": 1, "kernel": 11, "stride": 2, "residual": False},
        {"filters": 32, "repeat": 1, "kernel": 11},
        {"filters": 48, "repeat": 1, "kernel": 1, "residual": False, "separable": False},
    ],
}


def cli(*args):
    env = dict(os.environ, SPEECHTAO_THREADS="1", OMP_NUM_THREADS="1")
    return subprocess.run(
        [sys.executable, "-m", "speechtao", *map(str, args)], capture_output=True, text=True, env=env, timeout=600
    )


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from speechtao.asr.checkpoint import model_payload, save_model
    from speechtao.asr.models import ASRModelConfig, build_model
    from speechtao.text.tokenizers import CharTokenizer

    d = tmp_path_factory.mktemp("fed")
    for site, texts in SITES.items():
        rows = []
        for i, text in enumerate(texts):
            wav = d / site / f"u{i}.wav"
            wav.parent.mkdir(parents=True, exist_ok=True)
            subprocess.run(["espeak-ng", "-w", str(wav), text], check=True)
            rows.append({"audio_filepath": wav.name, "duration": sf.info(str(wav)).duration, "text": text})
        (d / site / "all.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    torch.manual_seed(0)
    tok = CharTokenizer()
    save_model(d / "starter.pt", model_payload(build_model(ASRModelConfig.from_dict(TINY), tok.vocab_size), tok))
    recipe = {
        "init_from": "set-by-federate",
        "data": {"train": ["x"], "validation": ["x"], "batch_size": 3},
        "optim": {"name": "adamw", "lr": 3e-3},
        "schedule": {"warmup_steps": 1},
        "trainer": {"out_dir": "x", "max_steps": 1, "log_every": 1, "val_every": 3, "seed": 1},
    }
    (d / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    spec = {
        "starter": str(d / "starter.pt"),
        "recipe": str(d / "recipe.yaml"),
        "sites": [{"name": s, "train": str(d / s / "all.jsonl"), "test": str(d / s / "all.jsonl")} for s in SITES],
        "out_dir": str(d / "out"),
        "rounds": 2,
        "local_steps": 3,
        "eval_batch_size": 3,
    }
    (d / "fed.yaml").write_text(yaml.safe_dump(spec))
    r = cli("asr", "federate", "--spec", d / "fed.yaml")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return d, r


def test_global_model_is_the_average_of_the_sites(setup):
    from speechtao.asr.checkpoint import load_model

    d, _ = setup
    glob = load_model(d / "out" / "federated.pt").model.state_dict()
    last = [load_model(d / "out" / "sites" / s / "round-001" / "train" / "final.pt").model.state_dict() for s in SITES]
    first = [load_model(d / "out" / "sites" / s / "round-000" / "train" / "final.pt").model.state_dict() for s in SITES]
    starts = [load_model(d / "out" / "sites" / s / "round-001" / "global.pt").model.state_dict() for s in SITES]
    floats = [k for k, v in glob.items() if v.is_floating_point()]
    for k in floats:  # both sites trained 3 steps: equal weights in the average
        assert torch.allclose(glob[k], (last[0][k] + last[1][k]) / 2, atol=1e-6), k
        # round 1 started every site from the average of round 0
        assert torch.allclose(starts[0][k], (first[0][k] + first[1][k]) / 2, atol=1e-6), k
        assert torch.equal(starts[0][k], starts[1][k]), k
    assert any(not torch.equal(last[0][k], last[1][k]) for k in floats)  # the sites really trained apart


def test_report_job_folder_and_baselines(setup):
    d, r = setup
    report = json.loads((d / "out" / "report.json").read_text())
    assert [row["model"] for row in report["rows"]] == ["starter", "federated", "home alone", "news alone", "pooled"]
    for row in report["rows"]:
        assert set(SITES) <= set(row) and all(0 <= row[s]["wer"] for s in SITES)
    md = (d / "out" / "report.md").read_text()
    assert "| federated |" in md and "| pooled |" in md and "WER (CER)" in md
    job = d / "out" / "job" / "speechtao_asr_federated"
    assert (job / "meta.json").exists() and list(job.rglob("config_fed_client.json"))
    assert "nvflare job submit -j" in r.stdout
    # each site's process read only its own manifests
    plan = json.loads((d / "out" / "plan.json").read_text())
    assert [v["train"] for v in plan["sites"].values()] == [str(d / s / "all.jsonl") for s in SITES]
