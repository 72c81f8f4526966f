"""Read and write NeMo ``.nemo`` archives of CTC conv models (QuartzNet, CitriNet, Jasper) without NeMo.

A ``.nemo`` file is a tar (plain, or gzip before NeMo 1.7) holding::

    model_config.yaml            # the model's OmegaConf config, interpolations resolved
    model_weights.ckpt           # torch.save(model.state_dict())
    <hash>_tokenizer.model ...   # artifacts, referenced from the config as "nemo:<hash>_tokenizer.model"

Reading is defensive: members with absolute paths, ``..`` components, links or devices, and members larger
than :data:`MAX_MEMBER_BYTES` are refused; the weights load with ``torch.load(weights_only=True)``; only the
three kinds of members above are read, into memory, never extracted. Config features speechtao does not
implement (grouped convolutions, limited-context SE, ...) raise :class:`CheckpointError`
naming the config key.

The state-dict names of ``conv_mask: true`` encoders are the same as ours, so weights load with
``strict=True`` and no key mapping.

Writing (:func:`export_nemo`) produces an archive that NeMo's ``ASRModel.restore_from`` loads as
``EncDecCTCModel`` (character vocabulary) or ``EncDecCTCModelBPE`` (SentencePiece).
"""

from __future__ import annotations

import io
import os
import tarfile
import tempfile
import time
import zlib
from pathlib import Path, PurePosixPath
from typing import Any

import torch
import yaml

from ..errors import CheckpointError, InputError
from .checkpoint import LoadedModel
from .models import ACTIVATIONS, ASRModelConfig, BlockConfig, build_model

MAX_MEMBER_BYTES = 4 * 1024**3  # 4 GiB: larger than any conv CTC model's weights
CONFIG_NAME = "model_config.yaml"
WEIGHTS_NAME = "model_weights.ckpt"

NEMO_CTC_CLASS = "nemo.collections.asr.models.ctc_models.EncDecCTCModel"
NEMO_CTC_BPE_CLASS = "nemo.collections.asr.models.ctc_bpe_models.EncDecCTCModelBPE"
NEMO_PREPROCESSOR = "nemo.collections.asr.modules.AudioToMelSpectrogramPreprocessor"
NEMO_ENCODER = "nemo.collections.asr.modules.ConvASREncoder"
NEMO_DECODER = "nemo.collections.asr.modules.ConvASRDecoder"

# Keys of one `encoder.jasper[i]` entry that we read, and the values we require for those we do not implement.
_BLOCK_KEYS = {
    "filters",
    "repeat",
    "kernel",
    "stride",
    "dilation",
    "dropout",
    "residual",
    "separable",
    "se",
    "se_reduction_ratio",
    "residual_mode",
    "stride_last",
    "kernel_size_factor",
    "residual_dense",
}
_BLOCK_FIXED = {
    "groups": 1,
    "heads": -1,
    "se_context_size": -1,
    "future_context": -1,
    "quantize": False,
}
_BLOCK_IGNORED = {"se_interpolation_mode"}  # only used with a limited SE context, which is refused
_ENCODER_FIXED = {"conv_mask": True, "normalization_mode": "batch", "quantize": False}
_ENCODER_IGNORED = {
    "_target_",
    "feat_in",
    "activation",
    "jasper",
    "residual_mode",
    "norm_groups",
    "init_mode",
    "frame_splicing",
}


# --------------------------------------------------------------------------------------------------------------
# Reading the archive


