"""``speechtao asr ...``: each action is a module in this package exposing ``register(subparsers)``."""

from .. import register_package


def register(sub) -> None:
    register_package(
        sub,
        "asr",
        "speech recognition: info, train, finetune, evaluate, infer, import-nemo, export",
        __name__,
        __path__,
    )
