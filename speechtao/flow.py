"""The TAO flow on one domain, stage by stage: what ``speechtao asr flow`` and ``make finetune-asr`` run.

Stages, in order (each writes ``<out_dir>/stages/<name>.json``; a rerun skips the stages already done)::

    domain               make the bundled custom-domain corpus (speechtao.corpora.domain), unless present
    evaluate_starter     WER/CER of the pretrained starter on the domain test split
    finetune             fine-tune the starter on the domain train split  (recipe + overrides)
    evaluate_finetuned
    prune                structured pruning (speechtao.asr.prune): conv channels, or a Whisper encoder's
                         attention heads and FFN neurons
    evaluate_pruned      the pruned model before retraining (shows what pruning costs)
    retrain              fine-tune the pruned model again (recipe + overrides); ``retrain.distill_from_finetuned``
                         adds distillation from the fine-tuned (unpruned) model (speechtao.asr.distill)
    evaluate_retrained
    export_int8          ONNX FP32 -> static INT8 QDQ calibrated on domain train audio (speechtao.export)
    evaluate_int8        the INT8 ONNX in ONNX Runtime, same test split and scoring
    report               report.md (stage, WER, CER, parameters, file size, RTF), report.json, report.png

The starter may be a QuartzNet/CitriNet or a Whisper-encoder CTC checkpoint (``starter=models/
whisper_tiny_en_ctc_synth.pt``): the training stages add their ``family_overrides`` for the starter's family
(a pretrained transformer wants a lower learning rate than the small conv starter), and the INT8 export
quantizes what :func:`speechtao.export.asr.int8_op_types` names for it.

A stage whose capability is missing (a module that has not landed, onnxruntime not importable) is recorded as
``not run`` with the reason, as are the stages that need its output; nothing is faked. ``not run`` and failed
stages are attempted again on the next run. Training stages that were interrupted resume from their newest
checkpoint.

Threads: on a CPU that other jobs share, more intra-op threads than free cores is ruinous (a training step of
the 0.7M-parameter starter took ~25 s with 2 threads and ~1.8 s with 1 thread on 2 cores running ~18 busy
processes), so ``threads`` defaults to 1; raise it on an idle machine.

RTF (real-time factor) is wall seconds per audio second of decoding the test split, audio reading and
features included, batch ``eval_batch_size``, with the threads torch (or ONNX Runtime) was given.

Usage::

    spec = load_spec(FlowSpec, "recipes/asr_flow.yaml")
    report = run_flow(spec)          # {"rows": [...], "stages": {...}, "report_md": Path, ...}
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from .errors import InputError, SpeechtaoError
from .spec import load_spec, save_spec, spec_to_dict

STAGES: tuple[str, ...] = (
    "domain",
    "evaluate_starter",
    "finetune",
    "evaluate_finetuned",
    "prune",
    "evaluate_pruned",
    "retrain",
    "evaluate_retrained",
    "export_int8",
    "evaluate_int8",
    "report",
)

# The stages each stage needs (a stage runs only when all of these are done).
NEEDS: dict[str, tuple[str, ...]] = {
    "evaluate_starter": ("domain",),
    "finetune": ("domain",),
    "evaluate_finetuned": ("finetune",),
    "prune": ("finetune",),
    "evaluate_pruned": ("prune",),
    "retrain": ("prune",),
    "evaluate_retrained": ("retrain",),
    "export_int8": ("finetune",),
    "evaluate_int8": ("export_int8",),
}

# Rows of the report table: (evaluation stage, label).
EVAL_ROWS: tuple[tuple[str, str], ...] = (
    ("evaluate_starter", "starter (pretrained)"),
    ("evaluate_finetuned", "fine-tuned"),
    ("evaluate_pruned", "pruned"),
    ("evaluate_retrained", "pruned + retrained"),
    ("evaluate_int8", "INT8 ONNX (ONNX Runtime)"),
)

_LOG_RE = re.compile(r"^epoch (\d+) step (\d+) loss ([-\d.eE+naninf]+) lr ([-\d.eE+]+)")
_VAL_RE = re.compile(r"^epoch (\d+) step (\d+) val (.*)$")


@dataclass(frozen=True)
class DomainStage:
    out: Path = Path("data/domain")  # corpus folder (train.jsonl, test.jsonl); made when missing
    n_train: int = 160  # training utterances
    n_test: int = 40  # test utterances
    seed: int = 0


@dataclass(frozen=True)
class TrainStage:
    recipe: Path  # an `asr finetune` recipe; init_from, data.train/validation and trainer.out_dir are set here
    overrides: list[str] = field(default_factory=list)  # key.sub=value applied to the recipe
    family_overrides: dict[str, list[str]] = field(default_factory=dict)  # family -> overrides for a starter of that
    # family ("whisper", "quartznet", "citrinet", "custom"), applied before ``overrides``, which win
    distill_from_finetuned: bool = False  # retrain only: distill.teacher = the fine-tuned model, set before the
    # overrides (distill.weight, distill.manifest, ... come from the recipe or the overrides)


@dataclass(frozen=True)
class PruneStage:
    ratio: float = 0.25  # share of each block's channels removed
    granularity: int = 8
    min_channels: int = 16


@dataclass(frozen=True)
class ExportStage:
    calib_utterances: int = 32  # domain training utterances the INT8 ranges are calibrated on
    method: Literal["minmax", "entropy", "percentile"] = "minmax"


@dataclass(frozen=True)
class FlowSpec:
    """``speechtao asr flow``: one pretrained starter adapted to one domain, every TAO stage."""

    starter: str  # checkpoint path (or preset name: random weights, only for trying the flow)
    out_dir: Path  # results/<run>: stages/, models, report.md, report.png
    finetune: TrainStage
    retrain: TrainStage
    domain: DomainStage = DomainStage()
    prune: PruneStage = PruneStage()
    export: ExportStage = ExportStage()
    eval_batch_size: int = 16
    threads: int = 1  # torch and ONNX Runtime intra-op threads (on a CPU shared with other jobs keep 1: see below)

    def __post_init__(self):
        if self.eval_batch_size < 1 or self.threads < 1:
            raise ValueError("eval_batch_size and threads must be >= 1")
        if not 0.0 <= self.prune.ratio < 1.0:
            raise ValueError(f"prune.ratio must be in [0, 1), got {self.prune.ratio}")
        if self.finetune.distill_from_finetuned:
            raise ValueError(
                "finetune.distill_from_finetuned: only the retrain stage has a fine-tuned teacher "
                "(set retrain.distill_from_finetuned: true instead)"
            )


# ------------------------------------------------------------------------------------------ capabilities


def missing_capability(stage: str) -> str | None:
    """Why ``stage`` cannot run here (a module not landed or a package missing), or None when it can."""

    def absent(module: str) -> bool:
        try:
            return importlib.util.find_spec(module) is None
        except ModuleNotFoundError:
            return True

    if stage == "prune" and absent("speechtao.asr.prune"):
        return "structured pruning (speechtao.asr.prune) is not in this version of speechtao"
    if stage == "export_int8":
        for module, what in (
            ("speechtao.export.onnx_export", "ONNX export"),
            ("speechtao.export.quantize", "INT8 quantization"),
            ("onnxruntime", "onnxruntime"),
            ("onnx", "onnx"),
        ):
            if absent(module):
                return f"{what} ({module}) is not available (pip install onnx onnxruntime, or update speechtao)"
    if stage == "evaluate_int8":
        for module in ("speechtao.serve.backends", "onnxruntime"):
            if absent(module):
                return f"ONNX Runtime inference ({module}) is not available"
    return None


# --------------------------------------------------------------------------------------------- helpers


def file_size(path: str | Path) -> int:
    return Path(path).stat().st_size


def parse_train_log(lines: list[str]) -> dict[str, list]:
    """``{"step": [...], "loss": [...], "lr": [...], "val_step": [...], "val_wer": [...]}`` from trainer lines."""
    out: dict[str, list] = {"step": [], "loss": [], "lr": [], "val_step": [], "val_wer": []}
    for line in lines:
        m = _LOG_RE.match(line)
        if m:
            out["step"].append(int(m.group(2)))
            out["loss"].append(float(m.group(3)))
            out["lr"].append(float(m.group(4)))
            continue
        m = _VAL_RE.match(line)
        if m:
            parts = m.group(3).split()
            vals = dict(zip(parts[::2], parts[1::2]))
            if "wer" in vals:
                out["val_step"].append(int(m.group(2)))
                out["val_wer"].append(float(vals["wer"]))
    return out


def evaluate_checkpoint(path: str | Path, manifest: Path, batch_size: int) -> dict:
    """WER, CER, RTF of a checkpoint (PyTorch) on ``manifest``; parameters and file size."""
    from .asr.checkpoint import load_model
    from .asr.evaluate import EvalOptions, evaluate

    loaded = load_model(str(path))
    result = evaluate(loaded, manifest, EvalOptions(batch_size=batch_size))
    m = result.metrics
    params = sum(p.numel() for p in loaded.model.parameters())
    size = file_size(path) if Path(path).is_file() else None
    return {
        "model": str(path),
        "wer": m["wer"],
        "cer": m["cer"],
        "rtf": m["rtf"],
        "n": m["n"],
        "params": params,
        "size_bytes": size,
        "runtime": "pytorch",
    }


def evaluate_onnx(path: Path, manifest: Path, batch_size: int, threads: int, params: int | None) -> dict:
    """WER, CER, RTF of an exported ONNX model run by ONNX Runtime (features in torch, as served)."""
    import numpy as np
    import torch

    from .asr.ctc import greedy_decode
    from .asr.metrics import cer, wer
    from .audio import read_audio
    from .data.manifest import read_manifest
    from .serve.backends import OnnxBackend

    backend = OnnxBackend(path, provider="cpu", threads=threads)
    entries = read_manifest(manifest)
    order = sorted(range(len(entries)), key=lambda i: -entries[i].duration)
    hyps: list[str] = [""] * len(entries)
    seconds = 0.0
    start = time.perf_counter()
    for b in range(0, len(order), batch_size):
        idx = order[b : b + batch_size]
        audios = [
            read_audio(
                entries[i].audio_filepath,
                sample_rate=backend.sample_rate,
                offset=entries[i].offset,
                duration=entries[i].duration if entries[i].segment else None,
            )
            for i in idx
        ]
        lengths = np.array([len(a) for a in audios], dtype=np.int64)
        batch = np.zeros((len(audios), int(lengths.max())), dtype=np.float32)  # (B, T)
        for j, a in enumerate(audios):
            batch[j, : len(a)] = a
        seconds += float(lengths.sum()) / backend.sample_rate
        log_probs, out_lengths = backend(batch, lengths)  # (B, T', V+1), (B,)
        for i, hyp in zip(
            idx, greedy_decode(torch.from_numpy(log_probs), torch.from_numpy(out_lengths), backend.tokenizer.blank_id)
        ):
            hyps[i] = backend.tokenizer.decode(list(hyp.token_ids))
    wall = time.perf_counter() - start
    refs = [e.text for e in entries]
    return {
        "model": str(path),
        "wer": wer(refs, hyps),
        "cer": cer(refs, hyps),
        "rtf": wall / max(seconds, 1e-9),
        "n": len(entries),
        "params": params,
        "size_bytes": file_size(path),
        "runtime": "onnxruntime",
    }


# ----------------------------------------------------------------------------------------------- stages


class Flow:
    """Runs the stages of a :class:`FlowSpec`; ``log`` receives progress lines."""

    def __init__(self, spec: FlowSpec, log: Callable[[str], None] = print):
        self.spec = spec
        self.log = log
        self.out = Path(spec.out_dir)
        self.stage_dir = self.out / "stages"
        self.train_manifest = Path(spec.domain.out) / "train.jsonl"
        self.test_manifest = Path(spec.domain.out) / "test.jsonl"
        self._family: str | None = None

    @property
    def family(self) -> str:
        """The starter's model family (``config.family`` of its checkpoint, preset or pretrained name)."""
        if self._family is None:
            from .asr.checkpoint import load_model

            self._family = load_model(self.spec.starter).config.family
        return self._family

    # -- records
    def record(self, stage: str) -> dict | None:
        p = self.stage_dir / f"{stage}.json"
        return json.loads(p.read_text()) if p.is_file() else None

    def _write(self, stage: str, rec: dict) -> None:
        self.stage_dir.mkdir(parents=True, exist_ok=True)
        p = self.stage_dir / f"{stage}.json"
        tmp = p.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(rec, indent=2) + "\n")
        os.replace(tmp, p)

    def done(self, stage: str) -> bool:
        rec = self.record(stage)
        return rec is not None and rec.get("status") == "done"

    # -- the driver
    def run(self, only: tuple[str, ...] = STAGES) -> dict:
        import torch

        torch.set_num_threads(self.spec.threads)
        self.out.mkdir(parents=True, exist_ok=True)
        saved = self.out / "flow_spec.yaml"
        if saved.is_file():  # finished stages are reused only for the spec that made them
            import yaml

            old, new = yaml.safe_load(saved.read_text()), spec_to_dict(self.spec)
            changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
            if changed:
                raise InputError(
                    f"{self.out}: holds a flow run of another spec (differs in {', '.join(changed)}); "
                    "pass --restart to start over there, or set out_dir to another folder"
                )
        save_spec(self.spec, saved)
        start = time.perf_counter()
        for stage in STAGES:
            if stage not in only:
                continue
            if stage != "report" and self.done(stage):
                self.log(f"[{stage}] done in an earlier run: skipped")
                continue
            need = [n for n in NEEDS.get(stage, ()) if not self.done(n)]
            if need:
                rec = {"stage": stage, "status": "not run", "reason": f"needs stage(s) {', '.join(need)}"}
                self._write(stage, rec)
                self.log(f"[{stage}] not run: {rec['reason']}")
                continue
            why = missing_capability(stage)
            if why:
                rec = {"stage": stage, "status": "not run", "reason": why}
                self._write(stage, rec)
                self.log(f"[{stage}] not run: {why}")
                continue
            self.log(f"[{stage}] ...")
            t0 = time.perf_counter()
            try:
                result = getattr(self, f"stage_{stage}")()
            except SpeechtaoError as exc:
                rec = {
                    "stage": stage,
                    "status": "failed",
                    "reason": str(exc).splitlines()[0][:500],
                    "wall_s": round(time.perf_counter() - t0, 2),
                }
                self._write(stage, rec)
                self.log(f"[{stage}] failed: {rec['reason']}")
                continue
            rec = {"stage": stage, "status": "done", "wall_s": round(time.perf_counter() - t0, 2), **result}
            self._write(stage, rec)
            self.log(f"[{stage}] done in {rec['wall_s']:.1f} s" + self._brief(rec))
        summary = self.summary()
        summary["wall_s"] = round(time.perf_counter() - start, 2)
        return summary

    @staticmethod
    def _brief(rec: dict) -> str:
        if "wer" in rec:
            return f": WER {100 * rec['wer']:.2f}% CER {100 * rec['cer']:.2f}% RTF {rec['rtf']:.4f}"
        return ""

    # -- stage implementations (each returns the fields of its record)
    def stage_domain(self) -> dict:
        from .corpora.domain import DomainSpec, corpus_summary, make_domain_corpus

        d = self.spec.domain
        train, test = make_domain_corpus(
            d.out, DomainSpec(n_train=d.n_train, n_test=d.n_test, seed=d.seed), log=self.log
        )
        return {
            "train": str(train),
            "test": str(test),
            "train_summary": corpus_summary(train),
            "test_summary": corpus_summary(test),
        }

    def _eval(self, path: str | Path) -> dict:
        return evaluate_checkpoint(path, self.test_manifest, self.spec.eval_batch_size)

    def stage_evaluate_starter(self) -> dict:
        return self._eval(self.spec.starter)

    def _train(self, name: str, stage: TrainStage, init_from: str) -> dict:
        from .asr.train import ASRFinetuneSpec, build
        from .train.checkpoint import CheckpointManager

        out_dir = self.out / name
        teacher = [f"distill.teacher={self.record('finetune')['model']}"] if stage.distill_from_finetuned else []
        overrides = [
            f"init_from={init_from}",
            f"data.train=[{self.train_manifest}]",
            f"data.validation=[{self.test_manifest}]",
            f"trainer.out_dir={out_dir}",
            *teacher,
            *stage.family_overrides.get(self.family, []),
            *stage.overrides,
        ]
        spec = load_spec(ASRFinetuneSpec, stage.recipe, overrides)
        resume = CheckpointManager(out_dir / "checkpoints").latest() is not None
        log_path = self.out / f"{name}_train.log"
        lines: list[str] = log_path.read_text().splitlines() if (resume and log_path.is_file()) else []

        def log(line: str) -> None:
            lines.extend(line.splitlines())
            with open(log_path, "a") as f:
                f.write(line + "\n")
            if _LOG_RE.match(line) or _VAL_RE.match(line) or line.startswith(("done:", "resumed", "parameters")):
                self.log(f"  {line}")

        if not resume:
            log_path.write_text("")
        trainer = build(spec, resume=resume, log=log)
        metrics = trainer.fit(resume=resume)
        curve = parse_train_log(lines)
        (self.out / f"{name}_curve.json").write_text(json.dumps(curve) + "\n")
        return {
            "model": str(out_dir / "final.pt"),
            "steps": metrics["steps"],
            "train_time_s": metrics["train_time_s"],
            "audio_s_per_s": metrics["audio_s_per_s"],
            "resumed": resume,
            "curve": f"{name}_curve.json",
        }

    def stage_finetune(self) -> dict:
        return self._train("finetune", self.spec.finetune, self.spec.starter)

    def stage_evaluate_finetuned(self) -> dict:
        return self._eval(self.record("finetune")["model"])

    def stage_prune(self) -> dict:
        from .asr.checkpoint import load_model, model_payload, save_model
        from .asr.prune import PruneOptions, prune_model

        src = self.record("finetune")["model"]
        loaded = load_model(src)
        p = self.spec.prune
        result = prune_model(
            loaded.model, PruneOptions(ratio=p.ratio, granularity=p.granularity, min_channels=p.min_channels)
        )
        dest = self.out / "pruned.pt"
        save_model(
            dest,
            model_payload(
                result.model, loaded.tokenizer, loaded.spec, extra={"pruned_from": src, "prune_ratio": p.ratio}
            ),
        )
        heads = {"heads_before": result.heads_before, "heads_after": result.heads_after} if result.heads_before else {}
        return {
            "model": str(dest),
            "params_before": result.params_before,
            "params_after": result.params_after,
            "widths_before": result.widths_before,
            "widths_after": result.widths_after,
            **heads,
            "macs_before": result.macs_before,
            "macs_after": result.macs_after,
        }

    def stage_evaluate_pruned(self) -> dict:
        return self._eval(self.record("prune")["model"])

    def stage_retrain(self) -> dict:
        return self._train("retrain", self.spec.retrain, self.record("prune")["model"])

    def stage_evaluate_retrained(self) -> dict:
        return self._eval(self.record("retrain")["model"])

    def _export_source(self) -> str:
        return self.record("retrain")["model"] if self.done("retrain") else self.record("finetune")["model"]

    def stage_export_int8(self) -> dict:
        from .asr.checkpoint import load_model
        from .export.asr import int8_op_types
        from .export.onnx_export import export_onnx
        from .export.quantize import QuantOptions, calibration_features, quantize_model

        src = self._export_source()
        loaded = load_model(src)
        opts = QuantOptions(
            method=self.spec.export.method,
            max_utterances=self.spec.export.calib_utterances,
            op_types=int8_op_types(loaded),
        )
        items = calibration_features(loaded, self.train_manifest, opts)
        folder = self.out / "export"
        fp32 = export_onnx(loaded, folder / "model.onnx", spec=loaded.spec, check=True)
        result = quantize_model(fp32, folder / "model.int8.onnx", items, opts)
        return {
            "model": str(result.int8_path),
            "source": src,
            "fp32_onnx": str(fp32),
            "calibration_utterances": result.utterances,
            "params": sum(p.numel() for p in loaded.model.parameters()),
            "size_fp32_bytes": file_size(fp32),
            "size_int8_bytes": file_size(result.int8_path),
        }

    def stage_evaluate_int8(self) -> dict:
        rec = self.record("export_int8")
        return evaluate_onnx(
            Path(rec["model"]), self.test_manifest, self.spec.eval_batch_size, self.spec.threads, rec.get("params")
        )

    def stage_report(self) -> dict:
        s = self.summary()
        md = self.out / "report.md"
        tmp = md.with_suffix(".md.tmp")
        tmp.write_text(format_report(s, self.spec))
        os.replace(tmp, md)
        (self.out / "report.json").write_text(json.dumps(s, indent=2) + "\n")
        png = plot_report(s, self.out)
        return {"report_md": str(md), "report_png": str(png) if png else None}

    # -- summary
    def summary(self) -> dict:
        rows = []
        for stage, label in EVAL_ROWS:
            rec = self.record(stage) or {"status": "not run", "reason": "not reached"}
            row = {"stage": label, "eval_stage": stage, "status": rec.get("status")}
            if rec.get("status") == "done":
                row.update({k: rec.get(k) for k in ("wer", "cer", "params", "size_bytes", "rtf", "model", "runtime")})
            else:
                row["reason"] = rec.get("reason", "")
            rows.append(row)
        stages = {st: (self.record(st) or {"status": "not run", "reason": "not reached"}) for st in STAGES}
        out = {
            "rows": rows,
            "stages": {k: {kk: vv for kk, vv in v.items() if kk not in ("curve",)} for k, v in stages.items()},
            "out_dir": str(self.out),
            "test_manifest": str(self.test_manifest),
        }
        starter, tuned = stages["evaluate_starter"], stages["evaluate_finetuned"]
        if starter.get("status") == "done" and tuned.get("status") == "done" and starter["wer"] > 0:
            out["relative_wer_reduction"] = 1.0 - tuned["wer"] / starter["wer"]
        out["curves"] = {
            name: json.loads((self.out / f"{name}_curve.json").read_text())
            for name in ("finetune", "retrain")
            if (self.out / f"{name}_curve.json").is_file()
        }
        return out


