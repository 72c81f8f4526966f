"""``speechtao data ...``: each action is a module in this package exposing ``register(subparsers)``."""

from .. import register_package


def register(sub) -> None:
    register_package(
        sub, "data", "manifests, audio corpora and text: validate, convert, stats, synth, text", __name__, __path__
    )
