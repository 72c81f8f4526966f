"""A model repository: the folder ``speechtao serve --models DIR`` serves.

Layout (names come from file or folder names; hidden entries are skipped)::

    DIR/
      en-quartznet.onnx      ASR: an ONNX file written by `speechtao asr export` (tokens.txt beside it is ignored)
      model.int8.onnx        ASR: an INT8 export; its quantization intermediate model.int8.fp32.onnx (and the
                                  .calib cache) beside it are not served
      domain.ckpt            ASR: a speechtao checkpoint (PyTorch backend)
      punct/                 NLP: a model or export folder of `speechtao punct|qa|ner|textcls ...`
      qa/                         (its speechtao.json names the task)
      profanity.txt          optional: the word list of profanity_filter (one word a line)
      lm/                    optional: an n-gram LM folder (`speechtao lm build`, any name; `lm/` wins when there
                                  are several): finals of every ASR model here are beam-searched with it (interims
                                  stay greedy); X.lm/ serves model X only

Models can also be named one by one (``speechtao serve --model M``): an ASR model file, or a Whisper
encoder-decoder reference (``whisper:tiny.en``, ``whisper:base:beam=5``; served by
:class:`speechtao.serve.seq_recognizer.SeqRecognizer`, under the reference as its name). LM folders apply to the CTC
models only.

The ASR model a request gets when ``RecognitionConfig.model`` is empty is ``default_asr``: by default the first
INT8 model in name order, else the first ASR model (the first ``--model`` when there is no folder). NLP requests
choose by ``model.model_name``, per task.

Usage::

    repo = ModelRepository.load("models/", options=StreamingOptions(), device="cpu")
    repo = ModelRepository.load(None, models=["whisper:tiny.en"])      # one model, no folder
    rec = repo.asr("")            # the default Recognizer; repo.asr("domain") by name
    punct = repo.nlp("punct", "")
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError
from .recognizer import Recognizer, StreamingOptions
from .seq_recognizer import SeqRecognizer, SeqStreamingOptions

ASR_SUFFIXES = (".onnx", ".pt", ".ckpt", ".nemo")
NLP_TASKS = ("punct", "qa", "ner", "textcls")


def is_intermediate(path: Path) -> bool:
    """``X.fp32.onnx`` beside ``X.onnx``: the optimized FP32 graph INT8 quantization leaves for TensorRT
    (:mod:`speechtao.export.quantize`), not a model to serve."""
    name = path.name
    return name.endswith(".fp32.onnx") and path.with_name(name[: -len(".fp32.onnx")] + ".onnx").is_file()


def shared_lm(root: Path) -> Path | None:
    """The repository's LM folder (one holding ``lm.json``, not a model's own ``X.lm``): ``lm/``, else the only
    one; None when there is none. Several without an ``lm/`` is an error naming them."""
    if (root / "lm" / "lm.json").is_file():
        return root / "lm"
    found = sorted(d for d in root.iterdir() if d.is_dir() and d.suffix != ".lm" and (d / "lm.json").is_file())
    if len(found) > 1:
        raise InputError(
            f"--models {root}: several LM folders ({', '.join(d.name for d in found)}); name the one to use lm/, "
            "give a model its own X.lm/, or pass --lm DIR"
        )
    return found[0] if found else None


class ModelNotFound(InputError):
    """A request named a model the repository does not hold."""


def load_asr(
    source: str,
    options: StreamingOptions = StreamingOptions(),
    seq_options: SeqStreamingOptions = SeqStreamingOptions(),
    *,
    device: str = "cpu",
    threads: int = 1,
    name: str = "default",
    max_batch_size: int = 16,
) -> Recognizer | SeqRecognizer:
    """A ``whisper:NAME[:beam=N][:timestamps]`` reference -> :class:`SeqRecognizer`; an ONNX file, checkpoint,
    ``.nemo`` or preset -> :class:`Recognizer`."""
    from ..asr.whisper_transcribe import is_seq_ref

    if is_seq_ref(source):
        from .backends import WhisperSeqBackend

        return SeqRecognizer(WhisperSeqBackend(source, device=device), seq_options, name=name)
    return Recognizer.from_path(
        source, options, device=device, threads=threads, name=name, max_batch_size=max_batch_size
    )


def model_name(source: str) -> str:
    """The name a ``--model`` is served under: a Whisper reference itself, a file's stem."""
    from ..asr.whisper_transcribe import is_seq_ref

    return source if is_seq_ref(source) else Path(source).stem