def _mb(n: int | None) -> str:
    return "-" if n is None else f"{n / 1e6:.2f} MB"


def format_report(s: dict, spec: FlowSpec | None = None) -> str:
    """The Markdown report: the table, the relative WER change, then every stage's status."""
    lines = ["# speechtao asr flow report", ""]
    if spec is not None:
        lines += [f"- starter: `{spec.starter}`", f"- domain test split: `{s['test_manifest']}`", ""]
    lines += ["| stage | WER | CER | parameters | file size | RTF |", "|---|---|---|---|---|---|"]
    for r in s["rows"]:
        if r["status"] == "done":
            params = f"{r['params']:,}" if r.get("params") is not None else "-"
            lines.append(
                f"| {r['stage']} | {100 * r['wer']:.2f}% | {100 * r['cer']:.2f}% | {params} | "
                f"{_mb(r.get('size_bytes'))} | {r['rtf']:.4f} |"
            )
        else:
            lines.append(f"| {r['stage']} | {r['status']} | | | | |")
    lines.append("")
    if "relative_wer_reduction" in s:
        lines.append(f"Fine-tuning lowered the domain WER by {100 * s['relative_wer_reduction']:.1f}% (relative).")
        lines.append("")
    lines += [
        "RTF: wall seconds per audio second decoding the test split (audio reading and features included).",
        "File size: the checkpoint (PyTorch rows) or the .onnx file (ONNX row).",
        "",
        "## Stages",
        "",
        "| stage | status | seconds | note |",
        "|---|---|---|---|",
    ]
    for name, rec in s["stages"].items():
        if name == "report":  # this file
            continue
        note = rec.get("reason", "")
        if name in ("finetune", "retrain") and rec.get("status") == "done":
            note = f"{rec['steps']} steps, {rec['audio_s_per_s']:.1f} audio-s/s" + (
                " (resumed)" if rec.get("resumed") else ""
            )
        if name == "prune" and rec.get("status") == "done":
            note = f"parameters {rec['params_before']:,} -> {rec['params_after']:,}"
            if rec.get("heads_after"):
                note += f"; heads per layer {rec['heads_after']}, FFN widths {rec['widths_after']}"
        wall = rec.get("wall_s")
        lines.append(f"| {name} | {rec.get('status')} | {'' if wall is None else f'{wall:.1f}'} | {note} |")
    return "\n".join(lines) + "\n"


