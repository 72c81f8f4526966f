"""``speechtao punct infer``: punctuate and capitalize raw ASR text."""

from __future__ import annotations

import sys


def register(actions) -> None:
    p = actions.add_parser("infer", help="punctuate and capitalize text (arguments, or lines of --file / stdin)")
    p.add_argument("texts", nargs="*", help="raw lowercased text, one argument per segment")
    p.add_argument("--model", required=True, help="model folder, export folder or .onnx file")
    p.add_argument("--file", help="read one segment per line from this file ('-': stdin)")
    p.set_defaults(func=run)


def run(args) -> int:
    from ...errors import InputError
    from ...nlp.punct import PunctCapModel
    from .. import set_threads

    set_threads()
    texts = list(args.texts)
    if args.file:
        src = sys.stdin if args.file == "-" else open(args.file, encoding="utf-8")
        with src:
            texts += [line.rstrip("\n") for line in src]
    if not texts:
        raise InputError("no text given (pass text arguments or --file FILE)")
    for line in PunctCapModel.load(args.model).punctuate(texts):
        print(line)
    return 0
