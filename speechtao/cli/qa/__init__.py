"""``speechtao qa ...``: each action is a module in this package exposing ``register(subparsers)``."""

from .. import register_package


def register(sub) -> None:
    register_package(
        sub,
        "qa",
        "extractive question answering (SQuAD 1.1/2.0): make-data, finetune, evaluate, infer, prune, export",
        __name__,
        __path__,
    )
