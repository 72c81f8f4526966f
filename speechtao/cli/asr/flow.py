"""``speechtao asr flow --spec recipes/asr_flow.yaml [key.sub=value ...]``: the whole TAO flow on one domain."""

from __future__ import annotations

from .. import add_spec_args

DESCRIPTION = """Check your manifests (data.dir=FOLDER with train/test[/dev].jsonl, or data.train= data.test=
[data.dev=]; default: the bundled domain), evaluate the pretrained starter, fine-tune it (checkpoint chosen on dev),
evaluate, prune, retrain distilling from the fine-tuned model, evaluate, export INT8 ONNX and evaluate it with ONNX
Runtime; then print the table (stage, WER, CER, parameters, file size, RTF) and write out_dir/report.md, report.json
and report.png. Resumable: a rerun skips finished stages (--restart starts over). The first stage that fails stops
the flow with a non-zero exit status (2: bad input such as a manifest defect or a missing recipe)."""


def register(actions) -> None:
    p = actions.add_parser(
        "flow",
        help="fine-tune -> prune -> retrain -> INT8 export, evaluated at every stage (recipes/asr_flow.yaml)",
        description=DESCRIPTION,
    )
    add_spec_args(p)
    p.add_argument(
        "--stages",
        default=None,
        metavar="S1,S2",
        help="run only these stages (default: all; see speechtao.flow.STAGES)",
    )
    p.add_argument("--restart", action="store_true", help="forget finished stages of out_dir and run them again")
    p.set_defaults(func=run)


def run(args) -> int:
    import shutil
    import sys
    from pathlib import Path

    from ...flow import STAGES, FlowSpec, format_table, run_flow
    from ...spec import load_spec

    spec = load_spec(FlowSpec, args.spec, args.overrides)
    only = tuple(s.strip() for s in args.stages.split(",") if s.strip()) if args.stages else STAGES
    if args.restart and Path(spec.out_dir).exists():
        shutil.rmtree(spec.out_dir)
    summary = run_flow(spec, log=lambda line: print(line, file=sys.stderr, flush=True), only=only)
    print(format_table(summary))
    if "relative_wer_reduction" in summary:
        print(f"fine-tuning changed the test WER by {-100 * summary['relative_wer_reduction']:+.1f}% (relative)")
    print(f"report: {Path(spec.out_dir) / 'report.md'} ({summary['wall_s']:.0f} s)")
    return 0
