"""Grid search of the LM weight ``alpha`` and word score ``beta`` on a dev manifest: ``speechtao lm tune``.

The model runs once over the manifest; every grid point only re-runs the beam search on the stored
log-probabilities, and is scored with :func:`speechtao.asr.metrics.wer` (both sides normalized). The best
point (lowest WER; the smaller ``alpha`` on ties, so the LM overrides the audio no more than needed) is
stored in the LM card's ``decoding`` with the grid in ``tuning``, so ``asr evaluate --lm DIR``, ``asr infer``
and the server decode with it.

Usage::

    transcriber = open_model("model.int8.onnx")
    result = tune_lm("lm/", transcriber, "dev.jsonl", TuneOptions(alphas=(0.5, 1.0), betas=(0.0, 1.0)))
    result["best"]    # {"alpha": 1.0, "beta": 0.0, "wer": 0.12}
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from .build import read_card, write_card
from .decode import DecodingSpec, LMDecoder

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TuneOptions:
    alphas: Sequence[float] = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0)
    betas: Sequence[float] = (-2.0, -1.0, 0.0, 1.0, 2.0, 3.0)
    beam_size: int = 16
    beam_size_token: int = 8
    beam_threshold: float = 15.0
    lexicon_free: bool = False
    write: bool = True  # store the best point in the LM card


def tune_lm(lm_dir: str | Path, transcriber, manifest: str | Path, options: TuneOptions = TuneOptions()) -> dict:
    """Find the best ``alpha``/``beta`` for ``transcriber`` (a :class:`speechtao.asr.infer.Transcriber`, as
    :func:`speechtao.asr.backends.open_model` returns for checkpoints and ONNX files) on ``manifest``."""
    from ..asr.ctc import greedy_decode
    from ..asr.infer import Utterance
    from ..asr.metrics import wer
    from ..data.manifest import read_manifest

    if not hasattr(transcriber, "log_probs"):
        raise InputError("lm tune: the model must run here (a checkpoint or ONNX file), not on a server")
    if not options.alphas or not options.betas:
        raise InputError("lm tune: give at least one alpha and one beta")
    entries = read_manifest(manifest)
    refs = [e.text for e in entries]
    start = time.perf_counter()
    utts = [Utterance(e.audio_filepath, e.offset, e.duration if e.segment else None) for e in entries]
    log_probs = transcriber.log_probs(utts)
    model_s = time.perf_counter() - start
    tok = transcriber.tokenizer
    import torch

    greedy = [
        tok.decode(list(greedy_decode(torch.from_numpy(lp.copy())[None], None, tok.blank_id)[0].token_ids))
        for lp in log_probs
    ]
    base = DecodingSpec(
        beam_size=options.beam_size,
        beam_size_token=options.beam_size_token,
        beam_threshold=options.beam_threshold,
        lexicon_free=options.lexicon_free,
    )
    decoder = LMDecoder(lm_dir, tok, base)
    grid = []
    for alpha in options.alphas:
        for beta in options.betas:
            spec = base.replace(alpha=float(alpha), beta=float(beta))
            t0 = time.perf_counter()
            hyps = [decoder.search(lp, spec=spec)[0].text for lp in log_probs]
            grid.append({"alpha": alpha, "beta": beta, "wer": wer(refs, hyps), "seconds": time.perf_counter() - t0})
            log.info("alpha %g beta %g: WER %.4f", alpha, beta, grid[-1]["wer"])
    best = min(grid, key=lambda g: (round(g["wer"], 9), g["alpha"], abs(g["beta"])))
    seconds = sum(lp.shape[0] for lp in log_probs) * transcriber.frame_shift_s
    result = {
        "best": {"alpha": best["alpha"], "beta": best["beta"], "wer": best["wer"]},
        "greedy_wer": wer(refs, greedy),
        "manifest": str(manifest),
        "utterances": len(entries),
        "model": getattr(transcriber, "description", ""),
        "model_seconds": round(model_s, 3),
        "decode_rtf": best["seconds"] / seconds if seconds else 0.0,
        "grid": grid,
    }
    if options.write:
        card = read_card(lm_dir)
        card["decoding"] = base.replace(alpha=float(best["alpha"]), beta=float(best["beta"])).to_dict()
        card["tuning"] = {k: v for k, v in result.items() if k != "grid"} | {
            "grid": [{k: round(v, 4) for k, v in g.items()} for g in grid]
        }
        write_card(lm_dir, card)
    return result
