"""``speechtao punct infer``: punctuate and capitalize raw ASR text."""

from __future__ import annotations

from .._nlp import add_text_args


def register(actions) -> None:
    p = actions.add_parser("infer", help="punctuate and capitalize text (arguments, or lines of --file / stdin)")
    add_text_args(p, "raw lowercased text, one argument per segment", "segment")
    p.set_defaults(func=run)


def run(args) -> int:
    from ...errors import InputError
    from ...nlp.punct import PunctCapModel
    from .. import set_threads
    from .._nlp import read_texts

    set_threads()
    texts = read_texts(args)
    if not texts:
        raise InputError("no text given (pass text arguments or --file FILE)")
    for line in PunctCapModel.load(args.model).punctuate(texts):
        print(line)
    return 0
