"""Typed errors. The library raises these; only the CLI turns them into messages and exit codes.

Every message names the item, the value and the fix, e.g.
``train.jsonl:17: audio_filepath 'a.wav' not found (paths resolve relative to the manifest's folder)``.
"""

from __future__ import annotations


class SpeechtaoError(Exception):
    """Base class. ``exit_code`` is what the CLI returns."""

    exit_code = 1


class InputError(SpeechtaoError):
    """Bad user input: a spec, a manifest, an audio file, a checkpoint, a request. CLI exit 2."""

    exit_code = 2


class SpecError(InputError):
    """A recipe/spec that does not match its dataclass (unknown key, wrong type, missing field)."""


class ManifestError(InputError):
    """One or more defective manifest lines. ``defects`` holds every ``FILE:LINE: problem (fix)`` string."""

    def __init__(self, defects: list[str], summary: str | None = None):
        self.defects = list(defects)
        head = summary or f"{len(self.defects)} defect(s) found"
        super().__init__(head + ("\n" + "\n".join(self.defects) if self.defects else ""))


class AudioError(InputError):
    """An audio file or buffer that cannot be read or has the wrong format."""


class CheckpointError(InputError):
    """A checkpoint or model archive that is missing, truncated, corrupt or incompatible."""


class DataError(InputError):
    """Data that is well-formed but unusable (e.g. a filter that leaves an empty set)."""


class MissingDependencyError(SpeechtaoError):
    """An optional dependency (TensorRT, a TTS engine, NeMo, CUDA) is not available. CLI exit 3."""

    exit_code = 3
