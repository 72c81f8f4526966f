"""``speechtao ner ...``: each action is a module in this package exposing ``register(subparsers)``."""

from .. import register_package


def register(sub) -> None:
    register_package(
        sub,
        "ner",
        "named entities: make-data, convert-conll, finetune, evaluate, infer, prune, export",
        __name__,
        __path__,
    )
