"""``history.jsonl``: the curves of a run, one JSON object per line, written by the Trainer in trainer.out_dir.

Every log interval ``{"kind": "train", "epoch": E, "step": S, "loss": L, "lr": LR, "elapsed_s": T}``; every
validation ``{"kind": "val", "epoch": E, "step": S, "metrics": {...}, "elapsed_s": T}``. ``elapsed_s`` is
wall-clock time since the run first started (earlier runs of a resumed one included). On ``--resume`` the
lines written after the resumed checkpoint are dropped, so the file reads as if the run had not stopped.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import DataError
from .checkpoint import atomic_write_bytes

HISTORY_FILE = "history.jsonl"


def read_history(path: str | Path) -> list[dict]:
    """The entries of a ``history.jsonl`` (a file or the run folder holding it), in order."""
    path = Path(path)
    if path.is_dir():
        path = path / HISTORY_FILE
    if not path.is_file():
        raise DataError(f"{path}: no training history (the Trainer writes history.jsonl into trainer.out_dir)")
    entries = []
    for n, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}:{n}: not a JSON line ({exc.msg}); the file was cut or edited") from None
        if not isinstance(entry, dict) or entry.get("kind") not in ("train", "val"):
            raise DataError(f"{path}:{n}: not a history entry (expected an object with kind 'train' or 'val')")
        entries.append(entry)
    return entries


class HistoryWriter:
    """Appends entries to ``out_dir/history.jsonl``; counts its lines so that a checkpoint can record them."""

    def __init__(self, out_dir: Path, resume_lines: int | None = None, resume_step: int | None = None):
        """A new run starts an empty file. A resumed run keeps the first ``resume_lines`` lines (the count its
        checkpoint recorded) or, for checkpoints without it, the entries up to ``resume_step``."""
        self.path = Path(out_dir) / HISTORY_FILE
        kept: list[str] = []
        if resume_step is not None and self.path.is_file():
            lines = [line for line in self.path.read_text().splitlines() if line.strip()]
            if resume_lines is not None:
                kept = lines[:resume_lines]
            else:
                kept = [line for line in lines if _step_of(line) <= resume_step]
        atomic_write_bytes(self.path, lambda f: f.write("".join(line + "\n" for line in kept).encode()))
        self.lines = len(kept)

    def write(self, entry: dict) -> None:
        with self.path.open("a") as f:
            f.write(json.dumps(entry) + "\n")
        self.lines += 1


def _step_of(line: str) -> int:
    try:
        return int(json.loads(line)["step"])
    except (ValueError, KeyError, TypeError):
        return 1 << 62  # an unreadable (cut) line goes
