"""Speed of synthetic corpus generation per TTS engine: utterances per second and real-time factor.

    python bench/synth.py [--n 20] [--workers 2] [--engines espeak-ng,flite,festival,piper]

For each installed engine, makes a corpus of ``--n`` utterances with that engine alone, then one mixed
corpus of ``--n`` utterances per engine with all of them, and prints a table. The real-time factor here is
seconds of audio made per wall-clock second (higher is faster); "audio/CPU" divides by the CPU seconds of this
process and every process it started (engines, sox, workers), which a busy machine disturbs less than wall
time. Sentence loading is done once before timing.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

from speechtao.corpora.synth import ENGINES, SynthSpec, list_voices, summarize, synthesize_corpus
from speechtao.corpora.textsrc import load_sentences


def _cpu_seconds() -> float:
    """CPU time of this process and of all its finished descendants."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        r = resource.getrusage(who)
        total += r.ru_utime + r.ru_stime
    return total


def run_one(engines: tuple[str, ...], n: int, workers: int, seed: int, folder: Path) -> tuple[int, float, float, float]:
    """Returns (utterances, audio seconds, wall seconds, CPU seconds) for a fresh corpus."""
    spec = SynthSpec(n_utterances=n, engines=engines, workers=workers, seed=seed)
    cpu, start = _cpu_seconds(), time.perf_counter()
    manifest = synthesize_corpus(spec, folder, log=lambda msg: None, progress=False)
    wall, cpu = time.perf_counter() - start, _cpu_seconds() - cpu
    s = summarize(manifest)
    return s["utterances"], s["hours"] * 3600.0, wall, cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=20, help="utterances per engine (default 20)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--engines", default=",".join(ENGINES))
    args = ap.parse_args()

    engines = [e for e in args.engines.split(",") if e]
    installed = [e for e in engines if list_voices(e)]
    for e in sorted(set(engines) - set(installed)):
        print(f"note: {e} not installed, skipped")
    load_sentences(None, args.n * len(installed), args.seed)  # warm the sentence cache outside the timing

    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-synth-") as tmp:
        for e in installed:
            rows.append((e, len(list_voices(e)), *run_one((e,), args.n, args.workers, args.seed, Path(tmp) / e)))
        if len(installed) > 1:
            n_all = args.n * len(installed)
            voices = sum(len(list_voices(e)) for e in installed)
            rows.append(
                ("all (mixed)", voices, *run_one(tuple(installed), n_all, args.workers, args.seed, Path(tmp) / "all"))
            )

    print(f"\nworkers {args.workers}, {args.n} utterances per engine")
    print(
        f"{'engine':<12} {'voices':>6} {'utts':>5} {'audio s':>8} {'wall s':>7} {'utt/s':>6} "
        f"{'RTF (audio/wall)':>17} {'CPU s':>6} {'audio/CPU':>9}"
    )
    for name, voices, n, audio, wall, cpu in rows:
        print(
            f"{name:<12} {voices:>6} {n:>5} {audio:>8.1f} {wall:>7.2f} {n / wall:>6.1f} {audio / wall:>17.1f} "
            f"{cpu:>6.1f} {audio / cpu:>9.1f}"
        )


if __name__ == "__main__":
    main()
