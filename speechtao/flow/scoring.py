"""Scores and curves of the flow's models: WER/CER/RTF of a checkpoint (PyTorch) or an exported ONNX file (ONNX
Runtime) through the library's one evaluator, and the training curves from the history the Trainer writes."""

from __future__ import annotations

from pathlib import Path


def file_size(path: str | Path) -> int:
    return Path(path).stat().st_size


def curve(history: str | Path) -> dict[str, list]:
    """``{"step", "loss", "lr", "val_step", "val_wer"}`` lists from a run's ``history.jsonl`` (or its folder)."""
    from ..train.history import read_history

    out: dict[str, list] = {"step": [], "loss": [], "lr": [], "val_step": [], "val_wer": []}
    for e in read_history(history):
        if e["kind"] == "train":
            out["step"].append(e["step"])
            out["loss"].append(e["loss"])
            out["lr"].append(e["lr"])
        elif "wer" in e["metrics"]:
            out["val_step"].append(e["step"])
            out["val_wer"].append(e["metrics"]["wer"])
    return out


def score(
    model: str | Path, manifests: dict[str, Path], *, batch_size: int, threads: int, lm: str | Path | None = None
) -> dict[str, dict]:
    """``{split: metrics}`` of ``model`` (a checkpoint, preset or exported ONNX file, opened once by
    :func:`speechtao.asr.backends.open_model`) on each manifest, scored by :func:`speechtao.asr.evaluate.evaluate`:
    the same code as ``speechtao asr evaluate`` (with ``lm``: ``--lm``)."""
    from ..asr.backends import open_model
    from ..asr.evaluate import EvalOptions, evaluate

    backend = open_model(str(model), threads=threads)
    if lm is not None:  # beam search with the LM folder (speechtao.lm), as `asr evaluate --lm`
        from ..lm.decode import LMDecoder

        backend.decoder = LMDecoder(lm, backend.tokenizer)
    try:
        options = EvalOptions(batch_size=batch_size, threads=threads)
        return {split: evaluate(backend, path, options).metrics for split, path in manifests.items()}
    finally:
        backend.close()


def parameters(checkpoint: str | Path) -> int:
    """Parameters of a checkpoint or preset's model."""
    from ..asr.checkpoint import load_model

    return sum(p.numel() for p in load_model(str(checkpoint)).model.parameters())
