"""``speechtao ner convert-conll``: CoNLL column files to NeMo's text.txt/labels.txt."""

from __future__ import annotations


def register(actions) -> None:
    p = actions.add_parser(
        "convert-conll",
        help="convert a CoNLL column file (word ... tag) to text.txt/labels.txt",
        description="Word in the first column, tag in --tag-column (default: last); "
        "-DOCSTART- lines are skipped, blank lines end sentences, IOB1 becomes IOB2.",
    )
    p.add_argument("--input", required=True, help="CoNLL file (e.g. eng.train)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--tag-column", type=int, default=-1, help="column index of the tag (default -1: last)")
    p.set_defaults(func=run)


def run(args) -> int:
    from ...nlp.ner import convert_conll, entities, write_dataset

    examples = convert_conll(args.input, args.tag_column)
    write_dataset(args.out, examples)
    print(f"wrote {args.out}: {len(examples)} sentences, {sum(len(entities(e.tags)) for e in examples)} entities")
    return 0
