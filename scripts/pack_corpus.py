#!/usr/bin/env python3
"""Pack manifests' audio into Opus files small enough to travel to a GPU host, and unpack them there.

A GPU host without TTS engines trains on a corpus synthesized here; 16 kHz PCM is ~32 KB/s, Opus at
``--level 0.97`` ~2 KB/s (about 16 kbit/s, wideband speech stays intelligible; the codec is one more
channel effect for the model to ignore).

    scripts/pack_corpus.py pack --out .devcarry/corpus data/pretrain/train.jsonl data/pretrain_b/train.jsonl \
        --name train [--level 0.97]
    scripts/pack_corpus.py unpack .devcarry/corpus --out /tmp/corpus     # decode to 16-bit WAV, rewrite manifests

``pack`` writes ``OUT/<name>.jsonl`` (one manifest from all inputs; paths relative to OUT) and
``OUT/<name>/NNNNNN.ogg``; ``unpack`` writes ``OUT/<name>.jsonl`` and ``OUT/<name>/NNNNNN.wav`` for every
packed manifest. Both run in parallel over ``--workers`` processes.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _encode(job: tuple[str, str, float]) -> float:
    import soundfile as sf

    from speechtao.audio import read_audio

    src, dst, level = job
    x = read_audio(src, 16000)
    sf.write(dst, x, 16000, format="OGG", subtype="OPUS", compression_level=level)
    return len(x) / 16000


def _decode(job: tuple[str, str]) -> float:
    import soundfile as sf

    src, dst = job
    x, sr = sf.read(src, dtype="float32")
    if sr != 16000:
        raise SystemExit(f"{src}: sample rate {sr}, expected 16000 (pack it again)")
    sf.write(dst, np.clip(x, -1, 1), sr, subtype="PCM_16", format="WAV")
    return len(x) / sr


def _rows(manifest: Path) -> list[dict]:
    rows = []
    for i, line in enumerate(manifest.read_text().splitlines(), 1):
        if not line.strip():
            continue
        row = json.loads(line)
        path = Path(row["audio_filepath"])
        if not path.is_absolute():
            path = manifest.parent / path
        if not path.is_file():
            raise SystemExit(f"{manifest}:{i}: audio file {path} does not exist")
        row["audio_filepath"] = str(path)
        rows.append(row)
    return rows


def pack(args: argparse.Namespace) -> None:
    out = Path(args.out)
    (out / args.name).mkdir(parents=True, exist_ok=True)
    rows = [r for m in args.manifests for r in _rows(Path(m))]
    jobs = []
    for i, row in enumerate(rows):
        rel = f"{args.name}/{i:06d}.ogg"
        jobs.append((row["audio_filepath"], str(out / rel), args.level))
        row["audio_filepath"] = rel
    with ProcessPoolExecutor(args.workers) as pool:
        seconds = sum(pool.map(_encode, jobs, chunksize=16))
    (out / f"{args.name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    size = sum(os.path.getsize(j[1]) for j in jobs)
    print(
        f"{len(rows)} utterances, {seconds / 3600:.2f} h -> {out / args.name} "
        f"({size / 1e6:.1f} MB, {size / seconds / 1e3:.2f} KB/s)"
    )


def unpack(args: argparse.Namespace) -> None:
    src, out = Path(args.packed), Path(args.out)
    for manifest in sorted(src.glob("*.jsonl")):
        rows = [json.loads(line) for line in manifest.read_text().splitlines() if line.strip()]
        (out / manifest.stem).mkdir(parents=True, exist_ok=True)
        jobs = []
        for row in rows:
            rel = str(Path(row["audio_filepath"]).with_suffix(".wav"))
            jobs.append((str(src / row["audio_filepath"]), str(out / rel)))
            row["audio_filepath"] = rel
        with ProcessPoolExecutor(args.workers) as pool:
            seconds = sum(pool.map(_decode, jobs, chunksize=16))
        (out / manifest.name).write_text("".join(json.dumps(r) + "\n" for r in rows))
        print(f"{manifest.name}: {len(rows)} utterances, {seconds / 3600:.2f} h -> {out / manifest.name}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pack", help="manifests -> Opus files + one manifest")
    p.add_argument("manifests", nargs="+")
    p.add_argument("--out", required=True)
    p.add_argument("--name", required=True, help="manifest name in OUT (e.g. train, test)")
    p.add_argument("--level", type=float, default=0.97, help="libsndfile Opus compression level 0..1 (higher: smaller)")
    p.add_argument("--workers", type=int, default=os.cpu_count())
    u = sub.add_parser("unpack", help="packed folder -> 16-bit WAVs + manifests")
    u.add_argument("packed")
    u.add_argument("--out", required=True)
    u.add_argument("--workers", type=int, default=os.cpu_count())
    args = ap.parse_args()
    pack(args) if args.cmd == "pack" else unpack(args)


if __name__ == "__main__":
    main()
