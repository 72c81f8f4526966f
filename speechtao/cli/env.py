"""``speechtao env``: what a bug report needs (versions, CPU/CUDA, TensorRT, TTS engines)."""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import platform
import shutil


def register(sub) -> None:
    p = sub.add_parser("env", help="print versions, devices and optional tools available here")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(func=run)


def _version(module: str) -> str | None:
    if importlib.util.find_spec(module) is None:
        return None
    try:
        mod = importlib.import_module(module)
    except Exception as exc:  # a package that is present but broken is worth reporting as such
        return f"broken ({type(exc).__name__}: {exc})"
    return str(getattr(mod, "__version__", "installed"))


def collect() -> dict:
    from .. import __version__

    info: dict = {
        "speechtao": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
    }
    for mod in [
        "torch",
        "numpy",
        "soundfile",
        "sentencepiece",
        "transformers",
        "onnx",
        "onnxruntime",
        "onnxscript",
        "grpc",
        "google.protobuf",
        "jiwer",
        "riva.client",
        "nemo",
    ]:
        info[mod] = _version(mod) if mod != "nemo" else (_version(mod) if importlib.util.find_spec("nemo") else None)
    try:
        import torch

        info["torch_threads"] = torch.get_num_threads()
        info["cuda"] = torch.cuda.is_available()
        if info["cuda"]:
            info["cuda_devices"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    except ImportError:
        info["cuda"] = False
    info["tensorrt"] = importlib.util.find_spec("tensorrt") is not None
    try:
        import onnxruntime as ort

        info["onnxruntime_providers"] = ort.get_available_providers()
    except ImportError:
        pass
    engines = {name: shutil.which(name) is not None for name in ["espeak-ng", "flite", "text2wave", "sox", "ffmpeg"]}
    engines["piper"] = importlib.util.find_spec("piper") is not None
    info["tts_and_tools"] = engines
    return info


def run(args) -> int:
    info = collect()
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    width = max(len(k) for k in info)
    for key, value in info.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k}={'yes' if v else 'no'}" for k, v in value.items())
        elif value is None:
            value = "not installed"
        print(f"{key:<{width}}  {value}")
    return 0