def _member_name(member: tarfile.TarInfo, path: Path) -> str | None:
    """Normalized member name, None for the archive's directory entries; raises on anything unsafe."""
    name = member.name
    parts = PurePosixPath(name).parts
    if name.startswith("/") or PurePosixPath(name).is_absolute() or ".." in parts or "\\" in name:
        raise CheckpointError(
            f"{path}: archive member {name!r} has an absolute or parent ('..') path; refusing to read it "
            "(the file is not a NeMo archive or was tampered with)"
        )
    if member.issym() or member.islnk():
        raise CheckpointError(
            f"{path}: archive member {name!r} is a link; refusing to read it (.nemo archives hold plain files)"
        )
    if member.isdir():
        return None
    if not member.isfile():
        raise CheckpointError(f"{path}: archive member {name!r} is not a regular file; refusing to read it")
    if member.size > MAX_MEMBER_BYTES:
        raise CheckpointError(
            f"{path}: archive member {name!r} is {member.size} bytes, over the {MAX_MEMBER_BYTES}-byte limit "
            "(not a conv CTC model's archive)"
        )
    clean = [p for p in parts if p not in (".", "")]
    return "/".join(clean)


def read_nemo_archive(path: str | Path) -> tuple[dict, dict[str, torch.Tensor], dict[str, bytes]]:
    """``.nemo`` -> (config dict, state dict, {artifact name: bytes}) after the safety checks above."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: .nemo file not found (pass the path of a NeMo model archive)")
    try:
        tar = tarfile.open(path, "r:*")
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise CheckpointError(
            f"{path}: not a readable .nemo archive ({exc}); the file is truncated or not a NeMo model"
        ) from None
    files: dict[str, bytes] = {}
    try:
        with tar:
            for member in tar:
                name = _member_name(member, path)
                if name is None:
                    continue
                if "/" in name:
                    raise CheckpointError(
                        f"{path}: archive member {name!r} is in a sub-folder; model-parallel or nested .nemo "
                        "archives are not supported (export a single-file model from NeMo)"
                    )
                handle = tar.extractfile(member)
                data = handle.read() if handle is not None else b""
                if len(data) != member.size:
                    raise CheckpointError(
                        f"{path}: archive member {name!r} is truncated ({len(data)} of {member.size} bytes)"
                    )
                files[name] = data
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise CheckpointError(f"{path}: the .nemo archive is truncated or corrupt ({exc}); copy it again") from None
    for needed in (CONFIG_NAME, WEIGHTS_NAME):
        if needed not in files:
            raise CheckpointError(
                f"{path}: archive has no {needed} (found: {', '.join(sorted(files)) or 'nothing'}); "
                "it is not a NeMo model archive"
            )
    try:
        config = yaml.safe_load(files.pop(CONFIG_NAME).decode("utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path}: {CONFIG_NAME} is not valid YAML ({exc})") from None
    if isinstance(config, dict) and "model" in config and "encoder" not in config:
        config = config["model"]
    if not isinstance(config, dict):
        raise CheckpointError(f"{path}: {CONFIG_NAME} is not a mapping")
    try:
        state = torch.load(io.BytesIO(files.pop(WEIGHTS_NAME)), map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated zip, or pickled objects that weights_only refuses
        raise CheckpointError(
            f"{path}: {WEIGHTS_NAME} cannot be read safely ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})"
        ) from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: {WEIGHTS_NAME} is not a state dict of tensors")
    return config, state, files


# --------------------------------------------------------------------------------------------------------------
# NeMo config -> ASRModelConfig


def _one(value: Any, key: str) -> int:
    if isinstance(value, (list, tuple)):
        if len(value) != 1:
            raise CheckpointError(f"{key}: {value!r} has {len(value)} entries; only one value per block is supported")
        value = value[0]
    if not isinstance(value, int) or isinstance(value, bool):
        raise CheckpointError(f"{key}: expected an integer, got {value!r}")
    return value


def _kernel(kernel: int, factor: float) -> int:
    """NeMo's compute_new_kernel_size: scale, floor, at least 1, even sizes rounded up to odd."""
    k = max(int(kernel * float(factor)), 1)
    return k + 1 if k % 2 == 0 else k


