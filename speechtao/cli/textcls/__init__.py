"""``speechtao textcls ...``: each action is a module in this package exposing ``register(subparsers)``."""

from .. import register_package


def register(sub) -> None:
    register_package(
        sub, "textcls", "text classification: make-data, finetune, evaluate, infer, prune, export", __name__, __path__
    )
