"""The spec of ``speechtao asr flow`` (``recipes/asr_flow.yaml``): stages, their order and their options."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

STAGES: tuple[str, ...] = (
    "data",
    "evaluate_starter",
    "finetune",
    "evaluate_finetuned",
    "prune",
    "retrain",
    "evaluate_pruned",
    "evaluate_retrained",
    "export_int8",
    "evaluate_int8",
    "lm",
    "evaluate_int8_lm",
    "report",
)

# The stages each stage needs (a selected stage whose needs are not done is an error).
NEEDS: dict[str, tuple[str, ...]] = {
    "evaluate_starter": ("data",),
    "finetune": ("data",),
    "evaluate_finetuned": ("finetune",),
    "prune": ("finetune",),
    "retrain": ("prune",),
    "evaluate_pruned": ("retrain",),
    "evaluate_retrained": ("retrain",),
    "export_int8": ("finetune",),
    "evaluate_int8": ("export_int8",),
    "lm": ("export_int8",),
    "evaluate_int8_lm": ("lm",),
}

# The first stage that reads each section of the spec: when a section changes, that stage and every later one run
# again. eval_batch_size and threads change no result (only speeds), out_dir is the run itself.
FIRST_STAGE: dict[str, str] = {
    "starter": "data",  # the data checks read the starter's vocabulary
    "data": "data",
    "domain": "data",
    "finetune": "finetune",
    "prune": "prune",
    "retrain": "retrain",
    "export": "export_int8",
    "lm": "lm",
}

# What each stage writes in out_dir besides its record (removed when it must run again).
OUTPUTS: dict[str, tuple[str, ...]] = {
    "data": ("data",),
    "finetune": ("finetune", "finetune_train.log"),
    "prune": ("pruned",),
    "retrain": ("retrain",),
    "export_int8": ("export",),
    "lm": ("export/lm",),
    "report": ("report.md", "report.json", "report.png"),
}

# Rows of the report table: (evaluation stage, label).
EVAL_ROWS: tuple[tuple[str, str], ...] = (
    ("evaluate_starter", "starter (pretrained)"),
    ("evaluate_finetuned", "fine-tuned"),
    ("evaluate_pruned", "pruned"),
    ("evaluate_retrained", "pruned + retrained"),
    ("evaluate_int8", "INT8 ONNX (ONNX Runtime)"),
    ("evaluate_int8_lm", "INT8 ONNX + domain LM"),
)


@dataclass(frozen=True)
class DataStage:
    """Your data. Nothing set: the bundled domain (``domain:``). ``dir`` or ``train`` + ``test``; ``dev`` optional."""

    dir: Path | None = None  # a folder holding train.jsonl and test.jsonl, and dev.jsonl if you have one (or .json)
    train: Path | None = None  # manifests (each replaces the folder's file of that split)
    dev: Path | None = None  # validation and checkpoint choice; none: ``dev_share`` of train is held out
    test: Path | None = None  # scored at every stage, never used to choose anything
    dev_share: float = 0.1  # share of train held out as dev when no dev manifest is given (seeded: deterministic)
    seed: int = 0  # which training utterances become dev

    def __post_init__(self):
        if self.dir is None and (self.train is None) != (self.test is None):
            raise ValueError(
                "give data.dir (a folder with train.jsonl and test.jsonl), or both data.train and data.test"
            )
        if self.dir is None and self.train is None and self.dev is not None:
            raise ValueError("data.dev needs data.train and data.test (or data.dir)")
        if not 0.0 < self.dev_share < 0.5:
            raise ValueError(f"dev_share must be in (0, 0.5), got {self.dev_share}")

    @property
    def bundled(self) -> bool:
        return self.dir is None and self.train is None


@dataclass(frozen=True)
class DomainStage:
    out: Path = Path("data/domain")  # bundled corpus folder (train.jsonl, test.jsonl); made when missing
    n_train: int = 160  # training utterances (dev is held out of these)
    n_test: int = 40  # test utterances
    seed: int = 0


@dataclass(frozen=True)
class TrainStage:
    recipe: Path  # an `asr finetune` recipe; init_from, data.train/validation and trainer.out_dir are set here
    overrides: list[str] = field(default_factory=list)  # key.sub=value applied to the recipe
    family_overrides: dict[str, list[str]] = field(default_factory=dict)  # family -> overrides for a starter of that
    # family ("whisper", "quartznet", "citrinet", "custom"), applied before ``overrides``, which win
    distill_from_finetuned: bool = False  # retrain only: distill.teacher = the fine-tuned model, set before the
    # overrides; distill.manifest (unlabelled audio) is the train split unless the recipe or overrides give one


@dataclass(frozen=True)
class PruneStage:
    ratio: float = 0.25  # share of each block's channels removed (the only candidate without max_wer_increase)
    max_wer_increase: float | None = None  # WER points the retrained model may lose on dev against the fine-tuned
    # model: then ``ratios`` are tried largest first and the first within the budget is kept
    ratios: list[float] = field(default_factory=lambda: [0.5, 0.375, 0.25])  # candidates for max_wer_increase
    granularity: int = 8
    min_channels: int = 16

    def __post_init__(self):
        for r in [self.ratio, *self.ratios]:
            if not 0.0 <= r < 1.0:
                raise ValueError(f"prune ratios must be in [0, 1), got {r}")
        if self.max_wer_increase is not None and (self.max_wer_increase < 0 or not self.ratios):
            raise ValueError("max_wer_increase needs ratios to try and must be >= 0 (WER points)")

    @property
    def candidates(self) -> list[float]:
        """The ratios to try, largest first."""
        return sorted(set(self.ratios), reverse=True) if self.max_wer_increase is not None else [self.ratio]


@dataclass(frozen=True)
class ExportStage:
    calib_utterances: int = 32  # training utterances the INT8 ranges are calibrated on
    method: Literal["minmax", "entropy", "percentile"] = "entropy"  # see QuantOptions.method


@dataclass(frozen=True)
class LMStage:
    """A domain n-gram LM from the training transcripts (and ``text``), tuned on dev with the INT8 model, written
    to ``export/lm`` (``speechtao serve --models <out_dir>/export`` decodes finals with it)."""

    enabled: bool = True
    order: int = 3
    text: list[Path] = field(default_factory=list)  # extra domain text files (one or more sentences a line)
    alphas: list[float] = field(default_factory=lambda: [0.25, 0.5, 1.0, 1.5, 2.0])  # LM weights tried on dev
    betas: list[float] = field(default_factory=lambda: [-1.0, 0.0, 1.0, 2.0])  # word scores tried on dev
    beam_size: int = 16

    def __post_init__(self):
        if not 1 <= self.order <= 6 or not self.alphas or not self.betas or self.beam_size < 1:
            raise ValueError("lm: order must be 1..6, alphas and betas non-empty, beam_size >= 1")


@dataclass(frozen=True)
class FlowSpec:
    """``speechtao asr flow``: one pretrained starter adapted to one domain, every TAO stage."""

    starter: str  # checkpoint path (or preset name: random weights, only for trying the flow)
    out_dir: Path  # results/<run>: stages/, models, report.md, report.png
    finetune: TrainStage
    retrain: TrainStage
    data: DataStage = DataStage()
    domain: DomainStage = DomainStage()
    prune: PruneStage = PruneStage()
    export: ExportStage = ExportStage()
    lm: LMStage = LMStage()
    eval_batch_size: int = 16
    threads: int = 1  # torch and ONNX Runtime intra-op threads (on a CPU shared with other jobs keep 1: see above)

    def __post_init__(self):
        if self.eval_batch_size < 1 or self.threads < 1:
            raise ValueError("eval_batch_size and threads must be >= 1")
        if self.finetune.distill_from_finetuned:
            raise ValueError(
                "finetune.distill_from_finetuned: only the retrain stage has a fine-tuned teacher "
                "(set retrain.distill_from_finetuned: true instead)"
            )
