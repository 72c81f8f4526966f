"""Whisper encoder-decoder models behind ``speechtao asr infer | evaluate`` (and ``data label``).

A model reference ``whisper:NAME[:beam=N][:timestamps]`` names an installed Whisper model (``tiny.en``,
``base``; see :data:`speechtao.asr.whisper.WHISPER_MODELS`), a fine-tuned checkpoint (:mod:`speechtao.asr.whisper_train`)
or an ONNX export folder (:mod:`speechtao.asr.whisper_onnx`), and its decoding options; the default is beam
search with 5 hypotheses and no timestamp tokens (segments then are 30 s windows). Examples::

    speechtao asr evaluate --model whisper:base --manifest test.jsonl
    speechtao asr infer --model whisper:tiny.en:beam=1:timestamps --format srt talk.wav

:func:`speechtao.asr.backends.open_model` opens these references. :class:`SeqTranscriber` has the interface of :class:`speechtao.asr.infer.Transcriber` (``transcribe``,
``transcribe_arrays``, ``seconds_in_model``); utterances are decoded one at a time. A transcript's
``confidence`` is ``exp`` of its tokens' mean log-probability.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import InputError
from .ctc import Word
from .infer import Transcriber, Transcript, Utterance, resolve_device
from .whisper import WHISPER_MODELS
from .whisper_seq import DecodeOptions, WhisperSeqModel, load_seq_model, transcribe

PREFIX = "whisper:"


def is_seq_ref(ref) -> bool:
    """True for a ``whisper:...`` model reference (a string, not an existing file)."""
    return isinstance(ref, str) and ref.startswith(PREFIX) and not Path(ref).exists()


def parse_seq_ref(ref: str) -> tuple[str, DecodeOptions]:
    """``whisper:base:beam=1:timestamps`` -> (``"base"``, DecodeOptions(beam_size=1, timestamps=True))."""
    parts = ref[len(PREFIX) :].split(":")
    name, beam, timestamps = parts[0], 5, False
    if name not in WHISPER_MODELS and not Path(name).exists():
        raise InputError(
            f"model {ref!r}: unknown Whisper model {name!r} (installed kinds: {', '.join(WHISPER_MODELS)}; or the "
            "path of a fine-tuned checkpoint or an ONNX export folder)"
        )
    for p in parts[1:]:
        if p == "timestamps":
            timestamps = True
        elif p.startswith("beam=") and p[5:].isdigit() and int(p[5:]) >= 1:
            beam = int(p[5:])
        else:
            raise InputError(f"model {ref!r}: unknown option {p!r} (use beam=N and/or timestamps)")
    return name, DecodeOptions(beam_size=beam, timestamps=timestamps)


@dataclass
class LoadedSeqModel:
    model: WhisperSeqModel  # or a speechtao.asr.whisper_onnx.OnnxSeqModel
    options: DecodeOptions
    ref: str
    runtime: str = "PyTorch cpu"


def is_seq_path(path: str | Path) -> bool:
    """True for a fine-tuned Whisper encoder-decoder checkpoint or a Whisper ONNX export folder."""
    from .whisper_onnx import is_seq_export
    from .whisper_train import is_seq_checkpoint

    return is_seq_export(path) or is_seq_checkpoint(path)


def load_seq_ref(ref: str, threads: int = 1) -> LoadedSeqModel:
    """``whisper:NAME|FILE|FOLDER[:beam=N][:timestamps]`` -> the model and its decoding options."""
    name, options = parse_seq_ref(ref)
    if name in WHISPER_MODELS and not Path(name).exists():
        return LoadedSeqModel(load_seq_model(name), options, ref)
    from .whisper_onnx import OnnxSeqModel, is_seq_export

    if is_seq_export(name):
        model = OnnxSeqModel(name, threads=threads)
        return LoadedSeqModel(model, options, ref, f"ONNX Runtime {model.precision.upper()}, {threads} thread(s)")
    from .whisper_train import load_seq_checkpoint

    return LoadedSeqModel(load_seq_checkpoint(name)[0], options, ref)


class SeqTranscriber(Transcriber):
    """A Whisper encoder-decoder ready to transcribe (see the module docstring)."""

    def __init__(self, loaded: LoadedSeqModel, device: str = "cpu"):
        self.device = resolve_device(device)
        if self.device.type != "cpu":
            raise InputError(f"device {device!r}: Whisper encoder-decoder decoding runs on cpu only here")
        self.model = loaded.model
        self.options = loaded.options
        self.sample_rate = 16000
        self.seconds_in_model = 0.0
        o = loaded.options
        self.description = (
            f"whisper {loaded.ref} (encoder-decoder, {loaded.runtime}, "
            f"{'greedy' if o.beam_size == 1 else f'beam {o.beam_size}'}{', timestamps' if o.timestamps else ''})"
        )

    def transcribe_arrays(self, audios: Sequence[np.ndarray], utts: Sequence[Utterance]) -> list[Transcript]:
        out = []
        for audio, utt in zip(audios, utts):
            start = time.perf_counter()
            with torch.inference_mode():
                res = transcribe(self.model, audio, self.options)
            self.seconds_in_model += time.perf_counter() - start
            shift = utt.offset
            words = [
                Word(
                    w,
                    int(round((shift + s) * 1000)),
                    max(int(round((shift + e) * 1000)), int(round((shift + s) * 1000)) + 1),
                    1.0,
                )
                for w, s, e in res.words
            ]
            conf = math.exp(res.avg_logprob) if res.segments else 0.0
            out.append(Transcript(utt.audio_filepath, res.text, words, len(audio) / self.sample_rate, conf, utt.offset))
        return out


__all__ = ["is_seq_ref", "is_seq_path", "parse_seq_ref", "load_seq_ref", "LoadedSeqModel", "SeqTranscriber"]
