"""``speechtao textcls make-data``: which-source-is-this-sentence-from TSV datasets with an honest split."""

from __future__ import annotations


def register(actions) -> None:
    p = actions.add_parser(
        "make-data",
        help="build train/dev/test TSV files labelled by text source",
        description="Sentences of each source labelled with the source's name; whole documents "
        "go to one split. Writes OUT/{train,dev,test}.tsv and OUT/stats.json.",
    )
    p.add_argument("--sources", default="wordnet,bible,fortunes,pydocs", help="comma-separated text sources")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--train-per-source", type=int, default=2000)
    p.add_argument("--eval-per-source", type=int, default=250, help="dev and test sentences per source (each)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run)


def run(args) -> int:
    import json

    from ...corpora.textcls_gen import TextclsDataOptions, make_data

    options = TextclsDataOptions(
        tuple(s for s in args.sources.split(",") if s), args.train_per_source, args.eval_per_source, seed=args.seed
    )
    print(json.dumps(make_data(args.out, options)["counts"]))
    return 0
