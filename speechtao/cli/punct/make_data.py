"""``speechtao punct make-data``: train/dev/test punctuation datasets from real punctuated English."""

from __future__ import annotations

MAKE_DATA_QUESTION_LINES = 3000
MAKE_DATA_QUESTION_COPIES = 3
MAKE_DATA_EXTRA_LINES = 8000


def register(actions) -> None:
    p = actions.add_parser(
        "make-data",
        help="build text.txt/labels.txt datasets from Debian text sources",
        description="Split documents (runs of consecutive sentences) of each source into "
        "train/dev/test by a seeded hash; write OUT/{train,dev,test}/{text,labels}.txt and "
        "OUT/stats.json.",
    )
    p.add_argument(
        "--sources",
        default="wordnet,bible,fortunes,pydocs",
        help="comma-separated text sources (default wordnet,bible,fortunes,pydocs)",
    )
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--lines-per-source", type=int, default=8000, help="training lines per source (default 8000)")
    p.add_argument("--eval-fraction", type=float, default=0.05, help="share of documents for dev and for test")
    p.add_argument(
        "--question-lines",
        type=int,
        default=MAKE_DATA_QUESTION_LINES,
        help="extra training lines per source that hold a question, from training documents beyond "
        f"the line budget (default {MAKE_DATA_QUESTION_LINES}; dev and test are the same either way)",
    )
    p.add_argument(
        "--question-copies",
        type=int,
        default=MAKE_DATA_QUESTION_COPIES,
        help=f"times each training line with a question is written (default {MAKE_DATA_QUESTION_COPIES})",
    )
    p.add_argument(
        "--extra-lines",
        type=int,
        default=MAKE_DATA_EXTRA_LINES,
        help="more training lines per source, from training documents no other stream used (default "
        f"{MAKE_DATA_EXTRA_LINES}; dev and test are the same either way)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run)


def run(args) -> int:
    import json

    from ...corpora.punct_gen import MakeDataOptions, make_data
    from ...errors import InputError

    try:
        options = MakeDataOptions(
            tuple(s for s in args.sources.split(",") if s),
            args.lines_per_source,
            args.eval_fraction,
            question_lines=args.question_lines,
            question_copies=args.question_copies,
            extra_lines=args.extra_lines,
            seed=args.seed,
        )
    except ValueError as exc:
        raise InputError(str(exc)) from None
    result = make_data(args.out, options)
    print(json.dumps(result["counts"]))
    return 0
