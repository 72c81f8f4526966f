"""The corpora added for models/whisper_base_ctc_synth.pt (see its card), besides the 0.9 h of the first version.

    python scripts/whisper_base_ctc_data.py pico --out runs/b2/pico --hours 1.2           # SVOX Pico, wide rate/pitch
    python scripts/whisper_base_ctc_data.py kokoro --out runs/b2/kokoro --n 105           # Kokoro-82M style blends
    python scripts/whisper_base_ctc_data.py heldout --out runs/b2/heldout --n 60          # validation voices only
    python scripts/whisper_base_ctc_data.py pico-prose --out runs/b3/pico --hours 3.0 --gensim WHEEL   # prose, v3

Each writes WAVs and ``manifest.jsonl`` into ``--out``; a rerun finishes an interrupted corpus. ``kokoro`` writes
its manifest after every 40 utterances, so it can be stopped at any time (``--until HH:MM`` UTC stops it on time).
``heldout`` speaks only the voices that pretraining corpora leave out as their test voices
(:data:`speechtao.corpora.domain.HELDOUT_VOICES`: espeak-ng ``en-gb-scotland`` variants and flite ``awb``), so it
can choose checkpoints without sharing a voice with the training data.
"""

from __future__ import annotations

import argparse
import datetime
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from speechtao.corpora import synth as S  # noqa: E402
from speechtao.corpora.domain import HELDOUT_VOICES, matches  # noqa: E402
from speechtao.corpora.textsrc import load_sentences  # noqa: E402
from speechtao.corpora.voices import VoicesSpec, synthesize_voices  # noqa: E402


def pico(out: Path, hours: float, seed: int) -> Path:
    spec = VoicesSpec(
        hours=hours, seed=seed, engines=("pico",), engine_weights={"pico": 1.0}, rate_range=(0.7, 1.45),
        pitch_range=(0.7, 1.45),
    )  # fmt: skip
    return synthesize_voices(spec, out)


def pico_prose(out: Path, hours: float, seed: int, gensim: Path) -> Path:
    """Pico over longer, more varied sentences: the Wikipedia and news prose of the gensim wheel (clean sentences
    only, so the engine reads exactly the transcript) and 8,000 Debian-text sentences, shuffled together."""
    import random

    from speechtao.corpora.realtext import read_documents
    from speechtao.corpora.textsrc import is_clean

    out.mkdir(parents=True, exist_ok=True)
    if not (out / "sentences.txt").is_file():
        prose = [s for d in read_documents(gensim) for s in d.sentences if is_clean(s, 3, 25)]
        sentences = prose + list(load_sentences(None, 8000, seed))
        random.Random(seed).shuffle(sentences)
        (out / "sentences.txt").write_text("\n".join(sentences) + "\n", encoding="utf-8")
    spec = VoicesSpec(
        hours=hours, seed=seed, engines=("pico",), engine_weights={"pico": 1.0}, rate_range=(0.75, 1.35),
        pitch_range=(0.75, 1.35),
    )  # fmt: skip
    return synthesize_voices(spec, out)


def kokoro(out: Path, n: int, seed: int, until: datetime.datetime | None) -> Path | None:
    out.mkdir(parents=True, exist_ok=True)
    if not (out / "sentences.txt").is_file():  # enough distinct sentences for any n (the corpus grows in chunks)
        sentences = list(load_sentences(None, 6000, seed))
        (out / "sentences.txt").write_text("\n".join(sentences) + "\n", encoding="utf-8")
    manifest, done = None, 0
    while done < n and (until is None or datetime.datetime.now(datetime.timezone.utc) < until):
        done = min(n, done + 40)
        spec = VoicesSpec(
            n_utterances=done, seed=seed, engines=("kokoro",), engine_weights={"kokoro": 1.0}, rate_range=(0.8, 1.25)
        )
        manifest = synthesize_voices(spec, out)
        print(f"{done} utterances", flush=True)
    return manifest


def heldout(out: Path, n: int, seed: int) -> Path:
    every = S.available_voices

    def only_heldout(engines, log=print):
        found = {e: tuple(v for v in vs if matches(v, HELDOUT_VOICES)) for e, vs in every(engines, log).items()}
        return {e: vs for e, vs in found.items() if vs}

    S.available_voices = only_heldout  # synthesize_corpus draws its voices from this list
    try:
        spec = S.SynthSpec(
            n_utterances=n, seed=seed, engines=("espeak-ng", "flite"), engine_weights={"espeak-ng": 0.5, "flite": 0.5},
            workers=1,
        )  # fmt: skip
        return S.synthesize_corpus(spec, out)
    finally:
        S.available_voices = every


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("corpus", choices=["pico", "pico-prose", "kokoro", "heldout"])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--hours", type=float, default=1.2, help="pico, pico-prose: hours of audio")
    ap.add_argument(
        "--gensim", type=Path, help="pico-prose: the gensim 4.4.0 wheel (pip download --no-deps gensim==4.4.0)"
    )
    ap.add_argument("--n", type=int, default=105, help="kokoro, heldout: utterances")
    ap.add_argument("--seed", type=int, help="default: pico 32, kokoro 31, heldout 41 (those of the card)")
    ap.add_argument("--until", help="kokoro: stop after the chunk that passes this UTC time (HH:MM)")
    args = ap.parse_args()
    seed = (
        args.seed if args.seed is not None else {"pico": 32, "pico-prose": 7, "kokoro": 31, "heldout": 41}[args.corpus]
    )
    if args.corpus == "pico-prose":
        if args.gensim is None:
            ap.error("pico-prose needs --gensim WHEEL (pip download --no-deps gensim==4.4.0 -d DIR)")
        print(pico_prose(args.out, args.hours, seed, args.gensim))
    elif args.corpus == "pico":
        print(pico(args.out, args.hours, seed))
    elif args.corpus == "kokoro":
        until = None
        if args.until:
            now = datetime.datetime.now(datetime.timezone.utc)
            hh, mm = map(int, args.until.split(":"))
            until = now.replace(hour=hh, minute=mm, second=0, microsecond=0)
        print(kokoro(args.out, args.n, seed, until))
    else:
        print(heldout(args.out, args.n, seed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
