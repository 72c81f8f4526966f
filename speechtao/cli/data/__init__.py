"""``speechtao data ...``: each action is a module in this package exposing ``register(subparsers)``."""

from __future__ import annotations

import importlib
import pkgutil

HELP = {"data": "manifests, audio corpora and text: validate, convert, stats, synth, text",
        "asr": "speech recognition: info, train, finetune, evaluate, infer, import-nemo, export"}


def register(sub) -> None:
    parser = sub.add_parser("data", help=HELP["data"])
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    for mod in sorted(m.name for m in pkgutil.iter_modules(__path__)):
        importlib.import_module(f"{__name__}.{mod}").register(actions)
