"""``speechtao ner infer``: tag the entities of sentences."""

from __future__ import annotations

import json
import sys


def register(actions) -> None:
    p = actions.add_parser("infer", help="tag entities in text (arguments, or lines of --file / stdin)")
    p.add_argument("texts", nargs="*", help="sentences, words separated by spaces")
    p.add_argument("--model", required=True, help="model folder, export folder or .onnx file")
    p.add_argument("--file", help="read one sentence per line from this file ('-': stdin)")
    p.add_argument("--json", action="store_true", help="print one JSON object per sentence (words, tags, entities)")
    p.set_defaults(func=run)


def run(args) -> int:
    from ...errors import InputError
    from ...nlp.common import load_model
    from ...nlp.ner import TASK, entities, predict
    from .. import set_threads

    set_threads()
    texts = list(args.texts)
    if args.file:
        src = sys.stdin if args.file == "-" else open(args.file, encoding="utf-8")
        with src:
            texts += [line.rstrip("\n") for line in src]
    lines = [t.split() for t in texts]
    if not any(lines):
        raise InputError("no text given (pass sentences as arguments or --file FILE)")
    model = load_model(args.model, TASK)
    keep = [w for w in lines if w]
    for words, tags in zip(keep, predict(model, keep)):
        ents = [{"text": " ".join(words[s:e]), "type": k, "start": s, "end": e}
                for s, e, k in sorted(entities(tags))]
        if args.json:
            print(json.dumps({"words": words, "tags": tags, "entities": ents}))
        else:
            print(" ".join(f"{w}/{t}" if t != "O" else w for w, t in zip(words, tags)))
    return 0
