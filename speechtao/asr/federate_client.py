"""One site of ``speechtao asr federate``: the script FLARE runs at every site (``--plan plan.json``).

Each round: receive the global weights, fine-tune them for ``local_steps`` with the site's own manifests and the
ordinary ``asr finetune`` recipe (FedProx: plus ``mu / 2 * ||w - w_global||^2``), send the weights back with
the step count (FedAvg's weight) and the site's validation WER. The site's audio never leaves this process.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch


def _proximal(task, model: torch.nn.Module, mu: float) -> None:
    """Add FedProx's proximal term to ``task.loss``, anchored at the weights ``model`` holds now."""
    anchor = [p.detach().clone() for p in model.parameters()]
    base = task.loss

    def loss(m, batch):
        prox = sum(((p - q) ** 2).sum() for p, q in zip(m.parameters(), anchor, strict=True))
        return base(m, batch) + 0.5 * mu * prox

    task.loss = loss


def train_round(plan: dict, site: dict, weights: dict, round_no: int) -> tuple[dict, dict]:
    """Fine-tune ``weights`` on the site's data; returns (new weights, metrics)."""
    from speechtao.asr.checkpoint import load_model, model_payload, save_model
    from speechtao.asr.train import ASRFinetuneSpec, build
    from speechtao.spec import load_spec

    run_dir = Path(plan["runs"]) / site["name"] / f"round-{round_no:03d}"
    starter = load_model(plan["starter"])
    state = starter.model.state_dict()
    state.update({k: torch.as_tensor(v).to(state[k].dtype) for k, v in weights.items() if k in state})
    starter.model.load_state_dict(state)
    init = save_model(run_dir / "global.pt", model_payload(starter.model, starter.tokenizer))
    overrides = [
        *plan["overrides"],
        f"init_from={init}",
        f"data.train={json.dumps([site['train']])}",
        f"data.validation={json.dumps([site['dev']])}",
        f"trainer.out_dir={run_dir / 'train'}",
        f"trainer.max_steps={plan['local_steps']}",
        f"trainer.val_every={plan['local_steps']}",
    ]
    spec = load_spec(ASRFinetuneSpec, plan["recipe"], overrides)
    trainer = build(spec)
    if plan["algorithm"] == "fedprox":
        _proximal(trainer.task, trainer.task.model, plan["fedprox_mu"])
    metrics = trainer.fit()
    final = load_model(run_dir / "train" / "final.pt").model.state_dict()
    wer = (metrics.get("final_val") or {}).get("wer")
    return {k: v.cpu() for k, v in final.items()}, {"wer": wer if wer is not None else float("nan")}


def main() -> None:
    argv = sys.argv[1:]
    if len(argv) != 2 or argv[0] != "--plan":
        raise SystemExit("usage: federate_client.py --plan PLAN.json (written by `speechtao asr federate`)")
    plan_path = Path(argv[1])
    plan = json.loads(plan_path.read_text())

    import nvflare.client as flare
    from nvflare.app_common.abstract.fl_model import FLModel

    torch.set_num_threads(int(plan.get("threads", 1)))
    flare.init()
    site_id = flare.get_site_name()
    if site_id not in plan["sites"]:
        raise SystemExit(f"site {site_id!r} is not in {plan_path} (sites: {', '.join(plan['sites'])})")
    site = plan["sites"][site_id]
    while flare.is_running():
        incoming = flare.receive()
        if incoming is None:
            break
        params, metrics = train_round(plan, site, incoming.params, incoming.current_round or 0)
        flare.send(FLModel(params=params, metrics=metrics, meta={"NUM_STEPS_CURRENT_ROUND": int(plan["local_steps"])}))


if __name__ == "__main__":
    main()
