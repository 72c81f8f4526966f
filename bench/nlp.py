"""Quality and CPU latency per request of the NLP models across runtimes, in one table from one run.

    python bench/nlp.py --task punct runs/punct/model data/punct/test [runs/punct_pruned] \
                        --task ner runs/ner/model data/ner/test \
                        --task textcls runs/textcls/model data/textcls/test.tsv \
                        --task qa runs/qa/model data/qa/test.json \
                        [--max-samples 300] [--requests 40] [--threads 1] [--work /tmp/speechtao-bench-nlp]

For every ``--task NAME MODEL DATA [PRUNED]`` the model folder is exported (ONNX FP32 + dynamic INT8, into
``--work``) and each variant is scored on the first ``--max-samples`` examples of DATA with the task's own
``evaluate`` (the numbers ``speechtao <task> evaluate`` prints), then timed on ``--requests`` single-example
requests (batch 1, one sentence / question each, tokenization included; median and p90 after 3 warm-up calls).
Variants: PyTorch FP32, ORT FP32, ORT INT8, and with PRUNED the pruned folder in PyTorch and as ORT INT8.
PyTorch and ONNX Runtime use the same number of intra-op threads (``--threads``).

Results go to stdout as a Markdown table and to ``--out`` as JSON. On a shared machine absolute times are
pessimistic; the ratios between rows of one run are what to read.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from speechtao.export import nlp as nlp_export  # noqa: E402
from speechtao.nlp import model_io  # noqa: E402

PUNCT_METRICS = ("punct_marks_macro_f1", "capit_f1", "punct_macro_f1")  # marks only first; O-inclusive last


# Each adapter: load(path) -> object; data(path, n) -> examples; quality(obj, examples) -> {metric: value};
# request(obj, example) -> None (one call as a server would make it); metrics: the headline metric names.
def _punct():
    from speechtao.nlp import punct

    return {
        "load": lambda p: model_io.load_model(p, punct.TASK),
        "data": punct.read_dataset,
        "quality": lambda m, exs: {k: v for k, v in punct.evaluate(m, exs).items() if k in PUNCT_METRICS},
        "request": lambda m, ex: punct.predict(m, [ex.words]),
        "metrics": PUNCT_METRICS,
    }


def _ner():
    from speechtao.nlp import ner

    return {
        "load": lambda p: model_io.load_model(p, ner.TASK),
        "data": ner.read_dataset,
        "quality": lambda m, exs: {"entity_f1": ner.evaluate(m, exs)["f1"]},
        "request": lambda m, ex: ner.predict(m, [ex.words]),
        "metrics": ("entity_f1",),
    }


def _textcls():
    from speechtao.nlp import textcls

    return {
        "load": lambda p: model_io.load_model(p, textcls.TASK),
        "data": lambda p, n: textcls.read_tsv(p, None, n),
        "quality": lambda m, exs: {k: v for k, v in textcls.evaluate(m, exs).items() if k in ("accuracy", "macro_f1")},
        "request": lambda m, ex: textcls.predict(m, [ex.text]),
        "metrics": ("accuracy", "macro_f1"),
    }


def _qa():
    from speechtao.nlp import qa

    return {
        "load": lambda p: qa.QAModel(model_io.load_model(p, qa.TASK)),
        "data": qa.read_examples,
        "quality": lambda m, exs: {k: v for k, v in qa.evaluate(m, exs)[0].items() if k in ("exact", "f1")},
        "request": lambda m, ex: m.predict([ex]),
        "metrics": ("exact", "f1"),
    }


ADAPTERS: dict[str, Callable[[], dict]] = {"punct": _punct, "ner": _ner, "textcls": _textcls, "qa": _qa}


def _source_stamp(model_dir: str) -> dict:
    """What identifies the exported weights: the model file's resolved path, size and modification time."""
    src = Path(model_dir)
    src = src / model_io.MODEL_FILE if src.is_dir() else src
    st = src.stat()
    return {"model": str(src.resolve()), "bytes": st.st_size, "mtime_ns": st.st_mtime_ns}


def _export(model_dir: str, out: Path) -> Path:
    """Export ``model_dir`` into ``out`` unless an export of these very weights is already there (an export of
    another model, or of an older file at the same path, is replaced)."""
    stamp_file = out / "bench_source.json"
    stamp = _source_stamp(model_dir)
    if not (
        (out / model_io.ONNX_INT8_FILE).is_file()
        and stamp_file.is_file()
        and json.loads(stamp_file.read_text()) == stamp
    ):
        stamp_file.unlink(missing_ok=True)
        nlp_export.export_onnx(model_io.load_model(model_dir), out, int8=True)  # (the task's options travel in `extra`)
        stamp_file.write_text(json.dumps(stamp) + "\n")
    return out


