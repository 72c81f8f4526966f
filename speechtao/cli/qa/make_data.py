"""``speechtao qa make-data``: generate SQuAD 2.0 train/validation/test sets from real and generated paragraphs."""

from __future__ import annotations

import json

DESCRIPTION = """Questions about generated biographies (people, places, dates, organizations), real WordNet noun
definitions (Debian wordnet-base) and real King James Bible sentences (Debian bible-kjv-text); train.json also gets
questions asked of real sentences by rule (--cloze). test.json uses its
own paragraph and question templates and filler lists, so no paragraph or template is shared with
train.json/validation.json. Writes OUT/train.json, validation.json, test.json and data_card.json."""


def register(actions) -> None:
    p = actions.add_parser("make-data", help="generate QA data (SQuAD 2.0 JSON)", description=DESCRIPTION)
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--train", type=int, default=8000, help="training questions (about; default 8000)")
    p.add_argument("--validation", type=int, default=800, help="validation questions (default 800)")
    p.add_argument("--test", type=int, default=800, help="held-out test questions (about; default 800)")
    p.add_argument(
        "--unanswerable",
        type=float,
        default=0.2,
        help="fraction of unanswerable questions (0: SQuAD 1.1-style data, all answerable)",
    )
    p.add_argument(
        "--sources", default="facts,wordnet,bible", help="comma-separated sources to mix (facts, wordnet, bible)"
    )
    p.add_argument(
        "--cloze",
        type=int,
        default=3000,
        help="training questions asked of real sentences by rule (WordNet examples, Bible, fortunes; "
        "default 3000; 0: none)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run)


def run(args) -> int:
    from ...corpora.qa_gen import make_qa_data
    from ...errors import InputError

    weights = {"facts": 0.6, "wordnet": 0.28, "bible": 0.12}
    names = [s.strip() for s in args.sources.split(",") if s.strip()]
    unknown = [s for s in names if s not in weights]
    if unknown or not names:
        raise InputError(f"--sources {args.sources!r}: unknown source(s) {unknown} (choose from facts, wordnet, bible)")
    card = make_qa_data(
        args.out,
        args.train,
        args.validation,
        args.test,
        args.seed,
        args.unanswerable,
        {s: weights[s] for s in names},
        args.cloze,
    )
    for name, info in card["splits"].items():
        print(
            f"{name}: {info['questions']} questions ({info['unanswerable']} unanswerable) on {info['paragraphs']} "
            f"paragraphs; by source {json.dumps(info['by_source'])}"
        )
    print(f"wrote {args.out}/train.json, validation.json, test.json, data_card.json")
    return 0
