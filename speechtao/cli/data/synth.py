"""``speechtao data synth --out DIR (--hours H | --n N) [--engines ...] [--holdout-voices K|V1,V2]``."""

from __future__ import annotations

import argparse


def _holdout(text: str) -> int | tuple[str, ...]:
    if text.isdigit():
        return int(text)
    voices = tuple(v.strip() for v in text.split(",") if v.strip())
    if not voices:
        raise argparse.ArgumentTypeError(f"{text!r}: give a number of voices or a comma-separated voice list")
    return voices


def _range(text: str) -> tuple[float, float]:
    try:
        lo, hi = (float(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected LOW,HIGH (for example 0.85,1.2)") from None
    return lo, hi


def register(actions) -> None:
    p = actions.add_parser(
        "synth",
        help="make a synthetic speech corpus with the offline TTS engines (espeak-ng, flite, festival, piper)",
        description="Synthesize sentences with many voices into 16 kHz WAVs and a NeMo manifest. Deterministic "
        "for a seed (whatever --workers) and resumable: rerun the same command to finish a corpus.",
    )
    p.add_argument("--out", required=True, help="output folder (WAVs, manifest.jsonl, train/test.jsonl)")
    size = p.add_mutually_exclusive_group(required=True)
    size.add_argument("--hours", type=float, help="stop at the first utterances that add up to this much audio")
    size.add_argument("--n", type=int, help="number of utterances")
    p.add_argument(
        "--engines",
        default="espeak-ng,flite,festival,piper",
        help="comma-separated engines (default: all; missing ones are skipped with a note)",
    )
    p.add_argument("--seed", type=int, default=0, help="decides texts, engines, voices, rates, pitches (default 0)")
    p.add_argument("--workers", type=int, help="parallel processes (default: the number of CPUs)")
    p.add_argument(
        "--sources",
        default="",
        help="comma-separated sentence sources (default: speechtao's default set; see `speechtao data text`)",
    )
    p.add_argument(
        "--rate-range",
        type=_range,
        default=(0.85, 1.2),
        metavar="LOW,HIGH",
        help="speaking-rate factor range (default 0.85,1.2)",
    )
    p.add_argument(
        "--pitch-range",
        type=_range,
        default=(-2.0, 2.0),
        metavar="LOW,HIGH",
        help="pitch shift range in semitones (default -2,2)",
    )
    p.add_argument(
        "--holdout-voices",
        type=_holdout,
        default=0,
        metavar="K|VOICE,...",
        help="write train.jsonl/test.jsonl with K held-out voices (or these voices) in test only",
    )
    p.add_argument("--sample-rate", type=int, default=16000, help="Hz of the written WAVs (default 16000)")
    p.set_defaults(func=run)


def run(args) -> int:
    import sys
    import time

    from ...corpora.synth import SynthSpec, summarize, synthesize_corpus
    from ...errors import InputError

    try:
        spec = SynthSpec(
            hours=args.hours,
            n_utterances=args.n,
            engines=tuple(e.strip() for e in args.engines.split(",") if e.strip()),
            seed=args.seed,
            **({} if args.workers is None else {"workers": args.workers}),
            sources=tuple(s.strip() for s in args.sources.split(",") if s.strip()),
            rate_range=args.rate_range,
            pitch_range=args.pitch_range,
            holdout_voices=args.holdout_voices,
            sample_rate=args.sample_rate,
        )
    except ValueError as exc:
        raise InputError(f"data synth: {exc}") from None
    start = time.perf_counter()
    manifest = synthesize_corpus(spec, args.out, log=lambda msg: print(msg, file=sys.stderr))
    wall = time.perf_counter() - start
    s = summarize(manifest)
    engines = ", ".join(f"{k} {v}" for k, v in s["engines"].items())
    print(f"manifest     {manifest}")
    print(f"utterances   {s['utterances']}")
    print(f"hours        {s['hours']:.3f}")
    print(f"engines      {engines}")
    print(f"voices       {s['voices']} distinct")
    print(f"wall         {wall:.1f} s")
    return 0