def _latency(adapter: dict, obj: Any, examples: list, n: int) -> tuple[float, float]:
    reqs = examples[:n]
    for ex in reqs[:3]:
        adapter["request"](obj, ex)
    times = []
    for ex in reqs:
        t0 = time.perf_counter()
        adapter["request"](obj, ex)
        times.append((time.perf_counter() - t0) * 1000)
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, int(0.9 * len(times)))]


def _params(obj: Any) -> int | None:
    model = getattr(obj, "model", obj)
    net = getattr(model, "net", None)
    if isinstance(net, torch.nn.Module):
        return sum(p.numel() for p in net.parameters())
    return None


def bench_task(name: str, model_dir: str, data: str, pruned: str | None, args) -> list[dict]:
    adapter = ADAPTERS[name]()
    work = Path(args.work) / name
    examples = adapter["data"](data, args.max_samples)
    variants = [("PyTorch FP32", model_dir)]
    exp = _export(model_dir, work / "full")
    variants += [("ORT FP32", str(exp / model_io.ONNX_FILE)), ("ORT INT8", str(exp / model_io.ONNX_INT8_FILE))]
    if pruned:
        pexp = _export(pruned, work / "pruned")
        variants += [("pruned PyTorch FP32", pruned), ("pruned ORT INT8", str(pexp / model_io.ONNX_INT8_FILE))]
    rows = []
    for label, path in variants:
        obj = adapter["load"](path)
        if isinstance(getattr(obj, "net", None), model_io.OnnxNet):
            obj.net = model_io.OnnxNet(obj.net.path, threads=args.threads)
        elif isinstance(getattr(getattr(obj, "model", None), "net", None), model_io.OnnxNet):
            obj.model.net = model_io.OnnxNet(obj.model.net.path, threads=args.threads)
        t0 = time.perf_counter()
        quality = adapter["quality"](obj, examples)
        eval_s = time.perf_counter() - t0
        med, p90 = _latency(adapter, obj, examples, args.requests)
        size = Path(path).stat().st_size if path.endswith(".onnx") else None
        rows.append(
            {
                "task": name,
                "variant": label,
                "path": path,
                **{k: round(v, 4) for k, v in quality.items()},
                "latency_ms_median": round(med, 2),
                "latency_ms_p90": round(p90, 2),
                "eval_seconds": round(eval_s, 1),
                "examples": len(examples),
                "parameters": _params(obj),
                "onnx_bytes": size,
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    base = rows[0]["latency_ms_median"]
    for r in rows:
        r["speedup_vs_pytorch"] = round(base / r["latency_ms_median"], 2)
    return rows


def markdown(rows: list[dict]) -> str:
    metric_names = []
    for r in rows:
        for k in (*PUNCT_METRICS, "entity_f1", "accuracy", "macro_f1", "exact", "f1"):
            if k in r and k not in metric_names:
                metric_names.append(k)
    head = ["task", "variant", *metric_names, "ms/request (median)", "p90", "speed-up", "parameters"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        vals = [
            r["task"],
            r["variant"],
            *[f"{r[k]:.4f}" if k in r else "" for k in metric_names],
            f"{r['latency_ms_median']:.1f}",
            f"{r['latency_ms_p90']:.1f}",
            f"{r['speedup_vs_pytorch']:.2f}x",
            f"{r['parameters']:,}" if r["parameters"] else "-",
        ]
        lines.append("| " + " | ".join(vals) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--task",
        nargs="+",
        action="append",
        required=True,
        metavar="ARG",
        help="NAME MODEL DATA [PRUNED] (NAME: punct, ner, textcls, qa); repeat per task",
    )
    ap.add_argument("--max-samples", type=int, default=300, help="evaluation examples per task (default 300)")
    ap.add_argument("--requests", type=int, default=40, help="timed single-example requests (default 40)")
    ap.add_argument("--threads", type=int, default=1, help="intra-op threads for PyTorch and ORT (default 1)")
    ap.add_argument("--work", default="/tmp/speechtao-bench-nlp", help="folder for the exports")
    ap.add_argument("--out", default=None, help="write the rows as JSON here")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = []
    for spec in args.task:
        if spec[0] not in ADAPTERS or len(spec) not in (3, 4):
            ap.error(f"--task {' '.join(spec)}: expected NAME MODEL DATA [PRUNED] with NAME in {list(ADAPTERS)}")
        rows += bench_task(spec[0], spec[1], spec[2], spec[3] if len(spec) == 4 else None, args)
    print(markdown(rows))
    if args.out:
        Path(args.out).write_text(json.dumps({"threads": args.threads, "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
