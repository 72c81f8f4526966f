"""The ``speechtao`` command line: ``speechtao <group> <action> [--spec recipe.yaml] [key.sub=value ...]``.

Each command group lives in its own module (or package) under ``speechtao/cli/`` and exposes
``register(subparsers)``, which adds its parser and sets ``func`` on every leaf. Library code raises
:class:`speechtao.errors.SpeechtaoError`; this is the only place where errors become messages and exit codes.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys

from .. import __version__
from ..errors import SpeechtaoError

# Command groups in the order `speechtao --help` lists them. Each is speechtao.cli.<name>, but for the NLP groups,
# which speechtao.cli.nlp builds from its table.
GROUPS = ["env", "data", "asr", "lm", "qa", "punct", "ner", "textcls", "serve"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="speechtao",
        description="Fine-tune, evaluate, prune, export and serve speech and language models.",
    )
    parser.add_argument("--version", action="version", version=f"speechtao {__version__}")
    sub = parser.add_subparsers(dest="group", metavar="GROUP")
    sub.required = True
    from .nlp import TASKS as NLP_TASKS
    from .nlp import register as register_nlp

    for name in GROUPS:
        if name in NLP_TASKS:  # qa, punct, ner, textcls: one table in cli/nlp.py
            register_nlp(sub, name)
        else:
            importlib.import_module(f"{__name__}.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        rc = args.func(args)
    except SpeechtaoError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `speechtao ... | head`: stop quietly.
        sys.stderr.close()
        return 0
    return int(rc or 0)


def register_package(sub, name: str, help: str, package: str, path) -> None:
    """Add group ``name`` whose actions are the modules of ``package`` (each exposing ``register``)."""
    parser = sub.add_parser(name, help=help)
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    for mod in sorted(m.name for m in pkgutil.iter_modules(path) if not m.name.startswith("_")):  # _x: helpers
        importlib.import_module(f"{package}.{mod}").register(actions)


def add_spec_args(parser: argparse.ArgumentParser, required: bool = True) -> None:
    """The common ``--spec recipe.yaml key.sub=value ...`` pair of arguments."""
    parser.add_argument("--spec", required=required, help="recipe YAML (see recipes/)")
    parser.add_argument("overrides", nargs="*", metavar="key.sub=value", help="spec overrides, parsed as YAML")


def set_threads() -> None:
    """Respect SPEECHTAO_THREADS (or OMP_NUM_THREADS) for torch's intra-op pool."""
    n = os.environ.get("SPEECHTAO_THREADS")
    if n:
        import torch

        torch.set_num_threads(int(n))
