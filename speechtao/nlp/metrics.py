"""Classification metrics of the NLP tasks: per-class precision, recall, F1, macro averages, accuracy."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def classification_report(gold: Sequence[int], pred: Sequence[int], labels: Sequence[str]) -> dict:
    """Per-class precision/recall/F1/support, macro averages (over classes with support or predictions),
    and accuracy. ``gold``/``pred`` are class indices into ``labels``."""
    g = np.asarray(gold, dtype=np.int64)
    p = np.asarray(pred, dtype=np.int64)
    per = {}
    for i, name in enumerate(labels):
        tp = int(((g == i) & (p == i)).sum())
        fp = int(((g != i) & (p == i)).sum())
        fn = int(((g == i) & (p != i)).sum())
        prec = tp / (tp + fp) if tp + fp else 0.0
        rec = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
        per[name] = {"precision": prec, "recall": rec, "f1": f1, "support": tp + fn}
    present = [v for v in per.values() if v["support"] > 0]
    macro = {k: float(np.mean([v[k] for v in present])) if present else 0.0 for k in ("precision", "recall", "f1")}
    return {
        "per_class": per,
        "macro": macro,
        "accuracy": float((g == p).mean()) if len(g) else 0.0,
        "count": int(len(g)),
    }


def format_report(title: str, report: dict) -> str:
    """A fixed-width table of :func:`classification_report` (or any report with per_class/macro)."""
    lines = [title, f"{'label':<12}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>10}"]
    for name, v in report["per_class"].items():
        lines.append(f"{name:<12}{v['precision']:>10.4f}{v['recall']:>10.4f}{v['f1']:>10.4f}{v['support']:>10d}")
    m = report["macro"]
    lines.append(f"{'macro avg':<12}{m['precision']:>10.4f}{m['recall']:>10.4f}{m['f1']:>10.4f}")
    if "accuracy" in report:
        lines.append(f"{'accuracy':<12}{report['accuracy']:>30.4f}{report.get('count', 0):>10d}")
    return "\n".join(lines)
