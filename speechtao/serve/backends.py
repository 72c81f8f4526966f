"""Acoustic backends for serving: audio windows in, CTC log-probabilities out.

Two backends answer the same call, so the recognizer does not care which one it holds::

    backend = load_backend("model.onnx")               # or "model.ckpt", provider "cuda" where ORT has CUDA
    log_probs, lengths = backend(audio, audio_lengths)  # (B, T) float32, (B,) -> (B, T', V+1), (B,)

- :class:`OnnxBackend`: an ONNX file written by ``speechtao asr export`` (log-mel features in, log-probs out,
  vocabulary and feature settings in its metadata). Features are computed here as the training code did:
  :class:`speechtao.features.AudioToMelSpectrogram` (QuartzNet/CitriNet), or
  :class:`speechtao.asr.whisper.WhisperLogMel` when the metadata says ``family`` whisper; the graph runs in
  ONNX Runtime on the CPU execution provider, or CUDA where onnxruntime-gpu offers it.
- :class:`TorchBackend`: a speechtao checkpoint (or ``.nemo`` archive) run in PyTorch, Whisper-encoder CTC
  models included.

A third kind, :class:`WhisperSeqBackend`, is a Whisper encoder-decoder (``whisper:tiny.en``, ``whisper:base``,
options as :func:`speechtao.asr.backends.open_model` takes them): audio in, text with segment and word times out
(:class:`SequenceBackend`); :class:`speechtao.serve.seq_recognizer.SeqRecognizer` streams it by re-decoding.

The CTC backends satisfy :class:`AcousticBackend`, the protocol the recognizer is written against: ``sample_rate``,
``tokenizer`` (:class:`CTCTokenizer`), ``subsampling_factor``, ``hop_length``, ``samples_per_frame`` (audio
samples per output frame), ``features`` (the log-mel front end, with ``features.raw`` before normalization;
None for a backend that takes audio only) and ``run_features`` (normalized features in, log-probs out) for
callers that normalize features themselves, and ``info(name)``. Any other object with these members can be
served (tests use a hand-made one); :func:`check_backend` names what is missing.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from ..errors import CheckpointError, InputError, MissingDependencyError

WORD_START = "\u2581"


class VocabTokenizer:
    """Decoding-only tokenizer rebuilt from an ONNX file's ``vocabulary`` metadata.

    Characters (``EncDecCTCModel``): tokens join as they are, words are split at spaces. Subwords
    (``EncDecCTCModelBPE``): a piece starting with '▁' begins a word, '▁' reads as a space.
    """

    def __init__(self, vocab: Sequence[str], subwords: bool):
        self.vocab = list(vocab)
        self.subwords = subwords
        self._space = self.vocab.index(" ") if (not subwords and " " in self.vocab) else -1

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    @property
    def blank_id(self) -> int:
        return len(self.vocab)

    def decode(self, ids: Sequence[int]) -> str:
        text = "".join(self.vocab[int(i)] for i in ids)
        if self.subwords:
            text = text.replace(WORD_START, " ").strip()
        return text

    def word_boundaries(self, ids: Sequence[int]) -> list[tuple[int, int]]:
        """Half-open token index spans of the words of ``ids``."""
        spans: list[tuple[int, int]] = []
        start = None
        for pos, i in enumerate(ids):
            piece = self.vocab[int(i)]
            if self.subwords:
                if start is None or piece.startswith(WORD_START):
                    if start is not None:
                        spans.append((start, pos))
                    start = pos
            elif int(i) == self._space:
                if start is not None:
                    spans.append((start, pos))
                    start = None
            elif start is None:
                start = pos
        if start is not None:
            spans.append((start, len(ids)))
        if self.subwords:
            spans = [(s, e) for s, e in spans if not (e - s == 1 and self.vocab[int(ids[s])] == WORD_START)]
        return spans


@runtime_checkable
class CTCTokenizer(Protocol):
    """What serving needs of a tokenizer: the blank's id, ids -> text, and word spans of an id sequence."""

    @property
    def blank_id(self) -> int: ...

    @property
    def vocab_size(self) -> int: ...

    def decode(self, ids: Sequence[int]) -> str: ...

    def word_boundaries(self, ids: Sequence[int]) -> list[tuple[int, int]]: ...


