"""``trainer.precision``: which autocast dtype a run uses on its device, and why when it is not the one asked."""

from __future__ import annotations

from pathlib import Path

import torch


def cpu_has_native_bf16(cpuinfo: str | Path = "/proc/cpuinfo") -> bool:
    """True when the CPU computes bf16 matrix products natively (avx512_bf16 or AMX): there, bf16 autocast
    trains MiniLM 1.7x faster than fp32 (``bench/train_precision.py``); without them it is slower."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return False
    flags = set()
    for line in text.splitlines():
        if line.startswith("flags"):
            flags.update(line.split(":", 1)[1].split())
            break
    return bool(flags & {"avx512_bf16", "amx_bf16"})


def amp_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of ``precision`` ("fp32", "bf16", "fp16") on ``device``; None: fp32. bf16 autocasts on
    CUDA and on CPUs with native bf16; fp16 on CUDA only."""
    if precision == "fp32":
        return None
    if device.type == "cuda":
        return torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.bfloat16 if precision == "bf16" and cpu_has_native_bf16() else None


def autocast(device: torch.device, dtype: torch.dtype | None):
    """The autocast context of a forward pass (disabled for fp32)."""
    if dtype is None:
        return torch.autocast("cpu", enabled=False)
    return torch.autocast(device.type, dtype=dtype)


def precision_note(precision: str, dtype: torch.dtype | None) -> str | None:
    """A log line when the requested precision is not what runs (fp16 or bf16 falling back to fp32 on CPU)."""
    if precision == "fp32" or dtype is not None:
        return None
    why = (
        "fp16 autocast is CUDA-only"
        if precision == "fp16"
        else "this CPU has no native bf16 (avx512_bf16 or amx_bf16), where bf16 would be slower than fp32"
    )
    return f"precision {precision} requested: training in fp32 on CPU ({why})"
