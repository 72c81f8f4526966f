"""``speechtao punct ...``: each action is a module in this package exposing ``register(subparsers)``."""

from .. import register_package


def register(sub) -> None:
    register_package(
        sub,
        "punct",
        "punctuation and capitalization: make-data, finetune, evaluate, infer, prune, export",
        __name__,
        __path__,
    )
