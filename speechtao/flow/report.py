"""What ``speechtao asr flow`` reports: ``report.md``, the terminal table and ``report.png``.

Every function reads the summary :meth:`speechtao.flow.Flow.summary` returns (plain dicts, as in
``report.json``), so a report can be redrawn from a saved ``report.json``.
"""

from __future__ import annotations

from pathlib import Path


def _mb(n: int | None) -> str:
    return "-" if n is None else f"{n / 1e6:.2f} MB"


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.2f}%"


def deployed_vs_finetuned(s: dict) -> dict | None:
    """The deployed (INT8) model against the fine-tuned one and the starter: WER points, parameters, size, speed.
    None until both evaluations are done."""
    rows = {r["eval_stage"]: r for r in s["rows"] if r["status"] == "done"}
    tuned, int8, starter = rows.get("evaluate_finetuned"), rows.get("evaluate_int8"), rows.get("evaluate_starter")
    if tuned is None or int8 is None:
        return None
    out = {
        "finetuned_wer": tuned["wer"],
        "int8_wer": int8["wer"],
        "wer_points": 100 * (int8["wer"] - tuned["wer"]),
        "finetuned_dev_wer": tuned.get("dev_wer"),
        "int8_dev_wer": int8.get("dev_wer"),
        "finetuned_params": tuned["params"],
        "int8_params": int8["params"],
        "finetuned_size_bytes": tuned["size_bytes"],
        "int8_size_bytes": int8["size_bytes"],
        "speedup": tuned["rtf"] / int8["rtf"] if int8["rtf"] > 0 else None,
    }
    if starter is not None and starter.get("params") and int8.get("params") is not None:
        out["param_reduction_vs_starter"] = 1.0 - int8["params"] / starter["params"]
    return out


