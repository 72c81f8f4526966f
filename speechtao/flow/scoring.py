"""Scores and curves of the flow's models: WER/CER/RTF of a checkpoint (PyTorch) or an exported ONNX file (ONNX
Runtime) on a manifest, and the training curves from the history the Trainer writes."""

from __future__ import annotations

import time
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


def evaluate_checkpoint(path: str | Path, manifest: Path, batch_size: int) -> dict:
    """WER, CER, RTF of a checkpoint (PyTorch) on ``manifest``; parameters and file size."""
    from ..asr.checkpoint import load_model
    from ..asr.evaluate import EvalOptions, evaluate

    loaded = load_model(str(path))
    result = evaluate(loaded, manifest, EvalOptions(batch_size=batch_size))
    m = result.metrics
    params = sum(p.numel() for p in loaded.model.parameters())
    size = file_size(path) if Path(path).is_file() else None
    return {
        "model": str(path),
        "wer": m["wer"],
        "cer": m["cer"],
        "rtf": m["rtf"],
        "n": m["n"],
        "params": params,
        "size_bytes": size,
        "runtime": "pytorch",
    }


def evaluate_onnx(path: Path, manifest: Path, batch_size: int, threads: int, params: int | None) -> dict:
    """WER, CER, RTF of an exported ONNX model run by ONNX Runtime (features in torch, as served)."""
    import numpy as np
    import torch

    from ..asr.ctc import greedy_decode
    from ..asr.metrics import cer, wer
    from ..audio import read_audio
    from ..data.manifest import read_manifest
    from ..serve.backends import OnnxBackend

    backend = OnnxBackend(path, provider="cpu", threads=threads)
    entries = read_manifest(manifest)
    order = sorted(range(len(entries)), key=lambda i: -entries[i].duration)
    hyps: list[str] = [""] * len(entries)
    seconds = 0.0
    start = time.perf_counter()
    for b in range(0, len(order), batch_size):
        idx = order[b : b + batch_size]
        audios = [
            read_audio(
                entries[i].audio_filepath,
                sample_rate=backend.sample_rate,
                offset=entries[i].offset,
                duration=entries[i].duration if entries[i].segment else None,
            )
            for i in idx
        ]
        lengths = np.array([len(a) for a in audios], dtype=np.int64)
        batch = np.zeros((len(audios), int(lengths.max())), dtype=np.float32)  # (B, T)
        for j, a in enumerate(audios):
            batch[j, : len(a)] = a
        seconds += float(lengths.sum()) / backend.sample_rate
        log_probs, out_lengths = backend(batch, lengths)  # (B, T', V+1), (B,)
        for i, hyp in zip(
            idx, greedy_decode(torch.from_numpy(log_probs), torch.from_numpy(out_lengths), backend.tokenizer.blank_id)
        ):
            hyps[i] = backend.tokenizer.decode(list(hyp.token_ids))
    wall = time.perf_counter() - start
    refs = [e.text for e in entries]
    return {
        "model": str(path),
        "wer": wer(refs, hyps),
        "cer": cer(refs, hyps),
        "rtf": wall / max(seconds, 1e-9),
        "n": len(entries),
        "params": params,
        "size_bytes": file_size(path),
        "runtime": "onnxruntime",
    }
