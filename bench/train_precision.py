"""Training-step time of an NLP encoder in fp32 and in bf16 autocast, through speechtao's own Trainer.

    python bench/train_precision.py                         # MiniLM, 16 lines of 34 word pieces, 2 threads
    python bench/train_precision.py --encoder PATH --batch-size 16 --length 34 --steps 40 --threads 2

The same token-tagging model (encoder + two heads, word-piece embeddings frozen as the punctuation recipe does)
is trained twice from the same weights with the Trainer (``trainer.precision`` fp32, then bf16) on random
word pieces; every step is time-stamped as the task's loss is computed, and the first ``--warmup`` steps are
not counted. Prints one table: seconds per step (median) and the ratio to fp32. What bf16 does to quality
is measured by the recipes themselves (docs/benchmarks.md, language tasks). On a CPU without native bf16 the Trainer runs the
second row in fp32 too, and says so.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

from speechtao.nlp.encoder import load_encoder
from speechtao.nlp.heads import TokenTaggingNet
from speechtao.train.loop import Trainer, TrainerSpec, TrainTask
from speechtao.train.optim import OptimSpec
from speechtao.train.precision import cpu_has_native_bf16
from speechtao.train.schedule import ScheduleSpec


class RandomTagging(TrainTask):
    """Tag random word pieces (the labels are a function of the piece id; only the step time is read)."""

    def __init__(self, net: nn.Module, batch_size: int, length: int, steps: int, vocab: int):
        self.model, self.batch_size, self.length, self.steps, self.vocab = net, batch_size, length, steps, vocab
        self.stamps: list[float] = []

    def num_batches(self, epoch):
        return self.steps

    def train_batches(self, epoch, start_index):
        g = torch.Generator().manual_seed(epoch)
        for _ in range(start_index, self.steps):
            ids = torch.randint(1000, self.vocab, (self.batch_size, self.length), generator=g)
            yield ids, torch.ones_like(ids), ids % 4, (ids // 7) % 2

    def loss(self, model, batch):
        ids, mask, y1, y2 = batch
        a, b = model(ids, mask, torch.zeros_like(ids))
        self.stamps.append(time.perf_counter())
        return nn.functional.cross_entropy(a.flatten(0, 1), y1.flatten()) + nn.functional.cross_entropy(
            b.flatten(0, 1), y2.flatten()
        )

    def validate(self):  # the Trainer validates once at the end and needs its monitored metric; nothing is scored
        return {"loss": 0.0}

    def payload(self):
        return {"state_dict": self.model.state_dict()}


def run(net: nn.Module, precision: str, args, vocab: int) -> tuple[float, list[str]]:
    task = RandomTagging(copy.deepcopy(net), args.batch_size, args.length, args.steps, vocab)
    lines: list[str] = []
    with tempfile.TemporaryDirectory() as out:
        spec = TrainerSpec(
            out_dir=Path(out),
            max_steps=args.steps,
            max_epochs=1,
            device="cpu",
            log_every=1,
            checkpoint_every=10**6,
            keep_last=1,
            monitor="loss",
            precision=precision,
        )
        Trainer(task, spec, OptimSpec(name="adamw", lr=1e-4), ScheduleSpec(warmup_steps=1), log=lines.append).fit()
    steps = [b - a for a, b in zip(task.stamps, task.stamps[1:])][args.warmup :]
    return statistics.median(steps), [line for line in lines if "precision" in line or "device" in line]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--encoder", default="minilm")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--length", type=int, default=34, help="word pieces per line (the punct data's mean is ~30)")
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    encoder, tokenizer, _ = load_encoder(args.encoder)
    net = TokenTaggingNet(encoder, {"punct": 4, "capit": 2}, head_layers=2)
    encoder.embeddings.word_embeddings.weight.requires_grad_(False)
    print(
        f"CPU native bf16: {cpu_has_native_bf16()}; {args.threads} threads; batch {args.batch_size} x "
        f"{args.length} pieces; {args.steps} steps ({args.warmup} not counted)"
    )
    rows = []
    for precision in ("fp32", "bf16"):
        s, notes = run(net, precision, args, len(tokenizer))
        rows.append((precision, s))
        for note in notes:
            print("  " + note)
    base = rows[0][1]
    print("\n| precision | s per step (median) | speed-up |\n|---|---|---|")
    for precision, s in rows:
        print(f"| {precision} | {s:.3f} | {base / s:.2f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