def format_report(s: dict, starter: str | None = None) -> str:
    """The Markdown report: the data, the table, the deployed model against the fine-tuned one, every stage's
    status and cost."""
    lines = ["# speechtao asr flow report", ""]
    data = s["stages"].get("data", {})
    if starter is not None:
        lines.append(f"- starter: `{starter}`")
    for split in ("train", "dev", "test"):
        if data.get(split):
            lines.append(f"- {split}: `{data[split]}` ({data.get(f'{split}_utterances', '?')} utterances)")
    if data.get("dev_note"):
        lines.append(f"- {data['dev_note']}")
    lines += [
        "",
        "| stage | test WER | test CER | dev WER | parameters | file size | RTF |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in s["rows"]:
        if r["status"] == "done":
            params = f"{r['params']:,}" if r.get("params") is not None else "-"
            lines.append(
                f"| {r['stage']} | {_pct(r['wer'])} | {_pct(r['cer'])} | {_pct(r.get('dev_wer'))} | {params} | "
                f"{_mb(r.get('size_bytes'))} | {r['rtf']:.4f} |"
            )
        else:
            lines.append(f"| {r['stage']} | {r['status']} | | | | | |")
    lines.append("")
    if "relative_wer_reduction" in s:
        change = -100 * s["relative_wer_reduction"]
        lines.append(f"Fine-tuning changed the test WER by {change:+.1f}% (relative) from the starter's.")
        lines.append("")
    d = deployed_vs_finetuned(s)
    if d is not None:
        lines += ["## Deployed (INT8 ONNX) against fine-tuned", ""]
        lines.append(
            f"- test WER {_pct(d['int8_wer'])} against {_pct(d['finetuned_wer'])} ({d['wer_points']:+.2f} points)"
        )
        if d.get("int8_dev_wer") is not None and d.get("finetuned_dev_wer") is not None:
            lines.append(f"- dev WER {_pct(d['int8_dev_wer'])} against {_pct(d['finetuned_dev_wer'])}")
        reduction = d.get("param_reduction_vs_starter")
        lines.append(
            f"- parameters {d['int8_params']:,} against {d['finetuned_params']:,}"
            + (f" ({100 * reduction:.1f}% fewer than the starter)" if reduction is not None else "")
        )
        lines.append(f"- file {_mb(d['int8_size_bytes'])} against {_mb(d['finetuned_size_bytes'])}")
        if d.get("speedup"):
            lines.append(f"- decoding {d['speedup']:.2f}x as fast (RTF of ONNX Runtime INT8 against PyTorch FP32)")
        lines.append("")
    retrain = s["stages"].get("retrain", {})
    if retrain.get("max_wer_increase") is not None and retrain.get("trials"):
        budget = retrain["max_wer_increase"]
        lines += ["## Prune ratio", ""]
        lines.append(
            f"Budget: dev WER at most {budget:g} points above the fine-tuned model's "
            f"({_pct(retrain.get('finetuned_dev_wer'))}); the largest ratio within it is kept."
        )
        lines.append("")
        lines += ["| ratio | parameters | retrained dev WER | within budget | seconds |", "|---|---|---|---|---|"]
        for t in retrain["trials"]:
            ok = {True: "yes", False: "no", None: "-"}[t.get("within_budget")]
            lines.append(
                f"| {t['ratio']:g} | {t['params']:,} | {_pct(t.get('dev_wer'))} | {ok} | {t.get('wall_s', 0):.1f} |"
            )
        lines.append("")
        lines.append(f"Kept: ratio {retrain['ratio']:g}. {retrain.get('choice', '')}".rstrip())
        lines.append("")
    lines += [
        "RTF: wall seconds per audio second decoding the test split (audio reading and features included).",
        "File size: the checkpoint (PyTorch rows) or the .onnx file (ONNX row).",
        "",
        "## Stages (wall time each)",
        "",
        "| stage | status | seconds | note |",
        "|---|---|---|---|",
    ]
    for name, rec in s["stages"].items():
        if name == "report":  # this file
            continue
        lines.append(f"| {name} | {rec.get('status')} | {_seconds(rec.get('wall_s'))} | {_note(name, rec)} |")
    if s.get("total_wall_s") is not None:
        lines += ["", f"Total: {s['total_wall_s']:.0f} s over the stages above."]
    return "\n".join(lines) + "\n"


def _seconds(wall: float | None) -> str:
    return "" if wall is None else f"{wall:.1f}"


def _note(name: str, rec: dict) -> str:
    if rec.get("status") != "done":
        return rec.get("reason", "")
    if name == "finetune":
        return f"{rec['steps']} steps, {rec['audio_s_per_s']:.1f} audio-s/s, deployed `{Path(rec['model']).name}`"
    if name == "retrain":
        how = "distilled from the fine-tuned model" if rec.get("distilled") else "CTC only"
        return f"{len(rec.get('trials', []))} ratio(s) tried, {how}"
    if name == "prune":
        notes = []
        for c in rec["candidates"]:
            note = f"ratio {c['ratio']:g}: parameters {c['params_before']:,} -> {c['params_after']:,}"
            if c.get("heads_after"):
                note += f", heads per layer {c['heads_after']}, FFN widths {c['widths_after']}"
            notes.append(note)
        return "; ".join(notes)
    if name == "data" and rec.get("dev_note"):
        return rec["dev_note"]
    return ""


def format_table(s: dict) -> str:
    """The report table as plain text for the terminal."""
    head = f"{'stage':<26} {'test WER':>9} {'CER':>8} {'dev WER':>8} {'params':>10} {'size':>10} {'RTF':>8}"
    out = [head, "-" * len(head)]
    for r in s["rows"]:
        if r["status"] == "done":
            params = f"{r['params']:,}" if r.get("params") is not None else "-"
            out.append(
                f"{r['stage']:<26} {_pct(r['wer']):>9} {_pct(r['cer']):>8} {_pct(r.get('dev_wer')):>8} {params:>10} "
                f"{_mb(r.get('size_bytes')):>10} {r['rtf']:>8.4f}"
            )
        else:
            out.append(f"{r['stage']:<26} {r['status']}: {r.get('reason', '')}")
    d = deployed_vs_finetuned(s)
    if d is not None:
        line = f"deployed INT8 vs fine-tuned: {d['wer_points']:+.2f} WER points"
        if d.get("param_reduction_vs_starter") is not None:
            line += f", {100 * d['param_reduction_vs_starter']:.1f}% fewer parameters than the starter"
        out.append(line)
    return "\n".join(out)


def plot_report(s: dict, out_dir: Path) -> Path:
    """``report.png``: training loss (and validation WER) per step for each training stage, WER per stage."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    curves = s.get("curves", {})
    wer_ax = ax1.twinx() if any(c["val_step"] for c in curves.values()) else None
    for name, c in curves.items():
        if c["step"]:
            ax1.plot(c["step"], c["loss"], label=f"{name} loss")
        if c["val_step"] and wer_ax is not None:
            wer_ax.plot(c["val_step"], [100 * w for w in c["val_wer"]], "--", marker="o", label=f"{name} dev WER %")
    if wer_ax is not None:
        wer_ax.set_ylabel("dev WER %")
        wer_ax.legend(loc="upper center", fontsize=8)
    ax1.set_xlabel("optimizer step")
    ax1.set_ylabel("training loss")
    ax1.set_title("training curves" if curves else "training curves (no training stage done)")
    if ax1.get_lines():
        ax1.legend(loc="upper right", fontsize=8)
    done = [r for r in s["rows"] if r["status"] == "done"]
    ax2.bar(range(len(done)), [100 * r["wer"] for r in done], color="tab:blue")
    ax2.set_xticks(range(len(done)), [r["stage"].replace(" (", "\n(") for r in done], fontsize=7)
    for i, r in enumerate(done):
        ax2.text(i, 100 * r["wer"], f"{100 * r['wer']:.1f}", ha="center", va="bottom", fontsize=8)
    ax2.set_ylabel("WER % (test split)")
    ax2.set_title("WER per stage")
    fig.tight_layout()
    path = out_dir / "report.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


__all__ = ["format_report", "format_table", "plot_report", "deployed_vs_finetuned"]
