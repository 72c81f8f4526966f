"""Scores and curves of the flow's models: WER/CER/RTF of a checkpoint (PyTorch) or an exported ONNX file (ONNX
Runtime) on a manifest, and the training curves from the trainer's log lines."""

from __future__ import annotations

import re
import time
from pathlib import Path

_LOG_RE = re.compile(r"^epoch (\d+) step (\d+) loss ([-\d.eE+naninf]+) lr ([-\d.eE+]+)")
_VAL_RE = re.compile(r"^epoch (\d+) step (\d+) val (.*)$")


def file_size(path: str | Path) -> int:
    return Path(path).stat().st_size


def parse_train_log(lines: list[str]) -> dict[str, list]:
    """``{"step": [...], "loss": [...], "lr": [...], "val_step": [...], "val_wer": [...]}`` from trainer lines."""
    out: dict[str, list] = {"step": [], "loss": [], "lr": [], "val_step": [], "val_wer": []}
    for line in lines:
        m = _LOG_RE.match(line)
        if m:
            out["step"].append(int(m.group(2)))
            out["loss"].append(float(m.group(3)))
            out["lr"].append(float(m.group(4)))
            continue
        m = _VAL_RE.match(line)
        if m:
            parts = m.group(3).split()
            vals = dict(zip(parts[::2], parts[1::2]))
            if "wer" in vals:
                out["val_step"].append(int(m.group(2)))
                out["val_wer"].append(float(vals["wer"]))
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
