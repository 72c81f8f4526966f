"""Cost of one QA training step per encoder preset (MiniLM vs mpnet-base), measured in one run.

    python bench/nlp_encoders.py --data data/squad/train.json [--encoders minilm,mpnet-base] [--steps 4]
                                 [--batch-size 16] [--max-length 256] [--precision bf16] [--threads 1]

Builds the QA net (span head) of each encoder, cuts the first questions of ``--data`` (SQuAD JSON) into the recipe's
windows, and times full optimizer steps (forward, backward, AdamW) on the same batches of ``--batch-size``
windows, under bf16 autocast when the CPU has native bf16. The encoders take turns step by step (one warm-up step
each first), so load changes on a shared machine hit both alike; the table gives the median seconds per step and
the ratio to the first encoder. Read the ratio; absolute times depend on the machine's load.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from speechtao.nlp.encoder import load_encoder  # noqa: E402
from speechtao.nlp.qa import QAOptions, batch_loss, make_net, window_options  # noqa: E402
from speechtao.nlp.qa_windows import collate_windows, make_windows  # noqa: E402
from speechtao.nlp.squad import read_squad  # noqa: E402
from speechtao.train.precision import amp_dtype, autocast  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="SQuAD JSON (e.g. data/squad/train.json)")
    ap.add_argument("--encoders", default="minilm,mpnet-base")
    ap.add_argument("--steps", type=int, default=4, help="timed steps per encoder (after one warm-up step)")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--precision", default="bf16", choices=["bf16", "fp32"])
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    examples = read_squad(args.data, args.batch_size * (args.steps + 1) * 2)
    nets = {}
    for name in args.encoders.split(","):
        enc, tok, info = load_encoder(name)
        torch.manual_seed(0)
        net = make_net(enc, 1, 0.1).train()
        windows = make_windows(tok, examples, window_options(args.max_length, QAOptions()))
        batches = [
            collate_windows(windows[i : i + args.batch_size], tok.pad_token_id)
            for i in range(0, args.batch_size * (args.steps + 1), args.batch_size)
        ]
        opt = torch.optim.AdamW(net.parameters(), lr=1e-5)
        nets[name] = (net, opt, batches, info)
    dtype = amp_dtype(args.precision, torch.device("cpu"))
    times: dict[str, list[float]] = {name: [] for name in nets}
    for step in range(args.steps + 1):
        for name, (net, opt, batches, _) in nets.items():
            t0 = time.perf_counter()
            with autocast(torch.device("cpu"), dtype):
                loss = batch_loss(net, batches[step])
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            if step:  # step 0 warms up
                times[name].append(time.perf_counter() - t0)
    base = None
    print(f"| encoder | parameters | s/step ({args.batch_size} windows, {args.max_length} tokens max) | ratio |")
    print("|---|---:|---:|---:|")
    for name, (_, _, batches, info) in nets.items():
        med = statistics.median(times[name])
        base = base or med
        tokens = sum(int(b["attention_mask"].sum()) for b in batches[1:]) / args.steps
        print(f"| {name} | {info.parameters / 1e6:.1f}M | {med:.2f} ({tokens:.0f} tokens/step) | {med / base:.2f}x |")
    print(f"precision {args.precision} ({'autocast ' + str(dtype) if dtype else 'fp32'}), threads {args.threads}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
