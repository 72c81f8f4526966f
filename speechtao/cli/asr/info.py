"""``speechtao asr info --model PRESET|CKPT|X.nemo [--json]``: size, cost and settings of an ASR model."""

from __future__ import annotations

import json


def register(actions) -> None:
    p = actions.add_parser("info", help="parameters, MACs per second, subsampling, vocabulary and features of a model")
    p.add_argument(
        "--model", required=True, help="a preset name (e.g. quartznet_15x5), a speechtao checkpoint or a .nemo"
    )
    p.add_argument(
        "--vocab-size",
        type=int,
        default=None,
        help="presets only: vocabulary size to size the decoder for (default: the published one, "
        "28 characters for QuartzNet, 1024 SentencePiece tokens for CitriNet)",
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(func=run)


def collect(ref: str, vocab_size: int | None = None) -> dict:
    """The facts `asr info` prints, as plain data."""
    from pathlib import Path

    import torch

    from ...asr.checkpoint import load_model
    from ...asr.models import PRESET_VOCAB_SIZE, PRESETS, build_model, macs_per_second, parameter_counts
    from ...errors import InputError
    from ...spec import spec_to_dict

    if str(ref) in PRESETS and not Path(ref).exists():
        config = PRESETS[ref]
        size = vocab_size or PRESET_VOCAB_SIZE[ref]
        if size < 1:
            raise InputError(f"--vocab-size {size}: must be >= 1")
        with torch.device("meta"):  # sizes only: no memory, no weight init (citrinet_1024 has 144M parameters)
            model = build_model(config, size)
        kind = "char" if config.family in ("quartznet", "jasper") else "sentencepiece"
        vocab = {"type": kind, "size": size, "trained": False}
        source = "preset, random weights"
    else:
        if vocab_size is not None:
            raise InputError(
                f"--vocab-size applies to presets only; {ref} carries its own vocabulary (drop the option)"
            )
        loaded = load_model(ref)
        config, model = loaded.config, loaded.model
        tok = loaded.tokenizer.to_dict()
        vocab = {"type": tok["type"], "size": loaded.tokenizer.vocab_size, "trained": True}
        source = ".nemo archive" if str(ref).endswith(".nemo") else "checkpoint"
    pre = config.preprocessor
    conv = config.family != "whisper"  # the analytic MAC count covers the convolutional encoders
    return {
        "model": str(ref),
        "source": source,
        "family": config.family,
        "blocks": len(config.blocks) if conv else config.encoder.n_layers,
        "parameters": parameter_counts(model),
        "macs_per_second": (
            {k: int(round(v)) for k, v in macs_per_second(config, vocab["size"]).items()} if conv else None
        ),
        "subsampling_factor": config.subsampling_factor,
        "output_frame_ms": 1000.0 * pre.hop_length / pre.sample_rate * config.subsampling_factor,
        "vocabulary": vocab,
        "blank_id": vocab["size"],
        "features": spec_to_dict(pre),
    }


def _fmt_count(n: float) -> str:
    for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= div:
            return f"{n / div:.3g}{unit}" if n / div < 100 else f"{n / div:.0f}{unit}"
    return str(int(n))


def run(args) -> int:
    from .. import set_threads

    set_threads()
    info = collect(args.model, args.vocab_size)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    p, m, f, v = info["parameters"], info["macs_per_second"], info["features"], info["vocabulary"]
    lines = [
        ("model", f"{info['model']} ({info['source']})"),
        (
            "family",
            f"{info['family']}, {info['blocks']} encoder " + ("blocks" if m is not None else "transformer layers"),
        ),
        (
            "parameters",
            f"{_fmt_count(p['total'])} = {p['total']:,} (encoder {p['encoder']:,}, decoder {p['decoder']:,})",
        ),
        (
            "MACs",
            f"{_fmt_count(m['total'])} per second of audio (encoder {_fmt_count(m['encoder'])}, "
            f"decoder {_fmt_count(m['decoder'])})"
            if m is not None
            else "not counted for transformer encoders",
        ),
        ("subsampling", f"{info['subsampling_factor']}x (one output frame per {info['output_frame_ms']:g} ms)"),
        (
            "vocabulary",
            f"{v['size']} {v['type']} tokens + blank (id {info['blank_id']})" + ("" if v["trained"] else ", untrained"),
        ),
        (
            "features",
            f"{f['n_mels']} log-mel at {f['sample_rate']} Hz, window {f['window_size']} s, "
            f"hop {f['window_stride']} s, n_fft {f['n_fft'] or 'auto'}, normalize {f['normalize']}, "
            f"dither {f['dither']:g}, pad_to {f['pad_to']}"
            if "window_size" in f
            else ", ".join(f"{k} {v}" for k, v in f.items()),
        ),
    ]
    for key, value in lines:
        print(f"{key:<12} {value}")
    return 0
