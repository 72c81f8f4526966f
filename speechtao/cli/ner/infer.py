"""``speechtao ner infer``: tag the entities of sentences."""

from __future__ import annotations

import json

from .._nlp import add_text_args


def register(actions) -> None:
    p = actions.add_parser("infer", help="tag entities in text (arguments, or lines of --file / stdin)")
    add_text_args(p, "sentences, words separated by spaces", "sentence")
    p.add_argument("--json", action="store_true", help="print one JSON object per sentence (words, tags, entities)")
    p.set_defaults(func=run)


def run(args) -> int:
    from ...errors import InputError
    from ...nlp.model_io import load_model
    from ...nlp.ner import TASK, entities, predict
    from .. import set_threads
    from .._nlp import read_texts

    set_threads()
    lines = [t.split() for t in read_texts(args)]
    if not any(lines):
        raise InputError("no text given (pass sentences as arguments or --file FILE)")
    model = load_model(args.model, TASK)
    keep = [w for w in lines if w]
    for words, tags in zip(keep, predict(model, keep)):
        ents = [{"text": " ".join(words[s:e]), "type": k, "start": s, "end": e} for s, e, k in sorted(entities(tags))]
        if args.json:
            print(json.dumps({"words": words, "tags": tags, "entities": ents}))
        else:
            print(" ".join(f"{w}/{t}" if t != "O" else w for w, t in zip(words, tags)))
    return 0
