"""Federated fine-tuning of a CTC model over several sites on NVIDIA FLARE (``speechtao asr federate``).

Each site keeps its manifests; only weights travel. A round: the server sends the global weights, every site
fine-tunes them for ``local_steps`` with the ordinary ``asr finetune`` recipe on its own training split and
sends the result back with its step count, and the server averages them weighted by those counts (FedAvg).
``algorithm: fedprox`` adds the proximal term ``mu / 2 * ||w - w_global||^2`` to each site's loss, which keeps
sites with very different data from drifting apart.

The job runs in FLARE's simulator on one machine (every site a process of its own); the same job folder, exported
to ``<out_dir>/job`` with FLARE's own exporter, is what real FLARE sites run (``nvflare job submit -j
<out_dir>/job`` on a provisioned system: each site then reads its own manifests from the paths in the plan).
With ``baselines: true`` the run also fine-tunes each site alone and all sites pooled for the same number of
steps, and scores all models on every site's test split: ``report.md`` holds the table.

Usage::

    spec = load_spec(FederatedSpec, "recipes/asr_federated.yaml")
    report = run_federated(spec)     # {"rows": [...], "report_md": Path, "global_model": Path}
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch

from ..errors import InputError, MissingDependencyError
from ..spec import load_spec, save_spec, spec_to_dict

log = logging.getLogger(__name__)

CLIENT_SCRIPT = Path(__file__).with_name("federate_client.py")


@dataclass(frozen=True)
class SiteSpec:
    name: str  # shown in the report
    train: Path  # the site's training manifest (never leaves the site)
    test: Path  # the site's held-out test manifest
    dev: Path | None = None  # validation during local training; default: the training manifest


@dataclass(frozen=True)
class FederatedSpec:
    """``speechtao asr federate``: one starter, N sites, FedAvg/FedProx rounds in FLARE's simulator."""

    starter: str  # checkpoint (or .nemo / preset) every site starts from
    recipe: Path  # an `asr finetune` recipe: the local training (init_from, data and out_dir are set here)
    sites: list[SiteSpec]
    out_dir: Path  # job/, workspace/, sites' runs, federated.pt, report.md, report.json
    rounds: int = 4
    local_steps: int = 50  # fine-tuning steps per site and round
    algorithm: Literal["fedavg", "fedprox"] = "fedavg"
    fedprox_mu: float = 0.01
    overrides: list[str] = field(default_factory=list)  # key.sub=value applied to the recipe at every site
    baselines: bool = True  # also: each site alone, and all sites pooled, for rounds * local_steps steps
    threads: int = 1  # torch threads per site process
    eval_batch_size: int = 16

    def __post_init__(self):
        if len(self.sites) < 2:
            raise ValueError(f"sites: federated learning needs at least 2 sites, got {len(self.sites)}")
        if len({s.name for s in self.sites}) != len(self.sites):
            raise ValueError("sites: every site needs its own name")
        if self.rounds < 1 or self.local_steps < 1:
            raise ValueError(f"rounds and local_steps must be >= 1, got {self.rounds} and {self.local_steps}")
        if self.algorithm == "fedprox" and not self.fedprox_mu > 0:
            raise ValueError(f"fedprox_mu must be > 0, got {self.fedprox_mu}")


class StarterModel(torch.nn.Module):
    """The starter's network, built from its checkpoint: what FLARE's server instantiates (by class path) to hold
    and persist the global weights."""

    def __init__(self, checkpoint: str):
        super().__init__()
        from .checkpoint import load_model

        self.net = load_model(checkpoint).model

    def state_dict(self, *args, **kwargs):  # the bare network's names, as the sites send them
        return self.net.state_dict(*args, **kwargs)

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        return self.net.load_state_dict(state_dict, strict=strict, assign=assign)


def _nvflare():
    try:
        import nvflare  # noqa: F401
    except ImportError:
        raise MissingDependencyError(
            "federated fine-tuning runs on NVIDIA FLARE: `pip install 'speechtao[federated]'` (nvflare 2.9)"
        ) from None