@dataclass
class ModelRepository:
    asr_models: dict[str, Recognizer | SeqRecognizer] = field(default_factory=dict)
    nlp_models: dict[str, dict[str, Any]] = field(default_factory=dict)  # task -> name -> served NLP model
    default_asr: str = ""
    root: str = ""
    profanity_list: str | None = None  # the repository's profanity.txt; None: the default list

    @classmethod
    def load(
        cls,
        root: str | Path | None,
        options: StreamingOptions = StreamingOptions(),
        device: str = "cpu",
        threads: int = 1,
        default_asr: str | None = None,
        max_batch_size: int = 16,
        lm: str | Path | None = None,
        models: Sequence[str] = (),
        seq_options: SeqStreamingOptions = SeqStreamingOptions(),
    ) -> ModelRepository:
        """``root``: the model folder (None: only ``models``); ``models``: ASR models named one by one (files or
        Whisper references, served after the folder's); ``lm``: an LM folder for the CTC models without one of
        their own (``X.lm/`` or ``lm/`` here); ``seq_options``: how encoder-decoder models stream."""
        if root is None and not models:
            raise InputError("no models to serve: give a model folder (--models DIR) and/or --model M")
        repo = cls(root=str(root) if root is not None else "")
        if root is not None:
            repo._load_folder(Path(root), options, device, threads, max_batch_size, lm)
        for source in models:
            name = model_name(source)
            if name in repo.asr_models:
                raise InputError(f"--model {source}: a model named {name!r} is served already (name each once)")
            repo.asr_models[name] = load_asr(
                source, options, seq_options, device=device, threads=threads, name=name, max_batch_size=max_batch_size
            )
            if lm is not None and isinstance(repo.asr_models[name], Recognizer):
                from ..lm.decode import LMDecoder

                repo.asr_models[name].decoder = LMDecoder(lm, repo.asr_models[name].tokenizer)
        if default_asr:
            if default_asr not in repo.asr_models:
                raise ModelNotFound(
                    f"--default-model {default_asr!r}: not in {root} (ASR models there: "
                    f"{', '.join(repo.asr_models) or 'none'})"
                )
            repo.default_asr = default_asr
        elif repo.asr_models:
            int8 = [n for n, r in repo.asr_models.items() if r.backend.info(n).precision == "int8"]
            repo.default_asr = (int8 or list(repo.asr_models))[0]
        return repo

    def _load_folder(self, root: Path, options, device: str, threads: int, max_batch_size: int, lm) -> None:
        if not root.is_dir():
            raise InputError(
                f"--models {root}: not a folder (give the folder holding exported .onnx / .pt / .ckpt "
                "models and NLP model folders)"
            )
        if (root / "profanity.txt").is_file():
            self.profanity_list = str(root / "profanity.txt")
        for entry in sorted(root.iterdir()):
            if entry.name.startswith(".") or is_intermediate(entry):
                continue
            if entry.is_file() and entry.suffix in ASR_SUFFIXES:
                self.asr_models[entry.stem] = Recognizer.from_path(
                    str(entry), options, device=device, threads=threads, name=entry.stem, max_batch_size=max_batch_size
                )
                own = root / f"{entry.stem}.lm"
                lm_dir = own if (own / "lm.json").is_file() else (lm or shared_lm(root))
                if lm_dir is not None:
                    from ..lm.decode import LMDecoder

                    rec = self.asr_models[entry.stem]
                    rec.decoder = LMDecoder(lm_dir, rec.tokenizer)
            elif entry.is_dir() and ((entry / "model.pt").is_file() or (entry / "model.onnx").is_file()):
                from .nlp import load_nlp_model

                model = load_nlp_model(entry)
                self.nlp_models.setdefault(model.task, {})[entry.name] = model
        if not self.asr_models and not self.nlp_models:
            raise InputError(
                f"--models {root}: no models found (put .onnx files from `speechtao asr export`, "
                ".pt/.ckpt checkpoints or NLP model folders there)"
            )

    def asr(self, name: str) -> Recognizer | SeqRecognizer:
        """The ASR model called ``name`` ("" = the default)."""
        if not self.asr_models:
            raise ModelNotFound(
                f"no ASR model is served (the model repository {self.root} holds none; add an "
                "exported .onnx or a .pt/.ckpt checkpoint)"
            )
        key = name or self.default_asr
        if key not in self.asr_models:
            raise ModelNotFound(
                f"ASR model {name!r} is not served here (available: {', '.join(self.asr_models)}; "
                "leave RecognitionConfig.model empty for the default)"
            )
        return self.asr_models[key]

    def nlp(self, task: str, name: str = "") -> Any:
        """The NLP model of ``task`` called ``name`` ("" = the first of that task)."""
        models = self.nlp_models.get(task, {})
        if not models:
            raise ModelNotFound(
                f"no {task} model is served (put a `speechtao {task}` model folder in the model repository {self.root})"
            )
        if not name:
            return next(iter(models.values()))
        if name not in models:
            raise ModelNotFound(f"{task} model {name!r} is not served here (available: {', '.join(models)})")
        return models[name]

    def has_nlp(self, task: str) -> bool:
        return bool(self.nlp_models.get(task))

    def close(self) -> None:
        self.asr_models.clear()
        self.nlp_models.clear()


def describe(repo: ModelRepository) -> list[dict]:
    """One line per model, for the server's start-up log."""
    rows = []
    for name, rec in repo.asr_models.items():
        info = rec.backend.info(name)
        rows.append(
            {
                "name": name,
                "task": "asr",
                "path": info.path,
                "provider": info.provider,
                "sample_rate": info.sample_rate,
                "precision": info.precision,
                "default": name == repo.default_asr,
            }
        )
    for task, models in repo.nlp_models.items():
        for name, m in models.items():
            rows.append({"name": name, "task": task, "path": m.source})
    return rows