@runtime_checkable
class AcousticBackend(Protocol):
    """Audio windows in, CTC log-probabilities out: what :class:`speechtao.serve.recognizer.Recognizer` calls."""

    sample_rate: int  # Hz the model takes
    hop_length: int  # audio samples per feature frame
    subsampling_factor: int  # feature frames per output frame
    tokenizer: CTCTokenizer
    features: FeatureFrontEnd | None  # the log-mel front end; None: no "stream" normalization of chunk windows

    @property
    def samples_per_frame(self) -> int:
        """Audio samples per output frame (hop_length x subsampling_factor)."""
        ...

    def __call__(self, audio: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """audio (B, T) float32, lengths (B,) -> log_probs (B, T', V+1) float32, out_lengths (B,) int64."""
        ...

    def run_features(self, feats: np.ndarray, feat_lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Normalized features (B, n_mels, F), (B,) -> log_probs (B, T', V+1), out_lengths (B,)."""
        ...

    def info(self, name: str) -> ModelInfo:
        """What GetRivaSpeechRecognitionConfig reports of the model served as ``name``."""
        ...


def check_backend(backend):
    """``backend`` itself, or :class:`InputError` naming the members of :class:`AcousticBackend` it lacks."""
    members = ("sample_rate", "hop_length", "subsampling_factor", "samples_per_frame", "tokenizer", "features")
    missing = [m for m in members + ("run_features", "info") if not hasattr(backend, m)]
    if not missing and not callable(backend):
        missing = ["__call__"]
    if not missing and not isinstance(backend.tokenizer, CTCTokenizer):
        missing = [f"tokenizer.{m}" for m in ("blank_id", "vocab_size", "decode", "word_boundaries")]
        missing = [m for m in missing if not hasattr(backend.tokenizer, m.split(".")[1])]
    if missing:
        raise InputError(
            f"{type(backend).__name__} is not an acoustic backend: it lacks {', '.join(missing)} "
            "(see speechtao.serve.backends.AcousticBackend; load_backend() gives one)"
        )
    return backend


@dataclass(frozen=True)
class ModelInfo:
    """What a client can learn about a served acoustic model (GetRivaSpeechRecognitionConfig)."""

    name: str
    path: str
    kind: str  # "onnx" | "checkpoint" | "whisper" (an encoder-decoder reference)
    sample_rate: int
    vocab_size: int
    subsampling_factor: int
    family: str
    provider: str  # "CPUExecutionProvider", "CUDAExecutionProvider", "torch-cpu", "torch-cuda"
    precision: str = "fp32"  # "int8" for a quantized export (its metadata has "quantization")


class FeatureFrontEnd:
    """Log-mel features of a padded audio batch (torch, eval mode): normalized as the model was trained
    (``__call__``), or before normalization and padding (``raw``), for callers that normalize with statistics
    of their own (:mod:`speechtao.serve.recognizer`, streaming).

    ``spec`` is a :class:`speechtao.features.FeatureSpec` (NeMo log-mels; ``raw`` is the log-mel before the
    per-feature normalization) or a :class:`speechtao.asr.whisper.WhisperFeatureSpec` (``raw`` is the log10 mel
    before Whisper's dynamic-range floor and scaling, ``spec.normalize == "whisper"``). ``max_frames``: the
    longest input the model takes (Whisper: two feature frames per position), 0 for no limit."""

    def __init__(self, spec, max_frames: int = 0):
        import dataclasses

        import torch

        from ..asr.whisper import WhisperFeatureSpec, WhisperLogMel
        from ..features import AudioToMelSpectrogram

        self.spec = spec
        self.max_frames = max_frames
        if isinstance(spec, WhisperFeatureSpec):
            self.module = WhisperLogMel(spec).eval()
            self.raw_module = self.module.log_mel
        else:
            self.module = AudioToMelSpectrogram(spec).eval()
            self.raw_module = AudioToMelSpectrogram(dataclasses.replace(spec, normalize=None, pad_to=0)).eval()
        self._torch = torch

    def _run(self, module, audio: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        torch = self._torch
        if self.max_frames and audio.shape[1] // self.spec.hop_length > self.max_frames:
            limit = self.max_frames * self.spec.hop_length / self.spec.sample_rate
            raise InputError(
                f"audio window of {audio.shape[1] / self.spec.sample_rate:.1f} s is longer than the "
                f"model takes ({limit:.0f} s: Whisper's positions); keep max_final_pass_s and the "
                "chunk + context sizes below it"
            )
        with torch.inference_mode():
            feats, feat_lengths = module(torch.from_numpy(audio), torch.from_numpy(lengths.astype(np.int64)))
        return feats.numpy(), feat_lengths.numpy()

    def __call__(self, audio: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """audio (B, T) float32, lengths (B,) -> feats (B, n_mels, F) float32, feat_lengths (B,) int64."""
        return self._run(self.module, audio, lengths)

    def raw(self, audio: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Log-mels before normalization, not padded to ``pad_to``: (B, n_mels, F), (B,)."""
        return self._run(self.raw_module, audio, lengths)


class OnnxBackend:
    """An exported CTC model in ONNX Runtime. ``provider``: "cpu", "cuda" or "auto" (CUDA when ORT has it)."""

    def __init__(self, path: str | Path, provider: str = "cpu", threads: int = 1):
        try:
            import onnxruntime as ort
        except ImportError as exc:  # pragma: no cover - a core dependency
            raise MissingDependencyError(f"onnxruntime is not importable ({exc}); pip install onnxruntime") from None
        from ..features import FeatureSpec
        from ..spec import spec_from_dict

        self.path = Path(path)
        meta = _onnx_metadata(self.path)
        missing = [k for k in ("vocabulary", "features", "subsampling_factor") if k not in meta]
        if missing:
            raise CheckpointError(
                f"{self.path}: ONNX metadata lacks {', '.join(missing)}; serve files written by "
                "`speechtao asr export` (a NeMo export has no vocabulary: import the .nemo and export it again)"
            )
        self.family = meta.get("family", "custom")
        self.precision = "int8" if "quantization" in meta else "fp32"
        max_frames = 0
        try:
            vocab = json.loads(meta["vocabulary"])
            if self.family == "whisper":  # Whisper's own log-mel front end (speechtao.asr.whisper)
                from ..asr.whisper import WhisperFeatureSpec

                spec = spec_from_dict(WhisperFeatureSpec, json.loads(meta["features"]))
                encoder = json.loads(meta.get("model_config", "{}")).get("encoder", {})
                max_frames = int(meta["subsampling_factor"]) * int(encoder.get("max_positions", 1500))
            else:
                spec = spec_from_dict(FeatureSpec, json.loads(meta["features"]))
            self.subsampling_factor = int(meta["subsampling_factor"])
        except (ValueError, InputError) as exc:
            raise CheckpointError(f"{self.path}: ONNX metadata is damaged ({exc}); export the model again") from None
        self.tokenizer = VocabTokenizer(vocab, subwords=meta.get("model_type", "").endswith("BPE"))
        self.features = FeatureFrontEnd(spec, max_frames)
        self.sample_rate = int(spec.sample_rate)
        self.hop_length = int(spec.hop_length)
        available = ort.get_available_providers()
        if provider == "cuda" and "CUDAExecutionProvider" not in available:
            raise MissingDependencyError(
                f"provider 'cuda': onnxruntime here offers {available} (install onnxruntime-gpu on a CUDA host, or "
                "serve with --provider cpu)"
            )
        use_cuda = provider in ("cuda", "auto") and "CUDAExecutionProvider" in available
        providers = (["CUDAExecutionProvider"] if use_cuda else []) + ["CPUExecutionProvider"]
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        # Idle pool threads sleep instead of spinning: a server shares its cores with its own stream threads
        # (and often with other processes); spinning threads on an oversubscribed CPU slow every call down.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(str(self.path), opts, providers=providers)
        except Exception as exc:  # onnxruntime raises its own exception types for bad files
            raise CheckpointError(
                f"{self.path}: onnxruntime cannot load it ({str(exc)[:300]}); export it again"
            ) from None
        self.provider = self.session.get_providers()[0]
        names = [i.name for i in self.session.get_inputs()]
        if names[:2] != ["audio_signal", "length"]:
            raise CheckpointError(
                f"{self.path}: inputs are {names}, expected ['audio_signal', 'length'] "
                "(serve files written by `speechtao asr export`)"
            )

    @property
    def samples_per_frame(self) -> int:
        return self.hop_length * self.subsampling_factor

    def info(self, name: str) -> ModelInfo:
        return ModelInfo(
            name,
            str(self.path),
            "onnx",
            self.sample_rate,
            self.tokenizer.vocab_size,
            self.subsampling_factor,
            self.family,
            self.provider,
            self.precision,
        )

    def __call__(self, audio: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """audio (B, T) float32, lengths (B,) -> log_probs (B, T', V+1) float32, out_lengths (B,) int64."""
        return self.run_features(*self.features(audio, lengths))

    def run_features(self, feats: np.ndarray, feat_lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Normalized features (B, n_mels, F), (B,) -> log_probs (B, T', V+1), out_lengths (B,)."""
        log_probs, out_lengths = self.session.run(
            None, {"audio_signal": feats.astype(np.float32), "length": feat_lengths.astype(np.int64)}
        )
        return log_probs, out_lengths.astype(np.int64)


class TorchBackend:
    """A speechtao checkpoint (or ``.nemo``) run in PyTorch on ``device`` ("cpu", "cuda", "auto")."""

    def __init__(self, path: str | Path, device: str = "cpu"):
        import torch

        from ..asr.checkpoint import load_model
        from ..asr.infer import resolve_device

        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.path = Path(path)
        loaded = load_model(path)
        self.device = resolve_device(device)
        self.model = loaded.model.to(self.device).eval()
        self.tokenizer = loaded.tokenizer
        self.family = loaded.config.family
        self.sample_rate = int(loaded.config.preprocessor.sample_rate)
        self.hop_length = int(loaded.config.preprocessor.hop_length)
        self.subsampling_factor = int(self.model.subsampling_factor)
        self.provider = f"torch-{self.device.type}"
        whisper = loaded.config.family == "whisper"
        max_frames = self.subsampling_factor * loaded.config.encoder.max_positions if whisper else 0
        self.features = FeatureFrontEnd(loaded.config.preprocessor, max_frames)
        self._torch = torch
        self._lock = threading.Lock()  # one forward at a time: the batcher already serializes, users may not

    @property
    def samples_per_frame(self) -> int:
        return self.hop_length * self.subsampling_factor

    def info(self, name: str) -> ModelInfo:
        return ModelInfo(
            name,
            str(self.path),
            "checkpoint",
            self.sample_rate,
            self.tokenizer.vocab_size,
            self.subsampling_factor,
            self.family,
            self.provider,
        )

    def __call__(self, audio: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """audio (B, T) float32, lengths (B,) -> log_probs (B, T', V+1) float32, out_lengths (B,) int64."""
        torch = self._torch
        with self._lock, torch.inference_mode():
            lp, n = self.model(
                torch.from_numpy(audio).to(self.device), torch.from_numpy(lengths.astype(np.int64)).to(self.device)
            )
        return lp.float().cpu().numpy(), n.cpu().numpy().astype(np.int64)

    def run_features(self, feats: np.ndarray, feat_lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Normalized features (B, n_mels, F), (B,) -> log_probs (B, T', V+1), out_lengths (B,)."""
        torch = self._torch
        with self._lock, torch.inference_mode():
            lp, n = self.model.forward_features(
                torch.from_numpy(feats.astype(np.float32)).to(self.device),
                torch.from_numpy(feat_lengths.astype(np.int64)).to(self.device),
            )
        return lp.float().cpu().numpy(), n.cpu().numpy().astype(np.int64)


@runtime_checkable
class SequenceBackend(Protocol):
    """Audio in, a transcript out: what :class:`speechtao.serve.seq_recognizer.SeqRecognizer` calls."""

    sample_rate: int  # Hz the model takes
    window_s: float  # the longest audio one decoding pass sees (Whisper: 30 s); longer audio is windowed
    beam_size: int  # the beam of final decodes (the model reference's)
    written_form: bool  # transcripts are written text (case, punctuation, digits): no ITN or punctuation model

    def transcribe(self, audio: np.ndarray, beam_size: int, bf16: bool = False):
        """audio (T,) float32 at ``sample_rate`` -> :class:`speechtao.asr.whisper_seq.SeqTranscript` (text,
        segments, words (word, start s, end s), avg_logprob). ``bf16``: the encoder may compute in bfloat16
        (cheaper where the CPU has it natively, not bit-exact)."""
        ...

    def info(self, name: str) -> ModelInfo: ...


class WhisperSeqBackend:
    """A Whisper encoder-decoder (``whisper:NAME[:beam=N][:timestamps]``) in PyTorch on the CPU: every call
    decodes in Whisper's 30 s windows (:func:`speechtao.asr.whisper_seq.transcribe`), as ``speechtao asr infer``
    does. Safe to call from several threads (each call has its own decoder cache)."""

    sample_rate = 16000
    window_s = 30.0
    written_form = True

    def __init__(self, ref: str, device: str = "cpu"):
        from ..asr.whisper_transcribe import load_seq_ref

        if device not in ("cpu", "auto"):
            raise InputError(
                f"device {device!r}: Whisper encoder-decoder models ({ref}) are served on the CPU only here "
                "(serve with --device cpu)"
            )
        loaded = load_seq_ref(ref)
        self.ref = ref
        self.model = loaded.model
        self.options = loaded.options  # the reference's decoding options (beam, timestamps)
        self.beam_size = loaded.options.beam_size
        self.vocab_size = loaded.model.decoder.cfg.n_vocab

    def transcribe(self, audio: np.ndarray, beam_size: int, bf16: bool = False):
        import dataclasses

        import torch

        from ..asr.whisper_seq import transcribe

        opts = dataclasses.replace(self.options, beam_size=beam_size)
        model = _Bf16Encoder(self.model) if bf16 else self.model
        with torch.inference_mode():
            return transcribe(model, np.asarray(audio, dtype=np.float32), opts)

    def info(self, name: str) -> ModelInfo:
        return ModelInfo(name, self.ref, "whisper", self.sample_rate, self.vocab_size, 2, "whisper_seq", "torch-cpu")


class _Bf16Encoder:
    """A :class:`speechtao.asr.whisper_seq.WhisperSeqModel` whose encoder runs under bf16 autocast (its output back
    in float32); the decoder stays float32 (autocast would recast its weights at every token)."""

    def __init__(self, model):
        self._model = model

    def __getattr__(self, name):
        return getattr(self._model, name)

    def encode_mel(self, mel):
        import torch

        with torch.autocast("cpu", dtype=torch.bfloat16):
            return self._model.encode_mel(mel).float()


def _onnx_metadata(path: Path) -> dict[str, str]:
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf DecodeError and friends
        raise CheckpointError(
            f"{path}: not a readable ONNX file ({type(exc).__name__}: {str(exc)[:200]}); "
            "export it again with `speechtao asr export`"
        ) from None
    return {p.key: p.value for p in model.metadata_props}


def load_backend(path: str | Path, device: str = "cpu", threads: int = 1):
    """An ``.onnx`` file -> :class:`OnnxBackend`; anything else (checkpoint, ``.nemo``, preset) ->
    :class:`TorchBackend`.

    ``device``: "cpu", "cuda" or "auto" (CUDA when present).
    """
    if device not in ("cpu", "cuda", "auto"):
        raise InputError(f"device {device!r}: unknown (use cpu, cuda or auto)")
    p = Path(path)
    if p.suffix == ".onnx":
        if not p.is_file():
            raise CheckpointError(f"{p}: model not found (pass an ONNX file written by `speechtao asr export`)")
        return OnnxBackend(p, provider=device, threads=threads)
    return TorchBackend(p, device=device)