def site_ids(spec: FederatedSpec) -> list[str]:
    """FLARE's names of the simulated sites, in the order of ``spec.sites``."""
    return [f"site-{i + 1}" for i in range(len(spec.sites))]


def write_plan(spec: FederatedSpec, path: Path) -> Path:
    """The JSON each site's process reads: its manifests, the recipe and the local-training settings."""
    plan = {
        "starter": _abs(spec.starter),
        "recipe": str(spec.recipe.resolve()),
        "overrides": list(spec.overrides),
        "local_steps": spec.local_steps,
        "algorithm": spec.algorithm,
        "fedprox_mu": spec.fedprox_mu,
        "threads": spec.threads,
        "runs": str((spec.out_dir / "sites").resolve()),
        "sites": {
            sid: {
                "name": s.name,
                "train": str(s.train.resolve()),
                "dev": str((s.dev or s.train).resolve()),
            }
            for sid, s in zip(site_ids(spec), spec.sites)
        },
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(plan, indent=2) + "\n")
    return path


def _recipe(spec: FederatedSpec, plan: Path):
    _nvflare()
    from nvflare.app_opt.pt.recipes.fedavg import FedAvgRecipe

    kwargs = dict(
        name="speechtao_asr_federated",
        model={"class_path": "speechtao.asr.federate.StarterModel", "args": {"checkpoint": _abs(spec.starter)}},
        min_clients=len(spec.sites),
        num_rounds=spec.rounds,
        train_script=str(CLIENT_SCRIPT),
        train_args=f"--plan {plan.resolve()}",
        exclude_vars="num_batches_tracked",  # BatchNorm's step counters: integers, not averaged
        key_metric="wer",
        key_metric_mode="min",
    )
    if spec.algorithm == "fedprox":
        from nvflare.app_opt.pt.recipes.fedprox import FedProxRecipe

        return FedProxRecipe(**kwargs, fedprox_mu=spec.fedprox_mu)
    return FedAvgRecipe(**kwargs)


def _abs(ref: str) -> str:
    return str(Path(ref).resolve()) if Path(ref).exists() else ref


def export_job(spec: FederatedSpec) -> Path:
    """Write FLARE's job folder (what ``nvflare job submit`` takes) to ``out_dir/job``."""
    plan = write_plan(spec, spec.out_dir / "plan.json")
    recipe = _recipe(spec, plan)
    recipe.export(job_dir=str(spec.out_dir / "job"))
    return spec.out_dir / "job" / "speechtao_asr_federated"  # FLARE writes <job_dir>/<job name>/


