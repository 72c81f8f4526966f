"""``speechtao data pretrain-split MANIFEST [--out DIR]``: train/test of a synthetic pretraining corpus."""

from __future__ import annotations


def register(actions) -> None:
    p = actions.add_parser(
        "pretrain-split",
        help="split a `data synth` manifest for pretraining: domain voices out, held-out test voices apart",
        description="Write train.jsonl without the custom-domain voices (espeak-ng en-us-nyc, flite rms) and the "
        "held-out voices (espeak-ng en-gb-scotland, flite awb), and test.jsonl with the held-out "
        "voices only, next to the manifest (or into --out).",
    )
    p.add_argument("manifest", help="manifest.jsonl written by `speechtao data synth`")
    p.add_argument("--out", default=None, help="output folder (default: the manifest's folder)")
    p.set_defaults(func=run)


def run(args) -> int:
    from ...corpora.domain import pretrain_split

    train, test, c = pretrain_split(args.manifest, args.out)
    print(f"train  {train}  {c['train']} utterances, {c['train_hours']:.3f} h")
    print(f"test   {test}  {c['test']} utterances, {c['test_hours']:.3f} h (held-out voices)")
    print(f"left out {c['excluded']} utterances of the custom-domain voices")
    return 0
