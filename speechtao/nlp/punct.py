"""Punctuation and capitalization: turn raw ASR output (``how are you i am fine``) into readable text
(``How are you? I am fine.``) with two token-classification heads over one encoder.

Data: NeMo's two-file format, one example per line in each file of a folder::

    text.txt     how are you i am fine                   lowercased words, no punctuation
    labels.txt   OU OO ?O UO OO .O                        per word: punctuation after it + case

The punctuation label (first character) is one of ``O , . ?`` (nothing, comma, period, question mark);
the capitalization label (second) is ``U`` (first letter upper case) or ``O``. :mod:`speechtao.corpora.punct_gen` builds
such folders from real punctuated English (:mod:`speechtao.corpora.textsrc`): ``; :`` count as commas and ``!`` as a
period, as NeMo's default label set does.

Usage::

    model = PunctCapModel.load("runs/punct/model")
    model.punctuate(["how are you i am fine"])       # ["How are you? I am fine."]
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from ..errors import DataError, ManifestError
from ..spec import spec_to_dict
from ..train.loop import TrainerSpec
from ..train.optim import OptimSpec
from ..train.schedule import ScheduleSpec
from .heads import TokenTaggingNet
from .metrics import classification_report, format_report
from .model_io import ModelSpec, NLPModel, load_model, start_model
from .prune import PruneSpec, prune_task
from .tagging import collate_tagged, encode_tagged, head_probabilities, inverse_sqrt_weights, tagging_loss
from .training import EncoderDataSpec, EncoderTask, train_and_save

TASK = "punct"
PUNCT_LABELS = ["O", ",", ".", "?"]
CAPIT_LABELS = ["O", "U"]
LABELS = {"punct": PUNCT_LABELS, "capit": CAPIT_LABELS}
TEXT_FILE, LABELS_FILE = "text.txt", "labels.txt"
_MARK = {",": ",", ";": ",", ":": ",", ".": ".", "!": ".", "?": "?"}
_RANK = {"O": 0, ",": 1, ".": 2, "?": 3}  # when marks pile up ("?!", ".,") the strongest wins
_TOKEN_RE = re.compile(r"[A-Za-z0-9]+(?:'[A-Za-z0-9]+)*|[,;:.!?]")


# ------------------------------------------------------------------------------------------------ data


@dataclass
class PunctExample:
    words: list[str]  # lowercased
    punct: list[int]  # index into PUNCT_LABELS per word
    capit: list[int]  # index into CAPIT_LABELS per word


def label_text(text: str) -> PunctExample:
    """Words and labels of punctuated, cased text: ``"Well, I'm here!"`` -> ``well i'm here`` / ``,U UU .O``
    (quotes, brackets and hyphens are dropped; a hyphenated word becomes two words)."""
    words: list[str] = []
    punct: list[int] = []
    capit: list[int] = []
    for tok in _TOKEN_RE.findall(text):
        if tok in _MARK:
            if words:
                mark = _MARK[tok]
                if _RANK[mark] > punct[-1]:
                    punct[-1] = _RANK[mark]
            continue
        words.append(tok.lower())
        punct.append(0)
        capit.append(1 if tok[0].isupper() else 0)
    return PunctExample(words, punct, capit)


def format_labels(ex: PunctExample) -> str:
    return " ".join(PUNCT_LABELS[p] + CAPIT_LABELS[c] for p, c in zip(ex.punct, ex.capit))


def write_dataset(folder: str | Path, examples: Sequence[PunctExample]) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / TEXT_FILE).write_text("".join(" ".join(e.words) + "\n" for e in examples))
    (folder / LABELS_FILE).write_text("".join(format_labels(e) + "\n" for e in examples))
    return folder


def read_dataset(folder: str | Path, limit: int | None = None) -> list[PunctExample]:
    """Read ``text.txt`` + ``labels.txt`` of ``folder``; every defect is reported as ``FILE:LINE: problem``."""
    folder = Path(folder)
    text_path, labels_path = folder / TEXT_FILE, folder / LABELS_FILE
    for p in (text_path, labels_path):
        if not p.is_file():
            raise DataError(
                f"{p}: not found (a punctuation dataset is a folder with {TEXT_FILE} and {LABELS_FILE}; "
                "`speechtao punct make-data` writes them)"
            )
    texts = text_path.read_text(encoding="utf-8").splitlines()
    labels = labels_path.read_text(encoding="utf-8").splitlines()
    defects: list[str] = []
    if len(texts) != len(labels):
        defects.append(
            f"{labels_path}: {len(labels)} lines but {text_path} has {len(texts)} (one label line per text line)"
        )
    valid_p, valid_c = set(PUNCT_LABELS), set(CAPIT_LABELS)
    out = []
    for i, (t, lab) in enumerate(zip(texts, labels), start=1):
        words, tags = t.split(), lab.split()
        if not words:
            defects.append(f"{text_path}:{i}: empty line (remove it)")
            continue
        if len(words) != len(tags):
            defects.append(f"{labels_path}:{i}: {len(tags)} labels for {len(words)} words (one label per word)")
            continue
        bad = [x for x in tags if len(x) != 2 or x[0] not in valid_p or x[1] not in valid_c]
        if bad:
            defects.append(
                f"{labels_path}:{i}: label {bad[0]!r} is not punctuation ({' '.join(PUNCT_LABELS)}) "
                f"followed by case ({'/'.join(CAPIT_LABELS)}), e.g. ',U'"
            )
            continue
        out.append(
            PunctExample(
                [w.lower() for w in words],
                [PUNCT_LABELS.index(x[0]) for x in tags],
                [CAPIT_LABELS.index(x[1]) for x in tags],
            )
        )
        if limit is not None and len(out) >= limit and not defects:
            break
    if defects:
        raise ManifestError(defects[:50], f"{folder}: {len(defects)} defect(s) in the punctuation dataset")
    if not out:
        raise DataError(f"{folder}: no examples")
    return out


# ----------------------------------------------------------------------------------------------- model


def make_net(encoder: nn.Module, spec: ModelSpec) -> TokenTaggingNet:
    return TokenTaggingNet(
        encoder, {"punct": len(PUNCT_LABELS), "capit": len(CAPIT_LABELS)}, spec.head_layers, spec.dropout
    )


def _tag_labels(ex: PunctExample) -> dict[str, list[int]]:
    return {"punct": ex.punct, "capit": ex.capit}


@dataclass(frozen=True)
class CapitDecoding:
    """How a word's capitalization is decided: ``U`` when P(U) + ``stop_weight`` * P(the previous word ends
    a sentence: ``.`` or ``?``; 1 for a line's first word) >= ``threshold``. The default is the plain argmax;
    :func:`calibrate_capitalization` picks both numbers on validation data (``punct finetune`` does, and stores
    them with the model under ``extra["punct"]["capit_decoding"]``, exported ONNX files included)."""

    stop_weight: float = 0.0
    threshold: float = 0.5

    @classmethod
    def of(cls, model: NLPModel) -> CapitDecoding:
        d = (model.extra.get("punct") or {}).get("capit_decoding") or {}
        return cls(float(d.get("stop_weight", 0.0)), float(d.get("threshold", 0.5)))


def _capit_evidence(heads: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """P(U) and P(sentence end after the previous word; 1 for the first) for each word of one line."""
    pp, pc = heads
    stop = pp[:, PUNCT_LABELS.index(".")] + pp[:, PUNCT_LABELS.index("?")]
    prev = torch.cat([torch.ones(1), stop[:-1]]) if len(stop) else stop
    return pc[:, CAPIT_LABELS.index("U")], prev


def predict(model: NLPModel, lines: Sequence[Sequence[str]], batch_size: int = 32) -> list[tuple[list[int], list[int]]]:
    """``(punct, capit)`` label indices for every word of every line (capitalization by :class:`CapitDecoding`
    of the model)."""
    dec = CapitDecoding.of(model)
    out = []
    for heads in head_probabilities(model, lines, batch_size):
        upper, prev_stop = _capit_evidence(heads)
        capit = (upper + dec.stop_weight * prev_stop >= dec.threshold).long()
        out.append((heads[0].argmax(-1).tolist(), capit.tolist()))
    return out


def recalibrate(model: NLPModel, validation: str | Path, log: Callable[[str], None] = print) -> dict:
    """:func:`calibrate_capitalization` on the whole ``validation`` folder, stored in ``model.extra`` (saved
    with the model from then on). Returns the calibration."""
    cal = calibrate_capitalization(model, read_dataset(validation))
    model.extra = {**model.extra, "punct": {"capit_decoding": {k: cal[k] for k in ("stop_weight", "threshold")}}}
    log(
        f"capitalization decoding on {cal['words']} validation words: stop weight {cal['stop_weight']}, "
        f"threshold {cal['threshold']}: F1 (U) {cal['f1']:.4f} (argmax {cal['f1_argmax']:.4f})"
    )
    return cal


CALIBRATION_STOP_WEIGHTS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5)
CALIBRATION_THRESHOLDS = (0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7)


def calibrate_capitalization(model: NLPModel, examples: Sequence[PunctExample], batch_size: int = 32) -> dict:
    """The :class:`CapitDecoding` (over a grid of :data:`CALIBRATION_STOP_WEIGHTS` x
    :data:`CALIBRATION_THRESHOLDS`) with the best capitalization F1 (U) on ``examples``; the plain argmax
    unless another point beats it. Returns ``{"stop_weight", "threshold", "f1", "f1_argmax", "words"}``."""
    gold = torch.tensor([c for e in examples for c in e.capit], dtype=torch.bool)
    if not len(gold):
        raise DataError("capitalization calibration needs labelled words (the validation set is empty)")
    parts = [_capit_evidence(h) for h in head_probabilities(model, [e.words for e in examples], batch_size)]
    upper, prev_stop = torch.cat([u for u, _ in parts]), torch.cat([p for _, p in parts])

    def f1(weight: float, threshold: float) -> float:
        pred = upper + weight * prev_stop >= threshold
        tp = int((pred & gold).sum())
        denom = int(pred.sum()) + int(gold.sum())
        return 2 * tp / denom if denom else 0.0

    base = f1(0.0, 0.5)
    best = (base, 0.0, 0.5)
    for w in CALIBRATION_STOP_WEIGHTS:
        for t in CALIBRATION_THRESHOLDS:
            score = f1(w, t)
            if score > best[0]:
                best = (score, w, t)
    return {"stop_weight": best[1], "threshold": best[2], "f1": best[0], "f1_argmax": base, "words": len(gold)}


def bare_words(text: str) -> list[str]:
    """The whitespace-separated words of ``text`` without the marks the model writes (``, ; : . ! ?``) at their
    ends, so that already punctuated text is punctuated again, not doubled: "hello, world." -> ["hello", "world"].
    Marks inside a word stay ("3.5", "e.g"); a word that is only marks goes."""
    return [b for b in (w.strip(",;:.!?") for w in text.split()) if b]


def apply_labels(words: Sequence[str], punct: Sequence[int], capit: Sequence[int]) -> str:
    """``["how", "are", "you"]``, ``[0, 0, 3]``, ``[1, 0, 0]`` -> ``"How are you?"``."""
    out = []
    for w, p, c in zip(words, punct, capit):
        if c == 1 and w:
            w = w[0].upper() + w[1:]
        out.append(w + ("" if p == 0 else PUNCT_LABELS[p]))
    return " ".join(out)


def evaluate(model: NLPModel, examples: Sequence[PunctExample], batch_size: int = 32) -> dict:
    """Word-level reports of both heads. Headline numbers: ``punct_mark_f1`` (F1 of each mark ``, . ?``),
    ``punct_marks_macro_f1`` (their mean over the marks present in the data), ``capit_f1`` (F1 of ``U``); then
    ``punct_macro_f1`` (over ``O , . ?``: NeMo's macro average, which the frequent, easy ``O`` lifts) and
    ``capit_macro_f1``."""
    preds = predict(model, [e.words for e in examples], batch_size)
    gp = [p for e in examples for p in e.punct]
    gc = [c for e in examples for c in e.capit]
    pp = [p for pr in preds for p in pr[0]]
    pc = [c for pr in preds for c in pr[1]]
    rp = classification_report(gp, pp, PUNCT_LABELS)
    rc = classification_report(gc, pc, CAPIT_LABELS)
    mark_f1 = {k: rp["per_class"][k]["f1"] for k in PUNCT_LABELS[1:] if rp["per_class"][k]["support"]}
    return {
        "punct_mark_f1": mark_f1,
        "punct_marks_macro_f1": sum(mark_f1.values()) / len(mark_f1) if mark_f1 else 0.0,
        "capit_f1": rc["per_class"]["U"]["f1"],
        "punct_macro_f1": rp["macro"]["f1"],
        "capit_macro_f1": rc["macro"]["f1"],
        "words": len(gp),
        "punct": rp,
        "capit": rc,
    }


def format_evaluation(result: dict) -> str:
    """The headline first (per-mark F1, marks-only macro-F1, capitalization F1), then both heads' tables, then the
    averages that count the ``O`` class."""
    support = result["punct"]["per_class"]
    marks = "  ".join(f"{k} {f1:.4f} ({support[k]['support']})" for k, f1 in result["punct_mark_f1"].items())
    return "\n\n".join(
        [
            f"punctuation F1 per mark (support): {marks}\n"
            f"punctuation marks-only macro F1 ({' '.join(result['punct_mark_f1'])}): "
            f"{result['punct_marks_macro_f1']:.4f}\n"
            f"capitalization F1 (U): {result['capit_f1']:.4f}",
            format_report("punctuation", result["punct"]),
            format_report("capitalization", result["capit"]),
            f"O-inclusive averages: punctuation macro F1 over O , . ? {result['punct_macro_f1']:.4f}; "
            f"capitalization macro F1 over O U {result['capit_macro_f1']:.4f}; {result['words']} words",
        ]
    )


class PunctCapModel:
    """The serving API: ``PunctCapModel.load(path).punctuate(["raw asr text", ...])``."""

    def __init__(self, model: NLPModel):
        if model.task != TASK:
            raise DataError(f"{model.source}: is a {model.task!r} model, not punctuation/capitalization")
        self.model = model

    @classmethod
    def load(cls, path: str | Path) -> PunctCapModel:
        """A model folder, an export folder or an ``.onnx`` file (see :func:`speechtao.nlp.model_io.load_model`)."""
        return cls(load_model(path, TASK))

    def punctuate(self, texts: list[str], batch_size: int = 32) -> list[str]:
        """Punctuated, capitalized text for each input (whitespace-separated words; empty stays empty)."""
        lines = [bare_words(t) for t in texts]
        keep = [i for i, w in enumerate(lines) if w]
        preds = predict(self.model, [lines[i] for i in keep], batch_size)
        out = [""] * len(texts)
        for i, (p, c) in zip(keep, preds):
            out[i] = apply_labels(lines[i], p, c)
        return out


# -------------------------------------------------------------------------------------------- training


@dataclass(frozen=True)
class PunctDataSpec(EncoderDataSpec):
    """``train``/``validation``: folders with text.txt and labels.txt."""

    max_val_samples: int | None = 1000  # validation lines scored at each validation


@dataclass(frozen=True)
class PunctFinetuneSpec:
    data: PunctDataSpec
    trainer: TrainerSpec
    optim: OptimSpec
    model: ModelSpec = field(default_factory=ModelSpec)
    schedule: ScheduleSpec = field(default_factory=ScheduleSpec)
    capit_loss_weight: float = 1.0  # weight of the capitalization loss against the punctuation loss
    # Class weights in each head's loss: "auto" = 1/sqrt(training frequency) (see tagging.inverse_sqrt_weights),
    # "none" = all 1, or one number per class (punctuation: O , . ?; capitalization: O U).
    punct_class_weights: Literal["auto", "none"] | tuple[float, float, float, float] = "none"
    capit_class_weights: Literal["auto", "none"] | tuple[float, float] = "none"
    freeze_word_embeddings: bool = False  # keep the word-piece embedding table fixed (about half of MiniLM's weights)
    # After training, pick the capitalization decoding (CapitDecoding) on the whole validation split and store it
    # with the model; false keeps the plain argmax.
    calibrate_capitalization: bool = False

    def __post_init__(self):
        if self.capit_loss_weight < 0:
            raise ValueError(f"capit_loss_weight must be >= 0, got {self.capit_loss_weight}")
        for name, labels in (("punct", PUNCT_LABELS), ("capit", CAPIT_LABELS)):
            w = getattr(self, f"{name}_class_weights")
            if not isinstance(w, str) and not all(x > 0 for x in w):
                raise ValueError(
                    f"{name}_class_weights must be auto, none or {len(labels)} numbers > 0 (for "
                    f"{' '.join(labels)}), got {list(w)}"
                )


def class_weights(head: str, setting: str | Sequence[float], examples: Sequence[PunctExample]) -> torch.Tensor | None:
    """The class weights of ``head`` (punct or capit) for :attr:`PunctFinetuneSpec.punct_class_weights` /
    ``capit_class_weights`` (None for "none")."""
    labels = LABELS[head]
    if isinstance(setting, str):
        if setting == "none":
            return None
        if setting == "auto":
            return inverse_sqrt_weights((x for e in examples for x in getattr(e, head)), len(labels))
        raise ValueError(f"{head}_class_weights: {setting!r} is not auto, none or {len(labels)} numbers")
    if len(setting) != len(labels):
        raise ValueError(
            f"{head}_class_weights: {len(setting)} numbers given, one per class ({' '.join(labels)}) is needed"
        )
    return torch.tensor([float(x) for x in setting], dtype=torch.float32)


def training_task(
    model: NLPModel,
    train: Path,
    validation: Path,
    batch_size: int,
    seed: int,
    max_train: int | None = None,
    max_val: int | None = None,
    capit_weight: float = 1.0,
    head_class_weights: dict[str, str | Sequence[float]] | None = None,
    log: Callable[[str], None] = print,
) -> EncoderTask:
    """The Trainer task (also used to score and retrain a pruned model). ``head_class_weights``: per head
    (punct, capit) a class-weight setting (see :func:`class_weights`); None takes the settings (and the capit
    loss weight) the model was fine-tuned with, so retraining after `prune` weighs classes as training did.
    Validation reports ``f1`` = mean of ``punct_macro_f1`` and ``capit_f1``."""
    if head_class_weights is None and isinstance(model.spec, dict):
        head_class_weights = {
            head: model.spec[f"{head}_class_weights"]
            for head in ("punct", "capit")
            if model.spec.get(f"{head}_class_weights") is not None
        }
        capit_weight = float(model.spec.get("capit_loss_weight", capit_weight))
    train_ex = read_dataset(train, max_train)
    val_ex = read_dataset(validation, max_val)
    items = encode_tagged(
        model.tokenizer, [e.words for e in train_ex], [_tag_labels(e) for e in train_ex], model.max_length
    )
    pad = model.tokenizer.pad_token_id
    weights = {"punct": 1.0, "capit": capit_weight}
    per_class = {}
    for head, setting in (head_class_weights or {}).items():
        w = class_weights(head, setting, train_ex)
        if w is not None:
            per_class[head] = w
            log(f"{head} class weights: " + ", ".join(f"{k} {v:.3f}" for k, v in zip(LABELS[head], w.tolist())))

    def validate() -> dict:
        r = evaluate(model, val_ex)
        return {
            "f1": (r["punct_macro_f1"] + r["capit_f1"]) / 2,
            "punct_macro_f1": r["punct_macro_f1"],
            "capit_f1": r["capit_f1"],
        }

    return EncoderTask(
        model.net,
        items,
        lambda b: collate_tagged(b, pad),
        lambda net, b: tagging_loss(net, b, weights, per_class or None),
        validate,
        lambda: model.payload(),
        batch_size,
        seed,
    )


def finetune(spec: PunctFinetuneSpec, resume: bool = False) -> dict:
    """Fine-tune from ``spec.model`` on ``spec.data``; writes ``trainer.out_dir/model`` (see :func:`speechtao.nlp.training.train_and_save`)."""
    model = start_model(spec.model, TASK, LABELS, lambda enc: make_net(enc, spec.model), spec.trainer.seed)
    model.spec = spec_to_dict(spec)
    if spec.freeze_word_embeddings:
        model.net.encoder.get_input_embeddings().weight.requires_grad_(False)
    task = training_task(
        model,
        spec.data.train,
        spec.data.validation,
        spec.data.batch_size,
        spec.trainer.seed,
        spec.data.max_train_samples,
        spec.data.max_val_samples,
        spec.capit_loss_weight,
        {"punct": spec.punct_class_weights, "capit": spec.capit_class_weights},
    )
    finalize = None
    if spec.calibrate_capitalization:
        finalize = lambda m: {"capit_calibration": recalibrate(m, spec.data.validation)}  # noqa: E731
    return train_and_save(task, model, spec, spec.trainer.out_dir, resume, finalize=finalize)


def prune(spec: PruneSpec) -> dict:
    """Prune a punctuation model and retrain it (see :class:`speechtao.nlp.prune.PruneSpec`); the best retrained
    weights by validation ``f1``. A model fine-tuned with a calibrated capitalization decoding gets it picked
    again on ``spec.validation`` for the pruned weights. Returns the report written as ``prune_report.json``."""

    def recalibrated(model: NLPModel) -> dict:
        if spec.validation and "capit_decoding" in (model.extra.get("punct") or {}):
            return {"capit_calibration": recalibrate(model, spec.validation)}
        return {}

    return prune_task(spec, TASK, training_task, "f1", recalibrated)
