"""``speechtao textcls infer``: the label of each sentence."""

from __future__ import annotations

from .._nlp import add_text_args


def register(actions) -> None:
    p = actions.add_parser("infer", help="classify sentences (arguments, or lines of --file / stdin)")
    add_text_args(p, "sentences", "sentence")
    p.set_defaults(func=run)


def run(args) -> int:
    from ...errors import InputError
    from ...nlp.model_io import load_model
    from ...nlp.textcls import TASK, predict
    from .. import set_threads
    from .._nlp import read_texts

    set_threads()
    texts = read_texts(args, skip_blank=True)
    if not texts:
        raise InputError("no text given (pass sentences as arguments or --file FILE)")
    for text, (label, prob) in zip(texts, predict(load_model(args.model, TASK), texts)):
        print(f"{label}\t{prob:.3f}\t{text}")
    return 0