def _check_no_interpolation(value: Any, key: str) -> None:
    if isinstance(value, str) and "${" in value:
        raise CheckpointError(f"{key}: unresolved interpolation {value!r} (save the model with a resolved config)")
    if isinstance(value, dict):
        for k, v in value.items():
            _check_no_interpolation(v, f"{key}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _check_no_interpolation(v, f"{key}[{i}]")


def config_from_nemo(cfg: dict) -> tuple[ASRModelConfig, int]:
    """NeMo model config -> (ASRModelConfig, vocabulary size). Unsupported features raise, naming the key."""
    from ..features import FeatureSpec

    for section in ("preprocessor", "encoder", "decoder"):
        if not isinstance(cfg.get(section), dict):
            raise CheckpointError(f"{section}: missing from the NeMo config (not a CTC encoder-decoder model)")
        _check_no_interpolation(cfg[section], section)
    enc, dec = cfg["encoder"], cfg["decoder"]
    target = str(enc.get("_target_", ""))
    if not target.endswith("ConvASREncoder"):
        raise CheckpointError(
            f"encoder._target_: {target!r} is not supported (speechtao reads ConvASREncoder "
            "models: QuartzNet, CitriNet, Jasper)"
        )
    for key, want in _ENCODER_FIXED.items():
        if key in enc and enc[key] != want:
            raise CheckpointError(f"encoder.{key}: {enc[key]!r} is not supported (speechtao needs {want!r})")
    unknown = set(enc) - set(_ENCODER_FIXED) - _ENCODER_IGNORED
    if unknown:
        raise CheckpointError(
            f"encoder.{sorted(unknown)[0]}: unknown ConvASREncoder option (not supported by speechtao)"
        )
    activation = enc.get("activation", "relu")
    if activation not in ACTIVATIONS:
        raise CheckpointError(f"encoder.activation: {activation!r} is not supported (one of {list(ACTIVATIONS)})")
    default_mode = enc.get("residual_mode", "add")
    try:
        pre = FeatureSpec.from_nemo_config(cfg["preprocessor"])
    except InputError as exc:
        raise CheckpointError(f"preprocessor: {exc}") from None
    if "feat_in" in enc and enc["feat_in"] != pre.n_mels:
        raise CheckpointError(
            f"encoder.feat_in: {enc['feat_in']} differs from preprocessor.features {pre.n_mels} "
            "(NeMo's encoder multiplies feat_in by frame_splicing itself)"
        )
    if enc.get("frame_splicing", 1) != pre.frame_splicing:
        raise CheckpointError(
            f"encoder.frame_splicing: {enc.get('frame_splicing', 1)} differs from "
            f"preprocessor.frame_splicing {pre.frame_splicing}"
        )

    blocks = []
    for i, b in enumerate(enc.get("jasper") or []):
        where = f"encoder.jasper[{i}]"
        if not isinstance(b, dict):
            raise CheckpointError(f"{where}: expected a mapping, got {b!r}")
        for key, want in _BLOCK_FIXED.items():
            if key in b and b[key] != want and not (key == "se_context_size" and not b.get("se")):
                raise CheckpointError(f"{where}.{key}: {b[key]!r} is not supported (speechtao needs {want!r})")
        unknown = set(b) - _BLOCK_KEYS - set(_BLOCK_FIXED) - _BLOCK_IGNORED
        if unknown:
            raise CheckpointError(f"{where}.{sorted(unknown)[0]}: unknown block option (not supported by speechtao)")
        for key in ("filters", "repeat", "kernel", "stride", "dilation", "dropout", "residual"):
            if key not in b:
                raise CheckpointError(f"{where}.{key}: missing")
        mode = b.get("residual_mode", default_mode)
        if mode not in ("add", "stride_add"):
            raise CheckpointError(f"{where}.residual_mode: {mode!r} is not supported (add or stride_add)")
        try:
            blocks.append(
                BlockConfig(
                    filters=_one(b["filters"], f"{where}.filters"),
                    repeat=_one(b["repeat"], f"{where}.repeat"),
                    kernel=_kernel(_one(b["kernel"], f"{where}.kernel"), b.get("kernel_size_factor", 1.0)),
                    stride=_one(b["stride"], f"{where}.stride"),
                    dilation=_one(b["dilation"], f"{where}.dilation"),
                    dropout=float(b["dropout"]),
                    residual=bool(b["residual"]),
                    separable=bool(b.get("separable", False)),
                    se=bool(b.get("se", False)),
                    se_reduction_ratio=int(b.get("se_reduction_ratio", 8)),
                    residual_mode=mode,
                    stride_last=bool(b.get("stride_last", False)),
                    residual_dense=bool(b.get("residual_dense", False)),
                )
            )
        except ValueError as exc:
            raise CheckpointError(f"{where}: {exc}") from None
    if not blocks:
        raise CheckpointError("encoder.jasper: no blocks")

    target = str(dec.get("_target_", ""))
    if not target.endswith("ConvASRDecoder"):
        raise CheckpointError(f"decoder._target_: {target!r} is not supported (speechtao reads ConvASRDecoder)")
    if dec.get("add_blank", True) is not True:
        raise CheckpointError("decoder.add_blank: false is not supported (CTC needs the blank class)")
    vocabulary = dec.get("vocabulary") or []
    num_classes = dec.get("num_classes", -1)
    vocab_size = num_classes if isinstance(num_classes, int) and num_classes > 0 else len(vocabulary)
    if vocab_size < 1:
        raise CheckpointError("decoder.num_classes: not set and decoder.vocabulary is empty")
    family = (
        "citrinet"
        if any(b.se for b in blocks)
        else "quartznet"
        if blocks[0].separable
        else "jasper"
        if any(b.residual_dense for b in blocks)
        else "custom"
    )
    config = ASRModelConfig(preprocessor=pre, blocks=tuple(blocks), activation=activation, family=family)
    return config, vocab_size


def _tokenizer_from_nemo(cfg: dict, files: dict[str, bytes], vocab_size: int, path: Path):
    from ..text.tokenizers import CharTokenizer, SentencePieceTokenizer

    tok = cfg.get("tokenizer")
    if isinstance(tok, dict):
        kind = str(tok.get("type", "")).lower()
        if kind != "bpe":
            raise CheckpointError(
                f"{path}: tokenizer.type {kind!r} is not supported (speechtao reads 'bpe' "
                "SentencePiece tokenizers and character vocabularies)"
            )
        ref = tok.get("model_path") or "tokenizer.model"
        name = PurePosixPath(str(ref).split("nemo:", 1)[-1]).name
        if name not in files:
            raise CheckpointError(
                f"{path}: tokenizer.model_path {ref!r} is not in the archive "
                f"(members: {', '.join(sorted(files)) or 'none'})"
            )
        try:
            tokenizer = SentencePieceTokenizer(files[name], source=f"{path}:{name}")
        except InputError as exc:
            raise CheckpointError(str(exc)) from None
    else:
        labels = cfg["decoder"].get("vocabulary") or cfg.get("labels")
        if not labels:
            raise CheckpointError(f"{path}: decoder.vocabulary is empty and there is no tokenizer section")
        try:
            tokenizer = CharTokenizer(list(labels))
        except InputError as exc:
            raise CheckpointError(f"{path}: decoder.vocabulary: {exc}") from None
    if tokenizer.vocab_size != vocab_size:
        raise CheckpointError(
            f"{path}: the tokenizer has {tokenizer.vocab_size} tokens but decoder.num_classes is {vocab_size}"
        )
    return tokenizer


def import_nemo(path: str | Path) -> LoadedModel:
    """``.nemo`` archive -> :class:`LoadedModel` (eval mode) with the archive's weights loaded strictly."""
    path = Path(path)
    cfg, state, files = read_nemo_archive(path)
    try:
        config, vocab_size = config_from_nemo(cfg)
    except CheckpointError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    tokenizer = _tokenizer_from_nemo(cfg, files, vocab_size, path)
    model = build_model(config, vocab_size)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: {WEIGHTS_NAME} does not match the config: {str(exc)[:600]}") from None
    model.eval()
    extra = {"imported_from": str(path), "nemo_target": cfg.get("target")}
    return LoadedModel(model=model, tokenizer=tokenizer, config=config, extra=extra)


# --------------------------------------------------------------------------------------------------------------
# Writing


def config_to_nemo(loaded: LoadedModel) -> dict:
    """The ``model_config.yaml`` dict NeMo rebuilds ``loaded`` from (artifact paths use the ``nemo:`` prefix)."""
    from ..text.tokenizers import SentencePieceTokenizer

    config, tokenizer = loaded.config, loaded.tokenizer
    if config.family == "whisper":  # speechtao.asr.whisper_ctc: NeMo has no such model class
        raise InputError(
            "a Whisper-encoder CTC model has no .nemo form (NeMo has no such model); export it with "
            "`speechtao asr export --format onnx` or keep the speechtao checkpoint"
        )
    pre = {"_target_": NEMO_PREPROCESSOR, **config.preprocessor.to_nemo_config()}
    jasper = [
        {
            "filters": b.filters,
            "repeat": b.repeat,
            "kernel": [b.kernel],
            "stride": [b.stride],
            "dilation": [b.dilation],
            "dropout": b.dropout,
            "residual": b.residual,
            "separable": b.separable,
            "se": b.se,
            "se_reduction_ratio": b.se_reduction_ratio,
            "se_context_size": -1,
            "residual_mode": b.residual_mode,
            "stride_last": b.stride_last,
            "residual_dense": b.residual_dense,
            "kernel_size_factor": 1.0,
        }
        for b in config.blocks
    ]
    bpe = isinstance(tokenizer, SentencePieceTokenizer)
    out: dict[str, Any] = {
        "target": NEMO_CTC_BPE_CLASS if bpe else NEMO_CTC_CLASS,
        "sample_rate": int(pre.get("sample_rate", 16000)),
        "preprocessor": pre,
        "spec_augment": None,
        "encoder": {
            "_target_": NEMO_ENCODER,
            "feat_in": config.preprocessor.n_mels,
            "frame_splicing": config.preprocessor.frame_splicing,
            "activation": config.activation,
            "conv_mask": True,
            "jasper": jasper,
        },
        "decoder": {
            "_target_": NEMO_DECODER,
            "feat_in": config.feat_out,
            "num_classes": tokenizer.vocab_size,
            "vocabulary": list(tokenizer.vocab),
        },
        "train_ds": None,
        "validation_ds": None,
        "test_ds": None,
        "optim": None,
    }
    if bpe:
        out["tokenizer"] = {
            "dir": None,
            "type": "bpe",
            "model_path": "nemo:tokenizer.model",
            "vocab_path": "nemo:vocab.txt",
            "spe_tokenizer_vocab": "nemo:tokenizer.vocab",
        }
    else:
        out["labels"] = list(tokenizer.vocab)
    return out


def export_nemo(loaded: LoadedModel, path: str | Path) -> Path:
    """Write ``loaded`` as a ``.nemo`` archive (uncompressed tar, as NeMo >= 1.7 writes), atomically."""
    from ..text.tokenizers import SentencePieceTokenizer

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    members: dict[str, bytes] = {CONFIG_NAME: yaml.safe_dump(config_to_nemo(loaded), sort_keys=False).encode()}
    weights = io.BytesIO()
    torch.save({k: v.detach().cpu().contiguous() for k, v in loaded.model.inference_state_dict().items()}, weights)
    members[WEIGHTS_NAME] = weights.getvalue()
    if isinstance(loaded.tokenizer, SentencePieceTokenizer):
        with tempfile.TemporaryDirectory() as tmp:
            folder = loaded.tokenizer.save(tmp)
            for name in ("tokenizer.model", "tokenizer.vocab", "vocab.txt"):
                members[name] = (folder / name).read_bytes()
    tmp_path = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with tarfile.open(tmp_path, "w:") as tar:
            now = time.time()
            for name, data in members.items():
                info = tarfile.TarInfo(f"./{name}")
                info.size, info.mtime, info.mode = len(data), now, 0o644
                tar.addfile(info, io.BytesIO(data))
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()
    return path
