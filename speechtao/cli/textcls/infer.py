"""``speechtao textcls infer``: the label of each sentence."""

from __future__ import annotations

import sys


def register(actions) -> None:
    p = actions.add_parser("infer", help="classify sentences (arguments, or lines of --file / stdin)")
    p.add_argument("texts", nargs="*", help="sentences")
    p.add_argument("--model", required=True, help="model folder, export folder or .onnx file")
    p.add_argument("--file", help="read one sentence per line from this file ('-': stdin)")
    p.set_defaults(func=run)


def run(args) -> int:
    from ...errors import InputError
    from ...nlp.common import load_model
    from ...nlp.textcls import TASK, predict
    from .. import set_threads

    set_threads()
    texts = list(args.texts)
    if args.file:
        src = sys.stdin if args.file == "-" else open(args.file, encoding="utf-8")
        with src:
            texts += [line.rstrip("\n") for line in src if line.strip()]
    if not texts:
        raise InputError("no text given (pass sentences as arguments or --file FILE)")
    for text, (label, prob) in zip(texts, predict(load_model(args.model, TASK), texts)):
        print(f"{label}\t{prob:.3f}\t{text}")
    return 0
