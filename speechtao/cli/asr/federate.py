"""``speechtao asr federate --spec recipes/asr_federated.yaml``: federated fine-tuning on NVIDIA FLARE."""

from __future__ import annotations

from .. import add_spec_args

DESCRIPTION = """FedAvg (or FedProx) rounds over N sites in FLARE's simulator: each site fine-tunes the global weights
on its own manifests with the `asr finetune` recipe and sends only weights back. Writes out_dir/job (the FLARE job
folder real sites run), out_dir/federated.pt, and with baselines: true the same steps fine-tuned per site alone and
on all data pooled, every model scored on every site's test split (out_dir/report.md)."""


def register(actions) -> None:
    p = actions.add_parser(
        "federate",
        help="federated fine-tuning over several sites on NVIDIA FLARE (recipes/asr_federated.yaml)",
        description=DESCRIPTION,
    )
    add_spec_args(p)
    p.add_argument("--export-only", action="store_true", help="write the FLARE job folder and stop")
    p.set_defaults(func=run)


def run(args) -> int:
    from ...asr.federate import FederatedSpec, run_federated
    from ...spec import load_spec

    spec = load_spec(FederatedSpec, args.spec, args.overrides)
    report = run_federated(spec, only_job=args.export_only)
    job = report["job"]
    if not args.export_only:
        print(report["report_md"].read_text())
        print(f"global model: {report['global_model']}")
    print(f"FLARE job folder: {job}")
    print(
        "to run it on real FLARE sites: provision a project (`nvflare provision`), give each site the manifests "
        f"the plan names ({spec.out_dir / 'plan.json'}), then `nvflare job submit -j {job}` from the admin console"
    )
    return 0
