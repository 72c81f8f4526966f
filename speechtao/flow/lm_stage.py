"""The flow's language-model stage: a domain n-gram LM from the training transcripts (plus optional text),
alpha/beta tuned on the dev split with the exported INT8 model, written beside the export (``export/lm``) so
that ``speechtao serve --models <out_dir>/export`` decodes finals with it."""

from __future__ import annotations

from pathlib import Path


def build_domain_lm(spec, *, out: Path, train: Path, dev: Path, model: str, threads: int) -> dict:
    """Build and tune the LM of ``spec`` (:class:`speechtao.flow.spec.LMStage`); returns the stage record."""
    from ..asr.backends import open_model
    from ..lm.build import LMBuildOptions, build_lm
    from ..lm.tune import TuneOptions, tune_lm

    backend = open_model(model, threads=threads)
    try:
        card = build_lm(
            LMBuildOptions(
                out=out,
                manifests=[train],
                texts=list(spec.text),
                order=spec.order,
                tokenizer=backend.tokenizer,
                license_notes=["the training transcripts (and lm.text files) of this flow's data"],
            )
        )
        tuned = tune_lm(
            out,
            backend,
            dev,
            TuneOptions(alphas=tuple(spec.alphas), betas=tuple(spec.betas), beam_size=spec.beam_size),
        )
    finally:
        backend.close()
    return {
        "lm": str(out),
        "order": spec.order,
        "counts": card["counts"],
        "sentences": card["sentences"],
        "vocabulary": card["vocabulary"],
        "backend": card["backend"],
        "alpha": tuned["best"]["alpha"],
        "beta": tuned["best"]["beta"],
        "dev_wer_greedy": tuned["greedy_wer"],
        "dev_wer_lm": tuned["best"]["wer"],
    }
