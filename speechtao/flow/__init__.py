"""The TAO flow on one domain, stage by stage: what ``speechtao asr flow`` and ``make finetune-asr`` run.

Stages, in order (each writes ``<out_dir>/stages/<name>.json``; a rerun skips the stages already done)::

    data                 the manifests: ``data.dir`` (train/test[/dev]) or ``data.train``/``dev``/``test``, else
                         the bundled custom domain (speechtao.corpora.domain, made in ``domain.out`` when missing);
                         every manifest is checked up front (every defective line at once, before any training);
                         without a dev manifest a deterministic share of train is held out as dev
    evaluate_starter     WER/CER of the pretrained starter on the test (and dev) split
    finetune             fine-tune the starter on train, validated on dev (``best.pt`` chosen on dev)
    evaluate_finetuned
    prune                structured pruning (speechtao.asr.prune) of the fine-tuned model at each candidate ratio:
                         conv channels, or a Whisper encoder's attention heads and FFN neurons
    retrain              fine-tune the pruned model again, distilling from the fine-tuned model by default
                         (``retrain.distill_from_finetuned``; speechtao.asr.distill). With
                         ``prune.max_wer_increase`` the candidate ratios are retrained largest first and the first
                         whose dev WER stays within the budget of the fine-tuned model's is kept
    evaluate_pruned      the kept ratio's pruned model before retraining (shows what pruning costs)
    evaluate_retrained
    export_int8          ONNX FP32 + static INT8 QDQ calibrated on train audio (speechtao.export.asr: QAT ranges
                         of a QAT checkpoint applied)
    evaluate_int8        the INT8 ONNX in ONNX Runtime, same splits and scoring
    report               report.md (WER per stage, the deployed model against the fine-tuned one, each stage's wall
                         time), report.json, report.png

The starter may be a QuartzNet/CitriNet or a Whisper-encoder CTC checkpoint (``starter=models/
whisper_tiny_en_ctc_synth.pt``): the training stages add their ``family_overrides`` for the starter's family
(a pretrained transformer wants a lower learning rate than the small conv starter), and the INT8 export
quantizes what :func:`speechtao.export.asr.int8_op_types` names for it.

Failures are loud: the first stage that fails stops the flow (its record holds the reason; the report is
written) and its error propagates, so the CLI exits non-zero; a selected stage whose inputs were never made
raises :class:`InputError`. Training stages that were interrupted resume from their newest checkpoint.

Threads: on a CPU that other jobs share, more intra-op threads than free cores is ruinous (a training step of
the 0.7M-parameter starter took ~25 s with 2 threads and ~1.8 s with 1 thread on 2 cores running ~18 busy
processes), so ``threads`` defaults to 1; raise it on an idle machine.

RTF (real-time factor) is wall seconds per audio second of decoding the test split, audio reading and
features included, batch ``eval_batch_size``, with the threads torch (or ONNX Runtime) was given.

Usage::

    spec = load_spec(FlowSpec, "recipes/asr_flow.yaml", ["data.dir=my_corpus"])
    summary = run_flow(spec)          # {"rows": [...], "stages": {...}, ...}; raises on a failed stage
"""

from .data import check_manifests, resolve_manifests
from .report import format_report, format_table, plot_report
from .runner import Flow, run_flow
from .spec import STAGES, DataStage, DomainStage, ExportStage, FlowSpec, PruneStage, TrainStage

__all__ = [
    "FlowSpec",
    "DataStage",
    "DomainStage",
    "TrainStage",
    "PruneStage",
    "ExportStage",
    "STAGES",
    "Flow",
    "run_flow",
    "resolve_manifests",
    "check_manifests",
    "format_report",
    "format_table",
    "plot_report",
]
