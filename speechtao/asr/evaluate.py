"""Word and character error rates of a CTC model on a manifest.

The model is any form :func:`speechtao.asr.backends.open_model` opens (checkpoint, ``.nemo``, ONNX FP32 or
INT8, a Riva-protocol server); local models decode the manifest greedily in batches of similar duration (see
:class:`speechtao.asr.infer.Transcriber`). Every form is scored by the same code here, with
:mod:`speechtao.asr.metrics` (both sides normalized). The outputs in ``--out``:

- ``metrics.json``: ``wer`` and ``cer`` (fractions, corpus-level), ``n``, ``hours``, ``rtf`` (wall seconds per
  audio second, audio reading included; ``rtf_model``: forward and decoding only, or the server's answers),
  error counts, ``model``, ``loaded`` (what was opened, e.g. ``onnx m.int8.onnx (INT8 QDQ, ...)``),
  ``manifest``;
- ``utterances.jsonl``: per utterance in manifest order: ``audio_filepath``, ``reference``, ``hypothesis``,
  ``wer``, ``errors``, ``ref_words``, ``ops`` (the word alignment) and more;
- ``worst.txt``: the utterances with the most word errors, reference over hypothesis.

Usage::

    result = evaluate("model.int8.onnx", "test.jsonl", EvalOptions(batch_size=16))
    result = evaluate(open_model(server="127.0.0.1:50051", streaming=True), "test.jsonl")
    print(summary_line(result.metrics))   # WER 12.34% CER 5.67% (200 utterances, 0.41 hours)
    write_outputs(result, "eval/")
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from .infer import Transcriber, Utterance
from .metrics import utterance_report


@dataclass(frozen=True)
class EvalOptions:
    batch_size: int = 16  # utterances per forward pass (batches hold utterances of similar duration)
    device: str = "cpu"  # "cpu" or "cuda"
    threads: int = 1  # ONNX Runtime intra-op threads (a model given as a path)
    worst: int = 10  # how many of the worst utterances to list
    progress: bool = False  # a progress bar on stderr


@dataclass
class EvalResult:
    metrics: dict  # what metrics.json holds
    utterances: list[dict]  # one record per manifest line, in manifest order

    def worst(self, k: int) -> list[dict]:
        """The ``k`` utterances with the most word errors (then the highest WER; manifest order breaks ties)."""
        ranked = sorted(self.utterances, key=lambda u: (-u["errors"], -u["wer"]))
        return [u for u in ranked[:k] if u["errors"] > 0]


def evaluate(model, manifest: str | Path, options: EvalOptions = EvalOptions()) -> EvalResult:
    """Score ``model`` on ``manifest``.

    Args:
        model: a path or name :func:`speechtao.asr.backends.open_model` opens (checkpoint, ``.nemo``, ONNX,
            preset), an opened backend (e.g. ``open_model(server="host:port")``), or a loaded
            :class:`speechtao.asr.checkpoint.LoadedModel`.
        manifest: a NeMo JSON-lines manifest (read by :func:`speechtao.data.manifest.read_manifest`).
    """
    from ..data.manifest import read_manifest
    from .backends import open_model

    entries = read_manifest(manifest)
    opened = isinstance(model, (str, Path))
    if opened:
        backend = open_model(model, threads=options.threads, device=options.device)
    elif hasattr(model, "transcribe"):
        backend = model
    else:  # a LoadedModel
        backend = Transcriber.from_loaded(model, options.device)
    utts = [Utterance(e.audio_filepath, e.offset, e.duration if e.segment else None) for e in entries]
    try:
        in_model_before = backend.seconds_in_model
        start = time.perf_counter()
        results = backend.transcribe(utts, options.batch_size, progress=options.progress)
        wall = time.perf_counter() - start
        in_model = backend.seconds_in_model - in_model_before
    finally:
        if opened:
            backend.close()

    records = []
    totals = {"ref_len": 0, "hits": 0, "substitutions": 0, "deletions": 0, "insertions": 0, "errors": 0}
    char_errors = ref_chars = 0
    for entry, res in zip(entries, results):
        rep = utterance_report(entry.text, res.text)
        for key in totals:
            totals[key] += rep["counts"][key]
        char_errors += rep["char_errors"]
        ref_chars += rep["ref_chars"]
        rec = {"audio_filepath": entry.audio_filepath, "duration": round(res.duration, 3)}
        if entry.segment:
            rec["offset"] = entry.offset
        rec.update(
            {
                "reference": entry.text,
                "hypothesis": res.text,
                "wer": rep["wer"],
                "cer": rep["cer"],
                "errors": rep["errors"],
                "ref_words": rep["ref_words"],
                "substitutions": rep["counts"]["substitutions"],
                "deletions": rep["counts"]["deletions"],
                "insertions": rep["counts"]["insertions"],
                "confidence": round(res.confidence, 4),
                "normalized_reference": rep["ref"],
                "normalized_hypothesis": rep["hyp"],
                "ops": rep["ops"],
            }
        )
        records.append(rec)
    seconds = sum(r.duration for r in results)
    metrics = {
        "wer": totals["errors"] / max(totals["ref_len"], 1),
        "cer": char_errors / max(ref_chars, 1),
        "n": len(records),
        "hours": seconds / 3600,
        "rtf": wall / seconds if seconds > 0 else 0.0,
        "rtf_model": in_model / seconds if seconds > 0 else 0.0,  # without audio reading
        "words": totals["ref_len"],
        "word_errors": totals["errors"],
        "substitutions": totals["substitutions"],
        "deletions": totals["deletions"],
        "insertions": totals["insertions"],
        "chars": ref_chars,
        "char_errors": char_errors,
        "seconds": round(wall, 3),
        "model": str(model) if opened else backend.description,
        "loaded": backend.description,
        "manifest": str(manifest),
        "device": options.device,
        "batch_size": options.batch_size,
    }
    return EvalResult(metrics, records)


def summary_line(metrics: dict) -> str:
    """``WER 12.34% CER 5.67% (N utterances, H hours)``: the last line ``asr evaluate`` prints."""
    return (
        f"WER {100 * metrics['wer']:.2f}% CER {100 * metrics['cer']:.2f}% "
        f"({metrics['n']} utterances, {metrics['hours']:.4g} hours)"
    )


def format_worst(records: list[dict]) -> str:
    """The given utterances as readable blocks: errors, WER, file, then REF and HYP (normalized)."""
    blocks = []
    for r in records:
        where = r["audio_filepath"] + (f" @{r['offset']:g}s" if "offset" in r else "")
        blocks.append(
            f"{r['errors']} errors ({r['substitutions']} sub, {r['deletions']} del, "
            f"{r['insertions']} ins) WER {100 * r['wer']:.1f}%  {where}\n"
            f"  REF: {r['normalized_reference']}\n  HYP: {r['normalized_hypothesis']}\n"
        )
    return "\n".join(blocks)


def write_outputs(result: EvalResult, out_dir: str | Path, worst: int = 10) -> list[Path]:
    """Write ``metrics.json``, ``utterances.jsonl`` and ``worst.txt`` into ``out_dir`` (each atomically)."""
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "metrics.json": json.dumps(result.metrics, indent=2) + "\n",
        "utterances.jsonl": "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in result.utterances),
        "worst.txt": format_worst(result.worst(worst)) or f"no word errors in {result.metrics['n']} utterances\n",
    }
    written = []
    for name, text in files.items():
        dest = folder / name
        tmp = folder / f".{name}.tmp"
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, dest)
        written.append(dest)
    return written
