"""Training checkpoints: atomic writes, a JSON index, retention of the last K and the best K by a metric.

A checkpoint is ``torch.save`` of a plain dict (tensors, numbers, strings, lists, dicts) loaded back with
``weights_only=True``. For models it is ``{**model_payload(...), "train_state": {...}}`` so that the model
loader reads it like any exported checkpoint. Files live in ``<out_dir>/checkpoints/step-00000400.pt``
beside ``index.json`` (step, file, metric of every kept checkpoint, newest last).
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import CheckpointError


def atomic_write_bytes(path: str | Path, write) -> None:
    """Call ``write(fileobj)`` on a temporary file in the same folder, fsync it, then rename it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save_checkpoint(path: str | Path, payload: dict) -> None:
    """Write ``payload`` atomically: a reader sees the old file or the complete new one, never a part."""
    atomic_write_bytes(path, lambda f: torch.save(payload, f))


def load_checkpoint(path: str | Path) -> dict:
    """Read a training checkpoint (CPU tensors). Missing, truncated or foreign files raise CheckpointError."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found (check trainer.out_dir, or start without --resume)")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises RuntimeError/EOFError/UnpicklingError/... for damaged files
        raise CheckpointError(
            f"{path}: cannot read checkpoint ({type(exc).__name__}: {str(exc).splitlines()[0][:200]}); the file is "
            "truncated or corrupt: delete it to resume from the previous checkpoint, or start a new run"
        ) from None
    if not isinstance(data, dict) or "train_state" not in data:
        raise CheckpointError(
            f"{path}: not a speechtao training checkpoint (no train_state); resume needs a file written by "
            "`speechtao ... train/finetune` in trainer.out_dir/checkpoints"
        )
    return data


@dataclass
class _Entry:
    step: int
    file: str
    metric: float | None


class CheckpointManager:
    """Keeps the newest ``keep_last`` checkpoints plus the ``keep_best`` ones with the best metric.

    ``mode`` is ``"min"`` (WER, loss) or ``"max"``. Checkpoints saved without a metric count only as recent.
    """

    def __init__(self, folder: str | Path, keep_last: int = 2, keep_best: int = 1, mode: str = "min"):
        if keep_last < 1:
            raise ValueError(f"keep_last must be >= 1 (resume needs the newest checkpoint), got {keep_last}")
        self.folder = Path(folder)
        self.keep_last = keep_last
        self.keep_best = keep_best
        self.mode = mode
        self.entries: list[_Entry] = self._read_index()

    @property
    def index_path(self) -> Path:
        return self.folder / "index.json"

    def _read_index(self) -> list[_Entry]:
        if not self.index_path.is_file():
            # No index (e.g. copied folder): fall back to the files themselves, metric unknown.
            files = sorted(self.folder.glob("step-*.pt")) if self.folder.is_dir() else []
            return [_Entry(int(f.stem.split("-")[1]), f.name, None) for f in files]
        try:
            raw = json.loads(self.index_path.read_text())
            return [_Entry(int(e["step"]), str(e["file"]), e.get("metric")) for e in raw["checkpoints"]]
        except (ValueError, KeyError, TypeError) as exc:
            raise CheckpointError(
                f"{self.index_path}: unreadable checkpoint index ({exc}); delete it and the step-*.pt files are "
                "listed from the folder instead"
            ) from None

    def _write_index(self) -> None:
        data = {"checkpoints": [e.__dict__ for e in self.entries], "best": self.best_file()}
        atomic_write_bytes(self.index_path, lambda f: f.write(json.dumps(data, indent=1).encode()))

    def _ranked(self) -> list[_Entry]:
        scored = [e for e in self.entries if e.metric is not None]
        return sorted(scored, key=lambda e: e.metric if self.mode == "min" else -e.metric)

    def best_file(self) -> str | None:
        ranked = self._ranked()
        return ranked[0].file if ranked else None

    def save(self, step: int, payload: dict, metric: float | None = None) -> Path:
        name = f"step-{step:08d}.pt"
        path = self.folder / name
        save_checkpoint(path, payload)
        self.entries = [e for e in self.entries if e.step != step] + [_Entry(step, name, metric)]
        self.entries.sort(key=lambda e: e.step)
        keep = {e.file for e in self.entries[-self.keep_last :]}
        keep |= {e.file for e in self._ranked()[: self.keep_best]}
        dropped = [e for e in self.entries if e.file not in keep]
        self.entries = [e for e in self.entries if e.file in keep]
        self._write_index()  # index first: a crash between here and the unlinks leaves only stray files
        for e in dropped:
            (self.folder / e.file).unlink(missing_ok=True)
        return path

    def latest(self) -> Path | None:
        """The newest checkpoint file that exists, or None."""
        for e in reversed(self.entries):
            if (self.folder / e.file).is_file():
                return self.folder / e.file
        return None
