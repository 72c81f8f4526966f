"""Transfer learning benchmark: fine-tune the pretrained starter vs train the same architecture from scratch.

Both runs use the same domain data (``data/domain``: train.jsonl to train, test.jsonl to score), the same
recipe (``recipes/asr_domain_finetune.yaml``: batch size, augmentation, schedule, number of optimizer steps)
and so the same compute budget. They differ only in the initial weights (the starter's vs random) and in the
peak learning rate: from scratch gets the pretraining recipe's higher rate by default (``--scratch-lr``), the
rate that architecture was trained with, so the comparison does not handicap it. Prints both WERs and writes
``<out>/transfer.json``.

    python bench/transfer.py                                   # starter models/quartznet_small_synth.pt
    python bench/transfer.py --starter models/quartznet_tiny_synth.pt --steps 200 --lr 2e-3 --out runs/bench_tiny
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--starter", default=str(ROOT / "models/quartznet_small_synth.pt"), help="pretrained checkpoint")
    p.add_argument("--recipe", default=str(ROOT / "recipes/asr_domain_finetune.yaml"), help="asr finetune recipe")
    p.add_argument("--domain", default=str(ROOT / "data/domain"), help="domain corpus folder (made when missing)")
    p.add_argument("--steps", type=int, default=None, help="optimizer steps for both runs (default: the recipe's)")
    p.add_argument("--lr", type=float, default=None, help="peak learning rate of the fine-tune (default: the recipe's)")
    p.add_argument("--scratch-lr", type=float, default=3e-3, help="peak learning rate from scratch (default 3e-3)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--out", default=str(ROOT / "runs/bench_transfer"), help="output folder (replaced)")
    args = p.parse_args(argv)

    import torch

    from speechtao.asr.checkpoint import load_model
    from speechtao.asr.evaluate import EvalOptions, evaluate
    from speechtao.asr.train import ASRFinetuneSpec, ASRTrainSpec
    from speechtao.asr.train import run as run_training
    from speechtao.corpora.domain import make_domain_corpus
    from speechtao.spec import load_spec, spec_from_dict, spec_to_dict
    from speechtao.text.tokenizers import CharTokenizer

    torch.set_num_threads(args.threads)
    out = Path(args.out)
    if out.exists():
        shutil.rmtree(out)
    train, test = Path(args.domain) / "train.jsonl", Path(args.domain) / "test.jsonl"
    if not (train.is_file() and test.is_file()):
        train, test = make_domain_corpus(args.domain)
    common = [f"data.train=[{train}]", f"data.validation=[{test}]"]
    if args.steps is not None:
        common.append(f"trainer.max_steps={args.steps}")

    tuned = [*common, f"init_from={args.starter}", f"trainer.out_dir={out / 'finetune'}"]
    if args.lr is not None:
        tuned.append(f"optim.lr={args.lr}")
    tuned_spec = load_spec(ASRFinetuneSpec, args.recipe, tuned)
    starter = load_model(args.starter)
    if not isinstance(starter.tokenizer, CharTokenizer):
        p.error(
            f"{args.starter}: the starter's vocabulary is not NeMo's characters; this benchmark trains the "
            "scratch model with the character vocabulary, so give a character-vocabulary starter"
        )
    d = spec_to_dict(tuned_spec)
    for key in ("init_from", "freeze_encoder", "layer_lr_decay", "qat", "distill"):  # fine-tune-only fields
        d.pop(key, None)
    d["model"] = {"config": starter.config.to_dict()}
    d["tokenizer"] = {"kind": "char"}
    d["optim"]["lr"] = args.scratch_lr
    d["trainer"]["out_dir"] = str(out / "scratch")
    scratch_spec = spec_from_dict(ASRTrainSpec, d)

    results = {}
    for name, spec in (("finetune", tuned_spec), ("scratch", scratch_spec)):
        t0 = time.perf_counter()
        metrics = run_training(spec)
        ev = evaluate(str(Path(spec.trainer.out_dir) / "final.pt"), test, EvalOptions(batch_size=16)).metrics
        results[name] = {
            "wer": ev["wer"],
            "cer": ev["cer"],
            "steps": metrics["steps"],
            "train_time_s": metrics["train_time_s"],
            "wall_s": round(time.perf_counter() - t0, 1),
            "lr": spec.optim.lr,
        }
    start = evaluate(args.starter, test, EvalOptions(batch_size=16)).metrics
    results["starter"] = {"wer": start["wer"], "cer": start["cer"]}
    ratio = results["scratch"]["wer"] / max(results["finetune"]["wer"], 1e-9)
    results["scratch_over_finetune_wer"] = ratio
    (out / "transfer.json").write_text(json.dumps(results, indent=2) + "\n")

    print(f"{'run':<22} {'WER':>8} {'CER':>8} {'steps':>6} {'train s':>8}")
    print(f"{'starter (no training)':<22} {100 * start['wer']:>7.2f}% {100 * start['cer']:>7.2f}%")
    for name, label in (("finetune", "fine-tuned starter"), ("scratch", "from scratch")):
        r = results[name]
        print(f"{label:<22} {100 * r['wer']:>7.2f}% {100 * r['cer']:>7.2f}% {r['steps']:>6} {r['train_time_s']:>8.0f}")
    print(f"from-scratch WER / fine-tuned WER = {ratio:.2f}x  (wrote {out / 'transfer.json'})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
