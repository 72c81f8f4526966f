"""``speechtao data augment``: augmented copies of a manifest's audio, written as a new manifest."""

from __future__ import annotations


def register(actions) -> None:
    p = actions.add_parser(
        "augment",
        help="write augmented copies of a manifest's audio (speed, room, noise, telephone, codecs) + manifest",
        description="Each utterance gets --copies augmented WAVs under OUT/audio and a line in "
        "OUT/<name>.aug.jsonl (transcript kept; 'augmentation' lists the steps). Deterministic by --seed; a "
        "rerun skips the files already written (resume). Options are the fields of OfflineAugmentOptions "
        "(speechtao/data/augment_offline.py), from --spec YAML and key=value overrides, e.g. "
        "chain.noise_prob=0.8 'chain.noise_snr_db=[5, 20]' 'codecs=[mulaw, opus]' codec_prob=0.3.",
    )
    p.add_argument("--manifest", required=True, help="the manifest whose audio is augmented")
    p.add_argument("--out", required=True, help="output folder (audio/ and the new manifest)")
    p.add_argument("--spec", help="YAML of OfflineAugmentOptions (default: the built-in chain)")
    p.add_argument("--copies", type=int, help="augmented copies per utterance (overrides the spec)")
    p.add_argument("--seed", type=int, help="random seed (overrides the spec)")
    p.add_argument("overrides", nargs="*", metavar="key.sub=value", help="option overrides, parsed as YAML")
    p.set_defaults(func=run)


def run(args) -> int:
    import sys

    from ...data.augment_offline import OfflineAugmentOptions, augment_manifest
    from ...spec import load_spec

    overrides = list(args.overrides)
    overrides += [f"copies={args.copies}"] if args.copies is not None else []
    overrides += [f"seed={args.seed}"] if args.seed is not None else []
    options = load_spec(OfflineAugmentOptions, args.spec, overrides)

    def progress(done: int, total: int) -> None:
        if done == total or done % 50 == 0:
            print(f"{done}/{total} utterances", file=sys.stderr)

    report = augment_manifest(args.manifest, args.out, options, progress)
    steps = ", ".join(f"{k} {v}" for k, v in sorted(report.applied.items())) or "none"
    print(
        f"wrote {report.manifest}: {report.entries} lines ({report.written} files made, {report.reused} reused "
        f"from an earlier run); steps applied: {steps}"
    )
    return 0
