"""``speechtao data stats MANIFEST [--json]``: hours, utterances, speakers, vocabulary, durations."""

from __future__ import annotations


def register(actions) -> None:
    p = actions.add_parser(
        "stats",
        help="corpus statistics of a manifest: hours, speakers, engines, characters, words, durations",
    )
    p.add_argument("manifest", help="the .json/.jsonl manifest")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(func=run)


def run(args) -> int:
    import json

    from ...data.manifest import read_manifest
    from ...data.stats import format_stats, manifest_stats

    stats = manifest_stats(read_manifest(args.manifest))
    if args.json:
        print(json.dumps({"manifest": args.manifest, **stats}, indent=2, ensure_ascii=False))
    else:
        print(f"manifest    {args.manifest}")
        print(format_stats(stats))
    return 0
