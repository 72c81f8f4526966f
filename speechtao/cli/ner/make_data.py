"""``speechtao ner make-data``: generated NER sentences with disjoint templates and names per split."""

from __future__ import annotations


def register(actions) -> None:
    p = actions.add_parser(
        "make-data",
        help="generate train/dev/test NER datasets (templates + real names)",
        description="Fill hand-written templates with people, places and organizations from "
        "WordNet and name lists, and generated dates; test templates and test names are "
        "disjoint from train/dev. Writes OUT/{train,dev,test}/{text,labels}.txt and stats.json.",
    )
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--train", type=int, default=6000, help="training sentences (default 6000)")
    p.add_argument("--dev", type=int, default=500)
    p.add_argument("--test", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run)


def run(args) -> int:
    import json

    from ...corpora.ner_gen import NerDataOptions, make_data

    result = make_data(args.out, NerDataOptions(args.train, args.dev, args.test, seed=args.seed))
    print(json.dumps(result["counts"]))
    return 0
