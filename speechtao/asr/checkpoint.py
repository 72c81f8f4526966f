"""speechtao ASR checkpoints: one ``torch.save`` file that carries everything needed to rebuild the model.

Payload (plain types and tensors only, so ``torch.load(weights_only=True)`` reads it)::

    {"format": "speechtao-asr", "version": 1,
     "model_config": ASRModelConfig.to_dict(),   # architecture + feature settings
     "tokenizer": tokenizer.to_dict(),           # vocabulary (characters or a SentencePiece model)
     "state_dict": {...},                        # NeMo-compatible names
     "spec": resolved recipe dict or None,
     "extra": {...}}                             # free-form: metrics, provenance

Training checkpoints add a ``"train_state"`` entry, which :func:`load_model` ignores.
:func:`load_model` also accepts a ``.nemo`` archive or a preset name (random weights, character vocabulary).
"""

from __future__ import annotations

import os
import tarfile
import zipfile
from dataclasses import dataclass, field, is_dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError, SpecError
from ..spec import spec_to_dict
from .models import PRESETS, ASRModelConfig, EncDecCTCModel, build_model
from .whisper_ctc import PRETRAINED as WHISPER_PRETRAINED
from .whisper_ctc import WhisperCTCConfig, is_whisper_config
from .whisper_ctc import build_model as build_whisper

FORMAT = "speechtao-asr"
VERSION = 1


@dataclass
class LoadedModel:
    model: EncDecCTCModel
    tokenizer: Any  # speechtao.text.tokenizers.CharTokenizer | SentencePieceTokenizer
    config: ASRModelConfig
    spec: dict | None = None
    extra: dict = field(default_factory=dict)


def model_payload(model: EncDecCTCModel, tokenizer: Any, spec: Any = None, extra: dict | None = None) -> dict:
    """The checkpoint dict for ``model`` + ``tokenizer`` (see the module docstring)."""
    if tokenizer.vocab_size != model.vocab_size:
        raise CheckpointError(
            f"tokenizer has {tokenizer.vocab_size} tokens but the model's decoder has {model.vocab_size} "
            "(call model.change_vocabulary(tokenizer.vocab_size) before saving)"
        )
    if spec is not None and is_dataclass(spec):
        spec = spec_to_dict(spec)
    state = {k: v.detach().cpu().clone() for k, v in model.inference_state_dict().items()}  # may set the config
    return {
        "format": FORMAT,
        "version": VERSION,
        "model_config": model.config.to_dict(),
        "tokenizer": tokenizer.to_dict(),
        "state_dict": state,
        "spec": spec,
        "extra": dict(extra or {}),
    }


def save_model(path: str | Path, payload: dict) -> Path:
    """Write ``payload`` atomically: a temporary file in the same folder, then ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def _first_sentence(exc: Exception) -> str:
    text = (str(exc).splitlines() or [""])[0]
    return text.split(". ")[0][:200]


def _read_payload(path: Path) -> dict:
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as exc:
        raise CheckpointError(
            f"{path}: cannot read the checkpoint, the file is truncated or corrupt ({type(exc).__name__}: "
            f"{_first_sentence(exc)}); copy it again or save it again from its training run"
        ) from None
    except Exception as exc:  # pickle.UnpicklingError and friends: objects weights_only refuses
        raise CheckpointError(
            f"{path}: not a speechtao checkpoint ({type(exc).__name__}: {_first_sentence(exc)}); "
            "pass a file written by `speechtao asr train/finetune/import-nemo`, a .nemo archive or a preset name"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        hint = ""
        if isinstance(payload, dict) and "state_dict" in payload and "hyper_parameters" in payload:
            hint = " (it looks like a PyTorch Lightning checkpoint; convert its .nemo with `speechtao asr import-nemo`)"
        raise CheckpointError(
            f"{path}: not a speechtao ASR checkpoint, format is {payload.get('format') if isinstance(payload, dict) else type(payload).__name__!r}, "
            f"expected {FORMAT!r}{hint}"
        )
    if payload.get("version") != VERSION:
        raise CheckpointError(
            f"{path}: checkpoint version {payload.get('version')!r} is not supported by this speechtao "
            f"(reads version {VERSION}); upgrade speechtao or re-export the model"
        )
    return payload


def model_from_payload(payload: dict, where: str = "checkpoint") -> LoadedModel:
    """Rebuild model + tokenizer from a payload dict (``where`` names it in errors)."""
    from ..text.tokenizers import tokenizer_from_dict

    missing = [k for k in ("model_config", "tokenizer", "state_dict") if k not in payload]
    if missing:
        raise CheckpointError(f"{where}: checkpoint lacks {', '.join(missing)} (the file is incomplete; save it again)")
    try:
        if is_whisper_config(payload["model_config"]):  # Whisper-encoder CTC (speechtao.asr.whisper_ctc)
            config = WhisperCTCConfig.from_dict(payload["model_config"])
        else:
            config = ASRModelConfig.from_dict(payload["model_config"])
    except SpecError as exc:
        raise CheckpointError(f"{where}: model_config does not match this speechtao version: {exc}") from None
    tokenizer = tokenizer_from_dict(payload["tokenizer"])
    model = (build_whisper if isinstance(config, WhisperCTCConfig) else build_model)(config, tokenizer.vocab_size)
    try:
        model.load_state_dict(payload["state_dict"], strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{where}: weights do not fit the model config: {str(exc)[:500]}") from None
    model.eval()
    return LoadedModel(
        model=model,
        tokenizer=tokenizer,
        config=config,
        spec=payload.get("spec"),
        extra=dict(payload.get("extra") or {}),
    )


def load_model(ref: str | Path) -> LoadedModel:
    """A checkpoint path, a ``.nemo`` archive or a preset name -> :class:`LoadedModel` (in eval mode).

    A preset gets random weights and NeMo's 28-character vocabulary.
    """
    path = Path(ref)
    if not path.exists() and str(ref) in WHISPER_PRETRAINED:  # pretrained Whisper encoder + random CTC head
        from .whisper_ctc import load_pretrained

        return load_pretrained(str(ref))
    if not path.exists() and str(ref) in PRESETS:
        from ..text.tokenizers import CharTokenizer

        tokenizer = CharTokenizer()
        config = PRESETS[str(ref)]
        model = build_model(config, tokenizer.vocab_size).eval()
        return LoadedModel(model=model, tokenizer=tokenizer, config=config, extra={"preset": str(ref)})
    if path.is_dir():
        raise CheckpointError(
            f"{ref}: is a folder; pass the checkpoint file inside it (for example {path / 'best.pt'})"
        )
    if not path.is_file():
        raise CheckpointError(
            f"{ref}: model not found (pass a checkpoint file, a .nemo archive or a preset name: "
            f"{', '.join([*PRESETS, *WHISPER_PRETRAINED])})"
        )
    if path.suffix == ".nemo" or tarfile.is_tarfile(path):  # .nemo archives are tars; torch.save writes zips
        from .nemo_io import import_nemo

        return import_nemo(path)
    return model_from_payload(_read_payload(path), where=str(path))
