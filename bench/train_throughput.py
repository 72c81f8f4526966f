"""Training throughput: speechtao's loop vs NeMo's own Lightning training, same model, data and batch size.

Both train the same architecture (``--preset``, default ``quartznet_small``: QuartzNet 5x5 at 256 channels,
NeMo's 28 characters) on the same manifest with the same batch size, AdamW, no augmentation, no data-loading
workers, on the CPU (or ``--device cuda``). Each optimizer step is time-stamped (speechtao: the per-step log
line; NeMo: a Lightning callback); the first ``--warmup`` steps are not counted. Audio seconds count real
audio, not padding. Prints one table: wall-clock rates and, robust to other load on the machine, CPU seconds
per step, median over ``--repeats`` rounds that run every system back to back (a change of load hits all of
them), and each system's loss at a few fixed steps of its first round (the same seed in every round, so the
speechtao variants show whether an option changed the loss curve). speechtao runs as ``--variants``: ``plain``
(PyTorch's depthwise convs, features every step), ``fft`` (``fft_depthwise``: the depthwise convs through the
FFT) and ``fft+cache`` (plus ``data.cache_features``: log-mel features once per utterance, before the first step;
that one-time cost is printed, not counted in the steps). ``--precision fp32 bf16`` runs each system in both
(speechtao: ``trainer.precision``, autocast on a CPU with native bf16, features and CTC loss in fp32; NeMo:
Lightning's ``bf16-mixed``).

    python bench/train_throughput.py                      # makes 48 espeak-ng utterances in a temp folder
    python bench/train_throughput.py --manifest train.jsonl --batch-size 8 --steps 30 --threads 2
    python bench/train_throughput.py --steps 20 --warmup 4 --threads 1 --repeats 3   # docs/benchmarks.md
    python bench/train_throughput.py --precision fp32 bf16 --skip-nemo --variants fft
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

SENTENCES = [
    "turn left at the next corner",
    "open the door to the garden",
    "the meeting starts at nine tomorrow",
    "please send the report before noon",
    "stop the music and close the window",
    "the train to the city is late",
    "call me back when you are free",
    "the weather will be cold and windy",
    "bring two cups of coffee please",
    "switch off the lights in the kitchen",
    "the children played in the park",
    "read the last page again",
]


def make_corpus(folder: Path, n: int) -> Path:
    """``n`` espeak-ng utterances (two or three sentences each, 3-6 s) and their manifest."""
    import soundfile as sf

    if shutil.which("espeak-ng") is None:
        sys.exit("espeak-ng is not installed: pass --manifest with your own data")
    rng = np.random.default_rng(0)
    lines = []
    for i in range(n):
        text = " and ".join(rng.choice(SENTENCES, 2, replace=False))
        wav = folder / f"u{i:03d}.wav"
        subprocess.run(["espeak-ng", "-s", str(int(rng.integers(150, 190))), "-w", str(wav), text], check=True)
        info = sf.info(str(wav))
        lines.append({"audio_filepath": wav.name, "duration": info.frames / info.samplerate, "text": text})
    manifest = folder / "train.jsonl"
    manifest.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return manifest


def rate(stamps: list[tuple[float, float]], seconds: list[float], sizes: list[int], warmup: int) -> dict:
    """Throughput over the steps after ``warmup``. ``stamps[i]`` = (wall, process CPU) time at the end of step i.

    CPU seconds per step (all threads of this process) stay meaningful on a machine shared with other work,
    where wall-clock rates fall with the load.
    """
    t = stamps[-1][0] - stamps[warmup - 1][0]
    cpu = stamps[-1][1] - stamps[warmup - 1][1]
    n = len(stamps) - warmup
    return {
        "steps": n,
        "s": t,
        "steps_per_s": n / t,
        "utt_per_s": sum(sizes[warmup:]) / t,
        "audio_s_per_s": sum(seconds[warmup:]) / t,
        "cpu_s_per_step": cpu / n,
        "audio_s_per_cpu_s": sum(seconds[warmup:]) / cpu,
    }


VARIANTS = {  # speechtao settings compared: (fft_depthwise, data.cache_features)
    "plain": (False, False),
    "fft": (True, False),
    "fft+cache": (True, True),
}


def bench_speechtao(manifest: Path, args, out: Path, precision: str = "fp32", variant: str = "fft") -> dict:
    from speechtao.asr.train import ASRTrainSpec, build
    from speechtao.spec import spec_from_dict

    spec = spec_from_dict(
        ASRTrainSpec,
        {
            "model": {"preset": args.preset},
            "data": {
                "train": [str(manifest)],
                "validation": [str(manifest)],
                "batch_size": args.batch_size,
                "max_duration": 60.0,
                "bucket_batches": 1000,
                "cache_features": VARIANTS[variant][1],
            },
            "optim": {"name": "adamw", "lr": 1e-3},
            "trainer": {
                "out_dir": str(out),
                "max_steps": args.steps,
                "log_every": 1,
                "device": args.device,
                "val_every": 10**6,
                "checkpoint_every": 10**6,
                "max_epochs": 10**4,
                "precision": precision,
            },
            "fft_depthwise": VARIANTS[variant][0],
        },
    )
    stamps: list[float] = []
    losses: list[float] = []

    def log(line: str) -> None:
        if line.startswith("epoch") and " loss " in line and " val " not in line:
            stamps.append((time.perf_counter(), time.process_time()))
            word = line.split(" loss ")[1].split()[0]
            losses.append(float(word) if word[0].isdigit() else float("nan"))
        elif line.startswith("precision ") or line.startswith("data.cache_features"):
            print(line, flush=True)  # fp32 fallback on this CPU; the one-time cost of the feature cache

    trainer = build(spec, log=log)
    seconds, sizes = [], []
    task = trainer.task
    stats = task.batch_stats

    def counting(batch):
        s = stats(batch)
        seconds.append(s["audio_s"])
        sizes.append(int(s["utterances"]))
        return s

    task.batch_stats = counting
    trainer.fit()
    return {**rate(stamps, seconds, sizes, args.warmup), "losses": losses}


def bench_nemo(manifest: Path, args, precision: str = "fp32") -> dict:
    import logging

    import lightning.pytorch as pl
    from nemo.collections.asr.models import EncDecCTCModel
    from nemo.utils import logging as nemo_logging
    from omegaconf import OmegaConf

    from speechtao.asr.checkpoint import load_model
    from speechtao.asr.nemo_io import config_to_nemo

    nemo_logging.setLevel(logging.ERROR)
    cfg = config_to_nemo(load_model(args.preset))
    cfg.pop("target", None)
    cfg["train_ds"] = {
        "manifest_filepath": str(manifest),
        "labels": cfg["labels"],
        "sample_rate": 16000,
        "batch_size": args.batch_size,
        "shuffle": True,
        "num_workers": 0,
        "max_duration": 60.0,
        "trim_silence": False,
        "pin_memory": False,
    }
    cfg["optim"] = {"name": "adamw", "lr": 1e-3, "weight_decay": 1e-3}
    stamps: list[float] = []
    seconds, sizes, losses = [], [], []

    class Stamp(pl.Callback):
        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            stamps.append((time.perf_counter(), time.process_time()))
            losses.append(float(outputs["loss"]))
            seconds.append(float(batch[1].sum()) / 16000)
            sizes.append(int(batch[1].numel()))

    trainer = pl.Trainer(
        max_steps=args.steps,
        precision="bf16-mixed" if precision == "bf16" else "32-true",
        accelerator="gpu" if args.device == "cuda" else "cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[Stamp()],
        num_sanity_val_steps=0,
        limit_val_batches=0,
    )
    model = EncDecCTCModel(cfg=OmegaConf.create(cfg), trainer=trainer)
    trainer.fit(model)
    return {**rate(stamps, seconds, sizes, args.warmup), "losses": losses}


def loss_at(losses: list[float], steps: list[int]) -> str:
    return " / ".join(f"{losses[k - 1]:.2f}" if k <= len(losses) else "-" for k in steps)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--manifest", type=Path, help="training manifest (default: make espeak-ng utterances)")
    ap.add_argument("--n", type=int, default=48, help="utterances to synthesize without --manifest")
    ap.add_argument("--preset", default="quartznet_small")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--steps", type=int, default=25, help="optimizer steps per system, warmup included")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--skip-nemo", action="store_true")
    ap.add_argument("--precision", nargs="+", default=["fp32"], choices=["fp32", "bf16"], help="one row per precision")
    ap.add_argument(
        "--variants",
        nargs="+",
        default=list(VARIANTS),
        choices=list(VARIANTS),
        help="speechtao settings: plain (PyTorch's depthwise convs, features every step), fft (fft_depthwise), "
        "fft+cache (and data.cache_features)",
    )
    ap.add_argument("--repeats", type=int, default=3, help="rounds of all systems, back to back; medians reported")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        manifest = args.manifest or make_corpus(tmp, args.n)
        durations = [json.loads(x)["duration"] for x in manifest.read_text().splitlines()]
        print(
            f"data: {len(durations)} utterances, mean {np.mean(durations):.2f} s; batch {args.batch_size}; "
            f"{args.steps} steps ({args.warmup} warmup); {args.threads} threads; {args.device}; {args.preset}; "
            f"{args.repeats} rounds; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs at the start",
            flush=True,
        )
        runs: dict[str, list[dict]] = {}
        for r in range(args.repeats):  # the systems interleaved: a load change hits every one of them
            for precision in args.precision:
                for variant in args.variants:
                    name = f"speechtao {precision}, {variant}"
                    out = tmp / f"run_{r}_{precision}_{variant}"
                    runs.setdefault(name, []).append(bench_speechtao(manifest, args, out, precision, variant))
                    print(f"round {r}: {name}: {runs[name][-1]['cpu_s_per_step']:.3f} CPU-s/step", flush=True)
                if not args.skip_nemo:
                    name = f"NeMo 3.0 + Lightning {precision}"
                    runs.setdefault(name, []).append(bench_nemo(manifest, args, precision))
                    print(f"round {r}: {name}: {runs[name][-1]['cpu_s_per_step']:.3f} CPU-s/step", flush=True)
    marks = sorted({1, max(1, args.steps // 4), max(1, args.steps // 2), args.steps})
    base = {p: runs.get(f"NeMo 3.0 + Lightning {p}") for p in args.precision}
    print(
        "\n| system | CPU-s/step (median) | per round | speed-up vs NeMo, CPU-s | steps/s (median) | audio-s per CPU-s "
        f"| loss at steps {', '.join(map(str, marks))} (round 1) |\n|---|---|---|---|---|---|---|"
    )
    for name, rs in runs.items():
        cpu = float(np.median([r["cpu_s_per_step"] for r in rs]))
        ref = base[name.split()[-1] if name.startswith("NeMo") else name.split(",")[0].split()[-1]]
        ratio = f"{float(np.median([r['cpu_s_per_step'] for r in ref])) / cpu:.2f}x" if ref else "-"
        per_round = " ".join(f"{r['cpu_s_per_step']:.2f}" for r in rs)
        print(
            f"| {name} | {cpu:.3f} | {per_round} | {ratio} | "
            f"{float(np.median([r['steps_per_s'] for r in rs])):.3f} | "
            f"{float(np.median([r['audio_s_per_cpu_s'] for r in rs])):.2f} | {loss_at(rs[0]['losses'], marks)} |"
        )
    print(f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs at the end)")


if __name__ == "__main__":
    main()
