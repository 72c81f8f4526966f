"""The flow's driver: :class:`Flow` runs the stages of a :class:`~speechtao.flow.spec.FlowSpec` in order."""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

from ..errors import InputError, SpecError, SpeechtaoError
from ..spec import load_spec, save_spec, spec_to_dict
from .data import check_manifests, resolve_manifests
from .report import format_report, plot_report
from .scoring import curve, file_size, parameters, score
from .spec import EVAL_ROWS, FIRST_STAGE, NEEDS, OUTPUTS, STAGES, FlowSpec, TrainStage

logger = logging.getLogger("speechtao.flow")


def choose_ratio(trials: list[dict], budget: float | None) -> tuple[dict, str]:
    """The retrained candidate to keep, and why. ``trials`` (largest ratio first) end at the first within the
    budget, if any; without a budget there is one trial. When none is within, the lowest dev WER is kept (the
    smaller ratio on a tie)."""
    last = trials[-1]
    if budget is None:
        return last, ""
    if last["within_budget"]:
        return last, f"The largest ratio whose dev WER is within +{budget:g} points."
    best = min(trials, key=lambda t: (t["dev_wer"], t["ratio"]))
    return best, f"No ratio met the +{budget:g}-point budget: kept the lowest dev WER."


class Flow:
    """Runs the stages of a :class:`FlowSpec`; ``log`` receives progress lines (default: this module's logger)."""

    def __init__(self, spec: FlowSpec, log: Callable[[str], None] | None = None):
        self.spec = spec
        self.log = log or logger.info
        self.out = Path(spec.out_dir)
        self.stage_dir = self.out / "stages"
        self._starter = None

    @property
    def starter(self):
        """The starter, loaded once (family, vocabulary)."""
        if self._starter is None:
            from ..asr.checkpoint import load_model

            self._starter = load_model(self.spec.starter)
        return self._starter

    @property
    def family(self) -> str:
        """The starter's model family (``config.family`` of its checkpoint, preset or pretrained name)."""
        return self.starter.config.family

    def manifest(self, split: str) -> Path:
        """The train/dev/test manifest the data stage settled on."""
        rec = self.record("data")
        if rec is None or rec.get("status") != "done":
            raise InputError(f"{self.out}: the data stage has not run (run the flow with it)")
        return Path(rec[split])

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
    def _check_out_dir(self) -> None:
        """Finished stages are reused only for the spec sections they depend on: when a section changed since the
        last run in ``out_dir``, the first stage that reads it and every later stage run again (their outputs are
        removed, said in the log), so changing the retrain settings keeps the fine-tuned model."""
        import shutil

        import yaml

        saved = self.out / "flow_spec.yaml"
        if saved.is_file():
            old, new = yaml.safe_load(saved.read_text()), spec_to_dict(self.spec)
            changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
            firsts = [STAGES.index(FIRST_STAGE[k]) for k in changed if k in FIRST_STAGE]
            if firsts:
                again = [st for st in STAGES[min(firsts) :] if self.record(st) is not None]
                if again:
                    self.log(f"[flow] spec changed in {', '.join(changed)}: {', '.join(again)} will run again")
                for st in again:
                    (self.stage_dir / f"{st}.json").unlink()
                    for name in OUTPUTS.get(st, ()):
                        path = self.out / name
                        if path.is_dir():
                            shutil.rmtree(path)
                        else:
                            path.unlink(missing_ok=True)
        self.out.mkdir(parents=True, exist_ok=True)
        save_spec(self.spec, saved)

    def run(self, only: tuple[str, ...] = STAGES) -> dict:
        """Run the selected stages in order; the first failure stops the flow (after the report is written) and
        its error propagates."""
        import torch

        torch.set_num_threads(self.spec.threads)
        self._check_out_dir()
        start = time.perf_counter()
        self._check_recipes(only)
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
                raise InputError(
                    f"stage {stage} needs stage(s) {', '.join(need)}, not done in {self.out} "
                    "(select them too with --stages, or run the whole flow)"
                )
            self.log(f"[{stage}] ...")
            t0 = time.perf_counter()
            try:
                result = getattr(self, f"stage_{stage}")()
            except SpeechtaoError as exc:
                self._fail(stage, exc, time.perf_counter() - t0, only)
                raise
            rec = {"stage": stage, "status": "done", "wall_s": round(time.perf_counter() - t0, 2), **result}
            self._write(stage, rec)
            self.log(f"[{stage}] done in {rec['wall_s']:.1f} s" + self._brief(rec))
        summary = self.summary()
        summary["wall_s"] = round(time.perf_counter() - start, 2)
        return summary

    def _fail(self, stage: str, exc: SpeechtaoError, wall: float, only: tuple[str, ...]) -> None:
        """Record ``stage`` as failed (the reason: the error's first line) and write the report."""
        reason = str(exc).splitlines()[0][:500]
        self._write(stage, {"stage": stage, "status": "failed", "reason": reason, "wall_s": round(wall, 2)})
        self.log(f"[{stage}] failed: {reason}")
        if stage != "report" and "report" in only:
            self.stage_report()

    def _check_recipes(self, only: tuple[str, ...]) -> None:
        """Load the training stages' recipes with their overrides before any stage runs: a missing recipe or a bad
        override fails the flow at once, not after the stages before it."""
        from ..asr.train import ASRFinetuneSpec

        for name in ("finetune", "retrain"):
            if name not in only or self.done(name):
                continue
            stage: TrainStage = getattr(self.spec, name)
            teacher = [f"distill.teacher={self.out / 'finetune' / 'best.pt'}"] if stage.distill_from_finetuned else []
            overrides = [*teacher, *stage.family_overrides.get(self.family, []), *stage.overrides]
            try:
                load_spec(ASRFinetuneSpec, stage.recipe, overrides)
            except SpecError as exc:
                error = SpecError(f"{name}.recipe / {name}.overrides of the flow spec: {exc}")
                self._fail(name, error, 0.0, only)
                raise error from exc

    @staticmethod
    def _brief(rec: dict) -> str:
        if "wer" in rec:
            dev = f" (dev {100 * rec['dev_wer']:.2f}%)" if rec.get("dev_wer") is not None else ""
            return f": test WER {100 * rec['wer']:.2f}%{dev} CER {100 * rec['cer']:.2f}% RTF {rec['rtf']:.4f}"
        return ""

    # -- stage implementations (each returns the fields of its record)
    def _vocab(self) -> frozenset[str] | None:
        """The starter's characters when it spells with single characters (None: a subword vocabulary)."""
        vocab = getattr(self.starter.tokenizer, "vocab", None)
        return frozenset(vocab) if vocab and all(len(v) == 1 for v in vocab) else None

    def stage_data(self) -> dict:
        from ..corpora.domain import DomainSpec, corpus_summary, make_domain_corpus
        from ..data.manifest import read_manifest, write_manifest
        from ..data.split import hold_out

        d = self.spec.data
        if d.bundled:
            dom = self.spec.domain
            train, test = make_domain_corpus(
                dom.out, DomainSpec(n_train=dom.n_train, n_test=dom.n_test, seed=dom.seed), log=self.log
            )
            paths: dict[str, Path | None] = {"train": train, "dev": None, "test": test}
        else:
            paths = resolve_manifests(d)
        check_manifests({k: v for k, v in paths.items() if v is not None}, self._vocab())
        rec: dict = {"source": "bundled domain" if d.bundled else "data"}
        if paths["dev"] is None:
            kept, dev = hold_out(read_manifest(paths["train"]), d.dev_share, d.seed)
            folder = self.out / "data"
            write_manifest(folder / "train.jsonl", kept)
            write_manifest(folder / "dev.jsonl", dev)
            rec["dev_note"] = (
                f"dev split made from train: {len(dev)} of {len(kept) + len(dev)} utterances held out "
                f"(data.dev_share {d.dev_share:g}, seed {d.seed}; give data.dev to use your own)"
            )
            self.log(f"  {rec['dev_note']}")
            paths = {"train": folder / "train.jsonl", "dev": folder / "dev.jsonl", "test": paths["test"]}
        for split, path in paths.items():
            rec[split] = str(path)
            summary = corpus_summary(path)
            rec[f"{split}_utterances"] = summary["utterances"]
            rec[f"{split}_minutes"] = round(summary["minutes"], 2)
        return rec

    def _eval(self, model: str | Path, params: int | None = None, lm: str | None = None) -> dict:
        """The test split's scores plus ``dev_wer``/``dev_cer``; parameters and file size."""
        onnx = str(model).endswith(".onnx")
        splits = {"test": self.manifest("test"), "dev": self.manifest("dev")}
        m = score(model, splits, batch_size=self.spec.eval_batch_size, threads=self.spec.threads, lm=lm)
        test, dev = m["test"], m["dev"]
        return {
            "model": str(model),
            "wer": test["wer"],
            "cer": test["cer"],
            "rtf": test["rtf"],
            "n": test["n"],
            "dev_wer": dev["wer"],
            "dev_cer": dev["cer"],
            "dev_n": dev["n"],
            "params": params if onnx else parameters(model),
            "size_bytes": file_size(model) if Path(model).is_file() else None,
            "runtime": "onnxruntime" if onnx else "pytorch",
        }

    def _dev_wer(self, model: str | Path) -> float:
        m = score(model, {"dev": self.manifest("dev")}, batch_size=self.spec.eval_batch_size, threads=self.spec.threads)
        return m["dev"]["wer"]

    def stage_evaluate_starter(self) -> dict:
        return self._eval(self.spec.starter)

    def _train(self, out_dir: Path, stage: TrainStage, init_from: str) -> dict:
        from ..asr.train import ASRFinetuneSpec, build
        from ..train.checkpoint import CheckpointManager

        teacher = [f"distill.teacher={self.record('finetune')['model']}"] if stage.distill_from_finetuned else []
        overrides = [
            f"init_from={init_from}",
            f"data.train=[{self.manifest('train')}]",
            f"data.validation=[{self.manifest('dev')}]",
            f"trainer.out_dir={out_dir}",
            *teacher,
            *stage.family_overrides.get(self.family, []),
            *stage.overrides,
        ]
        spec = load_spec(ASRFinetuneSpec, stage.recipe, overrides)
        if spec.distill.enabled and spec.distill.manifest is None:  # unlabelled audio: the train split by default
            overrides.append(f"distill.manifest=[{self.manifest('train')}]")
            spec = load_spec(ASRFinetuneSpec, stage.recipe, overrides)
        resume = CheckpointManager(out_dir / "checkpoints").latest() is not None
        log_path = out_dir.with_name(out_dir.name + "_train.log")  # every line the trainer logs

        def log(line: str) -> None:
            with open(log_path, "a") as f:
                f.write(line + "\n")
            if line.startswith(("epoch ", "done:", "resumed", "parameters")):
                self.log(f"  {line}")

        out_dir.parent.mkdir(parents=True, exist_ok=True)
        if not resume:
            log_path.write_text("")
        trainer = build(spec, resume=resume, log=log)
        metrics = trainer.fit(resume=resume)
        best = out_dir / "best.pt"  # chosen on dev; final.pt when no validation ran
        return {
            "model": str(best if best.is_file() else out_dir / "final.pt"),
            "steps": metrics["steps"],
            "train_time_s": metrics["train_time_s"],
            "audio_s_per_s": metrics["audio_s_per_s"],
            "resumed": resume,
            "distilled": spec.distill.enabled,
            "history": str((out_dir / "history.jsonl").relative_to(self.out)),
        }

    def stage_finetune(self) -> dict:
        return self._train(self.out / "finetune", self.spec.finetune, self.spec.starter)

    def stage_evaluate_finetuned(self) -> dict:
        return self._eval(self.record("finetune")["model"])

    def stage_prune(self) -> dict:
        from ..asr.checkpoint import load_model, model_payload, save_model
        from ..asr.prune import PruneOptions, prune_model

        src = self.record("finetune")["model"]
        p = self.spec.prune
        candidates = []
        for ratio in p.candidates:
            loaded = load_model(src)
            result = prune_model(
                loaded.model, PruneOptions(ratio=ratio, granularity=p.granularity, min_channels=p.min_channels)
            )
            dest = self.out / "pruned" / f"ratio_{ratio:g}.pt"
            dest.parent.mkdir(parents=True, exist_ok=True)
            save_model(
                dest,
                model_payload(
                    result.model, loaded.tokenizer, loaded.spec, extra={"pruned_from": src, "prune_ratio": ratio}
                ),
            )
            heads = (
                {"heads_before": result.heads_before, "heads_after": result.heads_after} if result.heads_before else {}
            )
            candidates.append(
                {
                    "ratio": ratio,
                    "model": str(dest),
                    "params_before": result.params_before,
                    "params_after": result.params_after,
                    "widths_before": result.widths_before,
                    "widths_after": result.widths_after,
                    **heads,
                    "macs_before": result.macs_before,
                    "macs_after": result.macs_after,
                }
            )
        return {"candidates": candidates}

    def stage_retrain(self) -> dict:
        """Retrain each candidate, largest ratio first; without a budget there is one. With a budget stop at the
        first whose dev WER is within it; when none is, keep the one with the lowest dev WER and say so."""
        p = self.spec.prune
        budget = p.max_wer_increase
        tuned_dev = None
        if budget is not None:
            tuned = self.record("evaluate_finetuned")
            tuned_dev = tuned["dev_wer"] if tuned and tuned.get("status") == "done" else None
            if tuned_dev is None:
                tuned_dev = self._dev_wer(self.record("finetune")["model"])
        trials = []
        for cand in self.record("prune")["candidates"]:
            out_dir = self.out / "retrain" / f"ratio_{cand['ratio']:g}"
            saved = out_dir / "trial.json"
            if saved.is_file():
                trial = json.loads(saved.read_text())
                self.log(f"  ratio {cand['ratio']:g}: retrained in an earlier run")
            else:
                t0 = time.perf_counter()
                trial = {"ratio": cand["ratio"], "params": cand["params_after"], "pruned": cand["model"]}
                trial.update(self._train(out_dir, self.spec.retrain, cand["model"]))
                if budget is not None:
                    trial["dev_wer"] = self._dev_wer(trial["model"])
                    trial["within_budget"] = 100 * (trial["dev_wer"] - tuned_dev) <= budget
                trial["wall_s"] = round(time.perf_counter() - t0, 2)
                saved.write_text(json.dumps(trial, indent=2) + "\n")
            trials.append(trial)
            if budget is not None:
                self.log(
                    f"  ratio {trial['ratio']:g}: dev WER {100 * trial['dev_wer']:.2f}% against fine-tuned "
                    f"{100 * tuned_dev:.2f}% ({'within' if trial['within_budget'] else 'outside'} +{budget:g} points)"
                )
                if trial["within_budget"]:
                    break
        chosen, choice = choose_ratio(trials, budget)
        if budget is not None and not chosen["within_budget"]:
            self.log(f"  warning: {choice}")
        return {
            "model": chosen["model"],
            "ratio": chosen["ratio"],
            "pruned": chosen["pruned"],
            "params": chosen["params"],
            "distilled": chosen["distilled"],
            "steps": chosen["steps"],
            "history": chosen["history"],
            "max_wer_increase": budget,
            "finetuned_dev_wer": tuned_dev,
            "trials": trials,
            "choice": choice,
        }

    def stage_evaluate_pruned(self) -> dict:
        return self._eval(self.record("retrain")["pruned"])

    def stage_evaluate_retrained(self) -> dict:
        return self._eval(self.record("retrain")["model"])

    def stage_export_int8(self) -> dict:
        from ..asr.checkpoint import load_model
        from ..export.asr import ExportOptions, export_model

        # the retrained model when the retrain stage is part of this flow, else the fine-tuned one
        src = self.record("retrain")["model"] if self.done("retrain") else self.record("finetune")["model"]
        loaded = load_model(src)
        folder = self.out / "export"
        options = ExportOptions(
            calib=self.manifest("train"),
            calib_method=self.spec.export.method,
            calib_utterances=self.spec.export.calib_utterances,
        )
        fp32 = export_model(loaded, "onnx", folder / "model.onnx", options).path
        int8 = export_model(loaded, "onnx-int8", folder / "model.int8.onnx", options)
        return {
            "model": str(int8.path),
            "source": src,
            "fp32_onnx": str(fp32),
            "calibration_utterances": int8.quant.utterances,
            "qat_ranges": len(int8.quant.overridden),
            "params": sum(p.numel() for p in loaded.model.parameters()),
            "size_fp32_bytes": file_size(fp32),
            "size_int8_bytes": file_size(int8.path),
        }

    def stage_evaluate_int8(self) -> dict:
        rec = self.record("export_int8")
        return self._eval(rec["model"], params=rec["params"])

    def stage_lm(self) -> dict:
        if not self.spec.lm.enabled:
            return {"skipped": "lm.enabled is false"}
        from .lm_stage import build_domain_lm

        model = self.record("export_int8")["model"]
        return build_domain_lm(
            self.spec.lm,
            out=self.out / "export" / "lm",
            train=self.manifest("train"),
            dev=self.manifest("dev"),
            model=model,
            threads=self.spec.threads,
        )

    def stage_evaluate_int8_lm(self) -> dict:
        lm = self.record("lm")
        if "skipped" in lm:
            return {"skipped": lm["skipped"]}
        rec = self.record("export_int8")
        return self._eval(rec["model"], params=rec["params"], lm=lm["lm"])

    def stage_report(self) -> dict:
        s = self.summary()
        md = self.out / "report.md"
        tmp = md.with_suffix(".md.tmp")
        tmp.write_text(format_report(s, self.spec.starter))
        os.replace(tmp, md)
        (self.out / "report.json").write_text(json.dumps(s, indent=2) + "\n")
        png = plot_report(s, self.out)
        return {"report_md": str(md), "report_png": str(png)}

    # -- summary
    def summary(self) -> dict:
        rows = []
        for stage, label in EVAL_ROWS:
            rec = self.record(stage) or {"status": "not run", "reason": "not reached"}
            row = {"stage": label, "eval_stage": stage, "status": rec.get("status")}
            if rec.get("status") == "done" and "skipped" in rec:  # e.g. lm.enabled: false
                row.update(status="skipped", reason=rec["skipped"])
            elif rec.get("status") == "done":
                keys = ("wer", "cer", "dev_wer", "params", "size_bytes", "rtf", "model", "runtime")
                row.update({k: rec.get(k) for k in keys})
            else:
                row["reason"] = rec.get("reason", "")
            rows.append(row)
        stages = {st: (self.record(st) or {"status": "not run", "reason": "not reached"}) for st in STAGES}
        out = {"rows": rows, "stages": stages, "out_dir": str(self.out)}
        out["total_wall_s"] = round(sum(r.get("wall_s") or 0.0 for n, r in stages.items() if n != "report"), 2)
        starter, tuned = stages["evaluate_starter"], stages["evaluate_finetuned"]
        if starter.get("status") == "done" and tuned.get("status") == "done" and starter["wer"] > 0:
            out["relative_wer_reduction"] = 1.0 - tuned["wer"] / starter["wer"]
        out["curves"] = {
            name: curve(self.out / stages[name]["history"])
            for name in ("finetune", "retrain")
            if stages[name].get("status") == "done"
        }
        return out


def run_flow(spec: FlowSpec, log: Callable[[str], None] | None = None, only: tuple[str, ...] = STAGES) -> dict:
    """Run (or continue) the flow of ``spec``; returns the summary (see :meth:`Flow.summary`). A failed stage
    raises its error (after recording it and writing the report)."""
    for stage in only:
        if stage not in STAGES:
            raise InputError(f"stage {stage!r} is unknown (stages: {', '.join(STAGES)})")
    return Flow(spec, log).run(only)