def plot_report(s: dict, out_dir: Path) -> Path | None:
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
            wer_ax.plot(c["val_step"], [100 * w for w in c["val_wer"]], "--", marker="o", label=f"{name} val WER %")
    if wer_ax is not None:
        wer_ax.set_ylabel("validation WER %")
        wer_ax.legend(loc="upper center", fontsize=8)
    ax1.set_xlabel("optimizer step")
    ax1.set_ylabel("CTC loss")
    ax1.set_title("training curves" if curves else "training curves (no training stage done)")
    if ax1.get_lines():
        ax1.legend(loc="upper right", fontsize=8)
    done = [r for r in s["rows"] if r["status"] == "done"]
    ax2.bar(range(len(done)), [100 * r["wer"] for r in done], color="tab:blue")
    ax2.set_xticks(range(len(done)), [r["stage"].replace(" (", "\n(") for r in done], fontsize=7)
    for i, r in enumerate(done):
        ax2.text(i, 100 * r["wer"], f"{100 * r['wer']:.1f}", ha="center", va="bottom", fontsize=8)
    ax2.set_ylabel("WER % (domain test)")
    ax2.set_title("WER per stage")
    fig.tight_layout()
    path = out_dir / "report.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def run_flow(spec: FlowSpec, log: Callable[[str], None] = print, only: tuple[str, ...] = STAGES) -> dict:
    """Run (or continue) the flow of ``spec``; returns the summary (see :meth:`Flow.summary`)."""
    for stage in only:
        if stage not in STAGES:
            raise InputError(f"stage {stage!r} is unknown (stages: {', '.join(STAGES)})")
    return Flow(spec, log).run(only)


def format_table(s: dict) -> str:
    """The report table as plain text for the terminal."""
    head = f"{'stage':<26} {'WER':>8} {'CER':>8} {'params':>10} {'size':>10} {'RTF':>8}"
    out = [head, "-" * len(head)]
    for r in s["rows"]:
        if r["status"] == "done":
            params = f"{r['params']:,}" if r.get("params") is not None else "-"
            out.append(
                f"{r['stage']:<26} {100 * r['wer']:>7.2f}% {100 * r['cer']:>7.2f}% {params:>10} "
                f"{_mb(r.get('size_bytes')):>10} {r['rtf']:>8.4f}"
            )
        else:
            out.append(f"{r['stage']:<26} {r['status']}: {r.get('reason', '')}")
    return "\n".join(out)


__all__ = [
    "FlowSpec",
    "DomainStage",
    "TrainStage",
    "PruneStage",
    "ExportStage",
    "STAGES",
    "Flow",
    "run_flow",
    "format_report",
    "format_table",
    "plot_report",
    "parse_train_log",
    "evaluate_checkpoint",
    "evaluate_onnx",
    "missing_capability",
]