def simulate(spec: FederatedSpec) -> Path:
    """Run the rounds in FLARE's simulator; returns the final global model as a speechtao checkpoint."""
    _nvflare()
    from nvflare.recipe.sim_env import SimEnv

    from .checkpoint import load_model, model_payload, save_model

    plan = write_plan(spec, spec.out_dir / "plan.json")
    workspace = (spec.out_dir / "workspace").resolve()
    env = SimEnv(num_clients=len(spec.sites), num_threads=len(spec.sites), workspace_root=str(workspace))
    run = _recipe(spec, plan).execute(env)
    status = run.get_status() if run is not None else None
    result = Path(run.get_result()) if run is not None and run.get_result() else None
    found = sorted(workspace.rglob("FL_global_model.pt"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise InputError(
            f"the FLARE simulation ended ({status}) without a global model under {workspace} (result: {result}); "
            "see the site logs under that folder"
        )
    weights = torch.load(found[-1], map_location="cpu", weights_only=True)
    weights = weights.get("model", weights)
    starter = load_model(spec.starter)
    state = starter.model.state_dict()
    missing = [k for k in state if k not in weights and not k.endswith("num_batches_tracked")]
    if missing:
        raise InputError(f"the global model lacks {len(missing)} tensors of the starter (first: {missing[0]})")
    state.update({k: v for k, v in weights.items() if k in state})
    starter.model.load_state_dict(state)
    extra = {"federated": {"rounds": spec.rounds, "algorithm": spec.algorithm, "sites": [s.name for s in spec.sites]}}
    return save_model(spec.out_dir / "federated.pt", model_payload(starter.model, starter.tokenizer, extra=extra))


def local_finetune(spec: FederatedSpec, name: str, train: list[Path], dev: list[Path], out: Path) -> Path:
    """A baseline: the starter fine-tuned on ``train`` alone for ``rounds * local_steps`` steps."""
    from .train import ASRFinetuneSpec
    from .train import run as train_run

    overrides = [
        *spec.overrides,
        f"init_from={_abs(spec.starter)}",
        f"data.train={json.dumps([str(p) for p in train])}",
        f"data.validation={json.dumps([str(p) for p in dev])}",
        f"trainer.out_dir={out}",
        f"trainer.max_steps={spec.rounds * spec.local_steps}",
    ]
    log.info("baseline %s: fine-tuning on %s", name, ", ".join(map(str, train)))
    train_run(load_spec(ASRFinetuneSpec, spec.recipe, overrides))
    return out / "final.pt"


def run_federated(spec: FederatedSpec, only_job: bool = False) -> dict:
    """Simulate the federation (and the baselines); score every model on every site's test split."""
    from .evaluate import EvalOptions, evaluate

    torch.set_num_threads(spec.threads)
    spec.out_dir.mkdir(parents=True, exist_ok=True)
    save_spec(spec, spec.out_dir / "spec.yaml")
    job = export_job(spec)
    if only_job:
        return {"job": job}
    times, models = {}, {}
    t0 = time.perf_counter()
    models["federated"] = simulate(spec)
    times["federated"] = time.perf_counter() - t0
    if spec.baselines:
        for s in spec.sites:
            t0 = time.perf_counter()
            models[f"{s.name} alone"] = local_finetune(
                spec, s.name, [s.train], [s.dev or s.train], spec.out_dir / "local" / s.name
            )
            times[f"{s.name} alone"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        models["pooled"] = local_finetune(
            spec,
            "pooled",
            [s.train for s in spec.sites],
            [s.dev or s.train for s in spec.sites],
            spec.out_dir / "pooled",
        )
        times["pooled"] = time.perf_counter() - t0
    rows = []
    for label, ref in [("starter", spec.starter), *models.items()]:
        row = {"model": label, "path": str(ref), "wall_s": round(times.get(label, 0.0), 1)}
        for s in spec.sites:
            m = evaluate(ref, s.test, EvalOptions(batch_size=spec.eval_batch_size)).metrics
            row[s.name] = {"wer": m["wer"], "cer": m["cer"]}
        rows.append(row)
    report = {"spec": spec_to_dict(spec), "rows": rows, "job": str(job), "global_model": str(models["federated"])}
    (spec.out_dir / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    md = spec.out_dir / "report.md"
    md.write_text(format_report(spec, rows))
    report["report_md"] = md
    return report


def format_report(spec: FederatedSpec, rows: list[dict]) -> str:
    names = [s.name for s in spec.sites]
    steps = spec.rounds * spec.local_steps
    lines = [
        f"# Federated fine-tuning: {spec.algorithm}, {len(names)} sites, {spec.rounds} rounds x "
        f"{spec.local_steps} local steps",
        "",
        f"WER (CER) on each site's test split. Baselines: the starter fine-tuned {steps} steps on one site's data "
        "alone, and on all sites' data pooled (what a central dataset would allow).",
        "",
        "| model | " + " | ".join(names) + " | wall s |",
        "|---|" + "---|" * len(names) + "---|",
    ]
    for r in rows:
        cells = [f"{100 * r[n]['wer']:.2f}% ({100 * r[n]['cer']:.2f}%)" for n in names]
        lines.append(f"| {r['model']} | " + " | ".join(cells) + f" | {r['wall_s']:.0f} |")
    return "\n".join(lines) + "\n"
