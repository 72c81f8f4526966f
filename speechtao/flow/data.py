"""The flow's data stage: the user's manifests (or the bundled domain), every defect found up front, a dev split."""

from __future__ import annotations

from pathlib import Path

from ..errors import InputError, ManifestError
from .spec import DataStage

_SPLIT_FILES = ("{}.jsonl", "{}.json")


def _split_file(folder: Path, split: str) -> Path | None:
    for pattern in _SPLIT_FILES:
        p = folder / pattern.format(split)
        if p.is_file():
            return p
    return None


def resolve_manifests(data: DataStage) -> dict[str, Path | None]:
    """``{"train": ..., "dev": ... or None, "test": ...}`` of a user's ``data:`` section (not the bundled domain)."""
    found: dict[str, Path | None] = {"train": None, "dev": None, "test": None}
    if data.dir is not None:
        folder = Path(data.dir)
        if not folder.is_dir():
            raise InputError(
                f"data.dir {str(folder)!r}: not a folder (give a folder holding train.jsonl and test.jsonl)"
            )
        found = {split: _split_file(folder, split) for split in found}
        missing = [s for s in ("train", "test") if found[s] is None and getattr(data, s) is None]
        if missing:
            held = sorted(p.name for p in folder.iterdir())[:10]
            raise InputError(
                f"data.dir {str(folder)!r}: no {' or '.join(f'{s}.jsonl' for s in missing)} (it holds {held}; "
                "name the manifests train.jsonl, test.jsonl and optionally dev.jsonl, or pass data.train=/data.test=)"
            )
    for split in found:
        if getattr(data, split) is not None:
            found[split] = Path(getattr(data, split))
    return found


def check_manifests(paths: dict[str, Path], vocab) -> None:
    """Raise one :class:`ManifestError` listing every defect of every manifest (audio opened, text checked
    against ``vocab`` when given)."""
    from ..data.manifest import validate_manifest

    defects: list[str] = []
    for path in paths.values():
        defects += validate_manifest(path, vocab=vocab, allow_duplicates=True)
    if defects:
        names = ", ".join(str(p) for p in paths.values())
        raise ManifestError(defects, summary=f"{len(defects)} defect(s) in the flow's manifests ({names})")
